// The code a yield point adds, and where each function keeps its counter.
//
// The counter is a mutable i32 global, decremented at every yield point;
// when it reaches zero it is reset to the interval and `tugboat.yield` is
// called. A global lives in memory, and a loop that decrements one carries a
// store-to-load dependency from iteration to iteration: measured on a tight
// sieve loop, +41-68% time. So a function with loops copies the counter into
// a new local at entry and counts there (+3-39% on the same loop, mostly for
// the call in the loop that V8 must plan for), writing it back
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
// long run passes a yield point regularly. A bulk memory instruction can take
// as long as millions of loop turns, so it counts as one yield point per 64
// bytes of its length, checked just before it runs (with the length kept in
// a second new local).
import { s32Bytes, u32Bytes } from './bytes.js';
import type { Bodies } from './decode.js';
import { BULK, ENTRY, LOOP, SYNC_IN, SYNC_OUT } from './sites.js';

/** No loops and cannot recurse: left as it is (but for bulk memory instructions). */
export const PLAIN = 0;
/** No loops but may recurse: a check on the global at entry. */
export const GLOBAL_ENTRY = 1;
/** Loops where a local counter would be stale (try_table catches) or does not fit (locals limit): checks on the global. */
export const GLOBAL = 2;
/** Loops: the counter lives in a new local between syncs with the global. */
export const LOCAL = 3;

/** V8's limit on a function's locals (params included). */
const MAX_LOCALS = 50_000;
/** A bulk instruction counts one yield point per 2^BULK_SHIFT bytes (a loop turn takes about as long as a 64-byte fill). */
const BULK_SHIFT = 6;

/** Whether the body keeps its counter in a local (so it needs the syncs). */
export function keepsLocalCounter(b: Bodies, i: number): boolean {
  return b.loops[i] !== 0 && !b.hasTryTable[i] && b.firstFreeLocal[i]! + 1 + (b.bulk[i] ? 1 : 0) <= MAX_LOCALS;
}

export function modeOf(b: Bodies, i: number): number {
  if (keepsLocalCounter(b, i)) return LOCAL;
  if (b.loops[i] !== 0) return GLOBAL;
  return b.mayRecurse[i] ? GLOBAL_ENTRY : PLAIN;
}

/** Whether the body weighs its bulk instructions (it has some, and room for the length's local). */
function weighsBulk(b: Bodies, i: number, mode: number): boolean {
  return b.bulk[i] !== 0 && b.firstFreeLocal[i]! + (mode === LOCAL ? 1 : 0) + 1 <= MAX_LOCALS;
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
const I32_LE_S = 0x4c;
const I32_SUB = 0x6b;
const I32_SHR_U = 0x76;
const CALL = 0x10;
const I32_T = 0x7f;

interface Snippets {
  entry: Uint8Array;
  loop: Uint8Array;
  syncOut: Uint8Array;
  syncIn: Uint8Array;
  bulk: Uint8Array;
}

const NONE: Snippets = { entry: EMPTY, loop: EMPTY, syncOut: EMPTY, syncIn: EMPTY, bulk: EMPTY };

/** What to insert at each code site, for one module's counter, import and interval. */
export class YieldCode {
  readonly modes: Uint8Array;
  private readonly extraLocals: Uint8Array;
  private readonly snippets: Snippets[];

  constructor(
    private readonly bodies: Bodies,
    counterGlobal: number,
    yieldFunc: number,
    interval: number,
  ) {
    const n = bodies.count;
    this.modes = new Uint8Array(n);
    this.extraLocals = new Uint8Array(n);
    this.snippets = new Array<Snippets>(n).fill(NONE);
    const g = [...u32Bytes(counterGlobal)];
    // when the count runs out: if; i32.const N; <set the counter>; call $yield; end
    const reset = (set: number[]) => [...IF_EMPTY, 0x41, ...s32Bytes(interval), ...set, CALL, ...u32Bytes(yieldFunc), END];
    const setGlobal = [GLOBAL_SET, ...g];
    // global.get c; i32.const 1; i32.sub; global.set c; global.get c; i32.eqz; <reset>
    const globalCheck = [GLOBAL_GET, ...g, ...I32_SUB_1, ...setGlobal, GLOBAL_GET, ...g, I32_EQZ, ...reset(setGlobal)];
    // Functions with the same shape (mode, locals, recursion) share their snippets.
    const shared = new Map<string, Snippets>();
    for (let i = 0; i < n; i++) {
      const mode = (this.modes[i] = modeOf(bodies, i));
      const bulk = weighsBulk(bodies, i, mode);
      const recurse = bodies.mayRecurse[i] === 1;
      const extra = (mode === LOCAL ? 1 : 0) + (bulk ? 1 : 0);
      this.extraLocals[i] = extra;
      if (mode === PLAIN && !bulk) continue;
      const first = bodies.firstFreeLocal[i]!;
      const key = `${mode} ${first} ${recurse ? 1 : 0} ${bulk ? 1 : 0}`;
      let found = shared.get(key);
      if (!found) {
        const c = [...u32Bytes(first)]; // the counter's local (LOCAL)
        const t = [...u32Bytes(first + (mode === LOCAL ? 1 : 0))]; // the bulk length's local
        const locals = extra ? [extra, I32_T] : []; // one more declaration group: `extra` i32s
        const setLocal = [LOCAL_SET, ...c];
        const load = [GLOBAL_GET, ...g, LOCAL_SET, ...c];
        // local.tee t; <counter>; local.get t; i32.const 6; i32.shr_u; i32.sub; ...; i32.const 0; i32.le_s; <reset>
        const weigh = [LOCAL_GET, ...t, 0x41, BULK_SHIFT, I32_SHR_U, I32_SUB];
        if (mode === LOCAL) {
          found = {
            // global.get c; i32.const 1; i32.sub; local.tee c; i32.eqz; <reset>  or just  global.get c; local.set c
            entry: new Uint8Array([...locals, ...(recurse ? [GLOBAL_GET, ...g, ...I32_SUB_1, LOCAL_TEE, ...c, I32_EQZ, ...reset(setLocal)] : load)]),
            loop: new Uint8Array([LOCAL_GET, ...c, ...I32_SUB_1, LOCAL_TEE, ...c, I32_EQZ, ...reset(setLocal)]),
            syncOut: new Uint8Array([LOCAL_GET, ...c, ...setGlobal]),
            syncIn: new Uint8Array(load),
            bulk: new Uint8Array(bulk ? [LOCAL_TEE, ...t, LOCAL_GET, ...c, ...weigh, LOCAL_TEE, ...c, 0x41, 0x00, I32_LE_S, ...reset(setLocal)] : []),
          };
        } else {
          const check = mode === GLOBAL || recurse;
          found = {
            entry: new Uint8Array([...locals, ...(recurse ? globalCheck : [])]),
            loop: new Uint8Array(check ? globalCheck : []),
            syncOut: EMPTY,
            syncIn: EMPTY,
            bulk: new Uint8Array(bulk ? [LOCAL_TEE, ...t, GLOBAL_GET, ...g, ...weigh, ...setGlobal, GLOBAL_GET, ...g, 0x41, 0x00, I32_LE_S, ...reset(setGlobal)] : []),
          };
        }
        shared.set(key, found);
      }
      this.snippets[i] = found;
    }
  }

  /** Bytes to insert at a site of `kind` (ENTRY, LOOP, SYNC_OUT, SYNC_IN, BULK) in function body `body`. */
  at(kind: number, body: number): Uint8Array {
    const s = this.snippets[body]!;
    switch (kind) {
      case LOOP:
        return s.loop;
      case SYNC_OUT:
        return s.syncOut;
      case SYNC_IN:
        return s.syncIn;
      case ENTRY:
        return s.entry;
      case BULK:
        return s.bulk;
      default:
        return EMPTY;
    }
  }

  /** Local declaration groups the body has after the rewrite. */
  localGroups(body: number): number {
    return this.bodies.groups[body]! + (this.extraLocals[body] ? 1 : 0);
  }
}
