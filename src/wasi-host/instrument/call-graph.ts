// Which functions can recurse: the ones on a cycle of the call graph. Only
// their entries need a yield point, since a run of calls that never returns
// to a loop header must go round some cycle.
//
// Nodes are the module's defined functions plus one node for "any function
// an indirect call can reach": every function that calls indirectly has an
// edge to it, and it has an edge to every function whose reference escapes
// (element segments, ref.func, exports: the host can put an export into a
// table). Imports are no nodes: the host never calls back into a guest from
// an import.

/** A growable list of int pairs. */
export class EdgeList {
  from = new Int32Array(256);
  to = new Int32Array(256);
  length = 0;

  add(from: number, to: number): void {
    if (this.length === this.from.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.from = grow(this.from);
      this.to = grow(this.to);
    }
    this.from[this.length] = from;
    this.to[this.length++] = to;
  }
}

/**
 * For each of `n` functions, 1 if it lies on a cycle. `calls` holds direct
 * calls between them, `callsIndirect[i]` says whether i calls through a
 * table or a reference, `escapes[i]` whether i can be called that way.
 */
export function onCycle(n: number, calls: EdgeList, callsIndirect: Uint8Array, escapes: Uint8Array): Uint8Array {
  const ANY = n; // the node every indirect call goes through
  const nodes = n + 1;
  // adjacency in compressed rows
  const degree = new Int32Array(nodes + 1);
  const selfLoop = new Uint8Array(nodes);
  for (let e = 0; e < calls.length; e++) degree[calls.from[e]!]!++;
  for (let i = 0; i < n; i++) {
    if (callsIndirect[i]) degree[i]!++;
    if (escapes[i]) degree[ANY]!++;
  }
  const start = new Int32Array(nodes + 1);
  for (let i = 0; i < nodes; i++) start[i + 1] = start[i]! + degree[i]!;
  const fill = start.slice(0, nodes);
  const adj = new Int32Array(start[nodes]!);
  for (let e = 0; e < calls.length; e++) {
    const f = calls.from[e]!;
    const t = calls.to[e]!;
    if (f === t) selfLoop[f] = 1;
    adj[fill[f]!++] = t;
  }
  for (let i = 0; i < n; i++) {
    if (callsIndirect[i]) adj[fill[i]!++] = ANY;
    if (escapes[i]) adj[fill[ANY]!++] = i;
  }

  // Tarjan's strongly connected components, iteratively (call chains of
  // real modules are deeper than the JS stack).
  const index = new Int32Array(nodes).fill(-1);
  const low = new Int32Array(nodes);
  const onStack = new Uint8Array(nodes);
  const stack = new Int32Array(nodes);
  const work = new Int32Array(nodes); // DFS path
  const next = new Int32Array(nodes); // next edge to follow per node
  const result = new Uint8Array(n);
  let sp = 0;
  let counter = 0;
  for (let root = 0; root < nodes; root++) {
    if (index[root] !== -1) continue;
    let wp = 0;
    work[wp++] = root;
    index[root] = low[root] = counter++;
    stack[sp++] = root;
    onStack[root] = 1;
    next[root] = start[root]!;
    while (wp > 0) {
      const v = work[wp - 1]!;
      if (next[v]! < start[v + 1]!) {
        const w = adj[next[v]!++]!;
        if (index[w] === -1) {
          index[w] = low[w] = counter++;
          stack[sp++] = w;
          onStack[w] = 1;
          next[w] = start[w]!;
          work[wp++] = w;
        } else if (onStack[w] && index[w]! < low[v]!) {
          low[v] = index[w]!;
        }
        continue;
      }
      wp--;
      if (wp > 0) {
        const parent = work[wp - 1]!;
        if (low[v]! < low[parent]!) low[parent] = low[v]!;
      }
      if (low[v] === index[v]) {
        // v roots a component: pop it; it is a cycle if it has two nodes or a self-call
        let size = 0;
        let top = sp;
        do size++;
        while (stack[--top] !== v);
        for (let k = top; k < sp; k++) {
          const w = stack[k]!;
          onStack[w] = 0;
          if (w < n && (size > 1 || selfLoop[w])) result[w] = 1;
        }
        sp = top;
      }
    }
  }
  return result;
}
