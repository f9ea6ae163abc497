// The code a yield point adds, and where each function keeps its counter.
//
// The counter is a mutable i32 global, decremented at every yield point;
// when it reaches zero it is reset to the interval and `tugboat.yield` is
// called. A global lives in memory, and a loop that decrements one carries a
// store-to-load dependency from iteration to iteration: measured on a tight
// sieve loop, +42% time. So a function with loops copies the counter into a
// new local at entry and counts there (+13% on the same loop), writing it back
// to the global before control can leave the function or enter another
// (calls, imports included since they can throw; return, throw, a branch to
// the function's label, its final end) and reading it again when control
// comes back from guest code (after a call, at a catch).
// The global is thus exact whenever another function runs, and every run of
// N yield points, wherever they are, ends in one call of the import.
//
// Where yield points are: every loop header, and the entry of every function
// on a cycle of the call graph (call-graph.ts). Any other run of calls is as
// deep as the call graph and each function in it runs a bounded number of
// instructions between its entry, its loop headers and its calls, so any
// long run passes a yield point regularly.
import { s32Bytes, u32Bytes } from './bytes.js';
import type { Bodies } from './decode.js';
import { ENTRY, LOOP, SYNC_IN, SYNC_OUT } from './sites.js';

/** No loops and cannot recurse: left as it is. */
export const PLAIN = 0;
/** No loops but may recurse: a check on the global at entry. */
export const GLOBAL_ENTRY = 1;
/** Loops where a local counter would be stale (try_table catches) or does not fit (locals limit): checks on the global. */
export const GLOBAL = 2;
/** Loops: the counter lives in a new local between syncs with the global. */
export const LOCAL = 3;

/** V8's limit on a function's locals (params included). */
const MAX_LOCALS = 50_000;

/** Whether the body keeps its counter in a local (so it needs the syncs). */
export function keepsLocalCounter(b: Bodies, i: number): boolean {
  return b.loops[i] !== 0 && !b.hasTryTable[i] && b.firstFreeLocal[i]! + 1 <= MAX_LOCALS;
}

export function modeOf(b: Bodies, i: number): number {
  if (keepsLocalCounter(b, i)) return LOCAL;
  if (b.loops[i] !== 0) return GLOBAL;
  return b.mayRecurse[i] ? GLOBAL_ENTRY : PLAIN;
}

const EMPTY = new Uint8Array(0);
const I32_SUB_1 = [0x41, 0x01, 0x6b]; // i32.const 1; i32.sub
const IF_EMPTY = [0x04, 0x40];
const END = 0x0b;
const GLOBAL_GET = 0x23;
const GLOBAL_SET = 0x24;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_EQZ = 0x45;
const CALL = 0x10;
/** A local declaration group of one i32: the counter's local. */
const ONE_I32_LOCAL = [0x01, 0x7f];

interface LocalSnippets {
  entry: Uint8Array;
  loop: Uint8Array;
  syncOut: Uint8Array;
  syncIn: Uint8Array;
}

/** What to insert at each code site, for one module's counter, import and interval. */
export class YieldCode {
  readonly modes: Uint8Array;
  // Per body: the bytes at its entry, loop headers, and syncs.
  private readonly entry: Uint8Array[];
  private readonly loop: Uint8Array[];
  private readonly syncOut: Uint8Array[];
  private readonly syncIn: Uint8Array[];

  constructor(
    private readonly bodies: Bodies,
    counterGlobal: number,
    yieldFunc: number,
    interval: number,
  ) {
    const n = bodies.count;
    this.modes = new Uint8Array(n);
    this.entry = new Array<Uint8Array>(n).fill(EMPTY);
    this.loop = new Array<Uint8Array>(n).fill(EMPTY);
    this.syncOut = new Array<Uint8Array>(n).fill(EMPTY);
    this.syncIn = new Array<Uint8Array>(n).fill(EMPTY);
    const g = [...u32Bytes(counterGlobal)];
    const reset = [0x41, ...s32Bytes(interval)]; // i32.const interval
    const callYield = [CALL, ...u32Bytes(yieldFunc)];
    // global.get c; i32.const 1; i32.sub; global.set c; global.get c; i32.eqz;
    // if; i32.const N; global.set c; call $yield; end
    const globalCheck = new Uint8Array([
      GLOBAL_GET, ...g, ...I32_SUB_1, GLOBAL_SET, ...g, GLOBAL_GET, ...g, I32_EQZ,
      ...IF_EMPTY, ...reset, GLOBAL_SET, ...g, ...callYield, END,
    ]);
    // Bodies whose counter gets the same local index share their snippets.
    const byLocal = new Map<number, LocalSnippets>();
    const localSnippets = (c: number, recurse: boolean): LocalSnippets => {
      const key = c * 2 + (recurse ? 1 : 0);
      let found = byLocal.get(key);
      if (!found) {
        const l = [...u32Bytes(c)];
        // local.get c; i32.const 1; i32.sub; local.tee c; i32.eqz; if; i32.const N; local.set c; call $yield; end
        const resetLocal = [...IF_EMPTY, ...reset, LOCAL_SET, ...l, ...callYield, END];
        const load = [GLOBAL_GET, ...g, LOCAL_SET, ...l];
        found = {
          entry: new Uint8Array(
            recurse ? [...ONE_I32_LOCAL, GLOBAL_GET, ...g, ...I32_SUB_1, LOCAL_TEE, ...l, I32_EQZ, ...resetLocal] : [...ONE_I32_LOCAL, ...load],
          ),
          loop: new Uint8Array([LOCAL_GET, ...l, ...I32_SUB_1, LOCAL_TEE, ...l, I32_EQZ, ...resetLocal]),
          syncOut: new Uint8Array([LOCAL_GET, ...l, GLOBAL_SET, ...g]),
          syncIn: new Uint8Array(load),
        };
        byLocal.set(key, found);
      }
      return found;
    };
    for (let i = 0; i < n; i++) {
      const mode = (this.modes[i] = modeOf(bodies, i));
      if (mode === GLOBAL_ENTRY) {
        this.entry[i] = globalCheck;
      } else if (mode === GLOBAL) {
        this.loop[i] = globalCheck;
        if (bodies.mayRecurse[i]) this.entry[i] = globalCheck;
      } else if (mode === LOCAL) {
        const s = localSnippets(bodies.firstFreeLocal[i]!, bodies.mayRecurse[i] === 1);
        this.entry[i] = s.entry;
        this.loop[i] = s.loop;
        this.syncOut[i] = s.syncOut;
        this.syncIn[i] = s.syncIn;
      }
    }
  }

  /** Bytes to insert at a site of `kind` (ENTRY, LOOP, SYNC_OUT, SYNC_IN) in function body `body`. */
  at(kind: number, body: number): Uint8Array {
    switch (kind) {
      case LOOP:
        return this.loop[body]!;
      case SYNC_OUT:
        return this.syncOut[body]!;
      case SYNC_IN:
        return this.syncIn[body]!;
      case ENTRY:
        return this.entry[body]!;
      default:
        return EMPTY;
    }
  }

  /** Local declaration groups the body has after the rewrite. */
  localGroups(body: number): number {
    return this.bodies.groups[body]! + (this.modes[body] === LOCAL ? 1 : 0);
  }
}
