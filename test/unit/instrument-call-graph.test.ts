// Which functions can recurse (so their entries need a yield point).
import { describe, expect, it } from 'vitest';
import { EdgeList, onCycle } from '../../src/wasi-host/instrument/call-graph.js';

function cycles(n: number, edges: [number, number][], indirect: number[] = [], escapes: number[] = []): number[] {
  const calls = new EdgeList();
  for (const [f, t] of edges) calls.add(f, t);
  const callsIndirect = new Uint8Array(n);
  for (const i of indirect) callsIndirect[i] = 1;
  const esc = new Uint8Array(n);
  for (const i of escapes) esc[i] = 1;
  return [...onCycle(n, calls, callsIndirect, esc)].flatMap((v, i) => (v ? [i] : []));
}

describe('functions on a call cycle', () => {
  it('finds none in a chain or a tree, however it branches', () => {
    expect(cycles(4, [[0, 1], [1, 2], [0, 2], [2, 3]])).toEqual([]);
  });
  it('finds self calls, mutual recursion, and only the functions on the cycle', () => {
    expect(cycles(3, [[0, 0], [1, 2]])).toEqual([0]);
    expect(cycles(5, [[0, 1], [1, 2], [2, 3], [3, 1], [3, 4]])).toEqual([1, 2, 3]);
  });
  it('goes through tables: an indirect caller reaches every escaping function', () => {
    // 0 calls indirectly; 1 escapes and calls 0: 0 → table → 1 → 0
    expect(cycles(3, [[1, 0]], [0], [1])).toEqual([0, 1]);
    // an indirect caller that nothing escaping leads back to is no cycle
    expect(cycles(3, [[0, 2]], [0], [1])).toEqual([]);
    // an escaping function that calls indirectly calls itself, in effect
    expect(cycles(2, [], [1], [1])).toEqual([1]);
  });
  it('handles call chains far deeper than the JS stack', () => {
    const n = 200_000;
    const edges: [number, number][] = [];
    for (let i = 0; i + 1 < n; i++) edges.push([i, i + 1]);
    expect(cycles(n, edges)).toEqual([]);
    edges.push([n - 1, 0]);
    expect(cycles(n, edges)).toHaveLength(n);
  });
});
