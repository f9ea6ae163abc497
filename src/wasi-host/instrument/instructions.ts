// Walks a Wasm expression (a function body or a constant expression) one
// instruction at a time, skipping every immediate exactly, and records the
// sites a rewrite needs: function indices (call, return_call, ref.func), and
// in function bodies loop headers and the points where control leaves the
// function or calls into the guest and comes back; in any expression, the
// instructions that change state a reset cannot put back (STATE_OPS). It
// knows MVP, sign extension, non-trapping float-to-int, bulk memory and
// reference types, SIMD and relaxed SIMD, threads, tail calls,
// exception handling (legacy and exnref), multi-memory and memory64 memargs,
// extended constants and typed function references. GC (0xFB) and any opcode
// it does not know end in a WasmUnsupportedError naming the offset: guessing
// an immediate's length would desynchronise everything after it.
import { WasmUnsupportedError } from '../../errors.js';
import type { Reader } from './bytes.js';
import type { EdgeList } from './call-graph.js';
import { BULK, FUNC, GROW, LOOP, SYNC_IN, SYNC_OUT, type SiteList } from './sites.js';
import { skipBlockType, skipHeapType, skipValType } from './types.js';

// How each one-byte opcode's immediates are laid out.
const NONE = 1;
const BLOCK = 2; // block, if, try: block type, opens a frame
const LOOP_OP = 3; // loop: block type, opens a frame, a yield point
const END = 4;
const IDX = 5; // one u32 index (local, global, table, memory, type)
const MEMARG = 6;
const I32 = 7;
const I64 = 8;
const F32 = 9;
const F64 = 10;
const CALL = 11; // call: a function index
const RETURN_CALL = 12; // return_call: a function index, leaves the function
const CALL_INDIRECT = 13; // call_indirect: type index, table index
const RETURN_CALL_INDIRECT = 14;
const CALL_REF = 15; // call_ref: a type index
const RETURN_CALL_REF = 16;
const BR = 17; // br, br_if, br_on_null, br_on_non_null: a label
const BR_TABLE = 18;
const LEAVE = 19; // return, throw_ref: leave the function
const THROW = 20; // throw, rethrow: an index, leave the function
const CATCH = 21; // legacy catch: a tag, control arrives from a throw
const CATCH_ALL = 22;
const SELECT_T = 23;
const TRY_TABLE = 24;
const REF_NULL = 25;
const REF_FUNC = 26;
const DELEGATE = 27; // legacy try ... delegate l: closes the try's frame
const PREFIX_FC = 28;
const PREFIX_FD = 29;
const PREFIX_FE = 30;
const PREFIX_GC = 31;
const MEMORY_GROW = 32; // memory.grow: a memory index; a site when it grows memory 0
const TABLE_SET = 33; // table.set: a table index; changes state (STATE_OPS)

const OP = new Uint8Array(256); // 0 = unknown
function set(kind: number, ...ops: number[]): void {
  for (const op of ops) OP[op] = kind;
}
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
set(NONE, 0x00, 0x01, 0x05, 0x1a, 0x1b, 0xd1, 0xd3, 0xd4, ...range(0x45, 0xc4));
set(BLOCK, 0x02, 0x04, 0x06);
set(LOOP_OP, 0x03);
set(END, 0x0b);
set(IDX, ...range(0x20, 0x25), 0x3f); // local.*, global.*, table.get, memory.size
set(TABLE_SET, 0x26); // out of the fast path, which knows only IDX: it is rare
set(MEMORY_GROW, 0x40);
set(MEMARG, ...range(0x28, 0x3e));
set(I32, 0x41);
set(I64, 0x42);
set(F32, 0x43);
set(F64, 0x44);
set(CALL, 0x10);
set(RETURN_CALL, 0x12);
set(CALL_INDIRECT, 0x11);
set(RETURN_CALL_INDIRECT, 0x13);
set(CALL_REF, 0x14);
set(RETURN_CALL_REF, 0x15);
set(BR, 0x0c, 0x0d, 0xd5, 0xd6);
set(BR_TABLE, 0x0e);
set(LEAVE, 0x0f, 0x0a);
set(THROW, 0x08, 0x09);
set(CATCH, 0x07);
set(CATCH_ALL, 0x19);
set(SELECT_T, 0x1c);
set(TRY_TABLE, 0x1f);
set(REF_NULL, 0xd0);
set(REF_FUNC, 0xd2);
set(DELEGATE, 0x18);
set(PREFIX_FC, 0xfc);
set(PREFIX_FD, 0xfd);
set(PREFIX_FE, 0xfe);
set(PREFIX_GC, 0xfb);

// 0xFC: saturating truncations (0-7), bulk memory and table instructions:
// how many u32 immediates each takes.
const FC_IMMEDIATES = [0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 2, 1, 2, 1, 1, 1];
const MEMORY_INIT = 8; // data index, memory index
const MEMORY_COPY = 10; // destination memory, source memory
const MEMORY_FILL = 11; // memory index

/**
 * The instructions that change what a copy of memories and globals cannot
 * put back: a table's contents or size, a segment dropped (memory.init,
 * memory.copy and memory.fill only change memory). Each has a bit in
 * ScanContext.stateOps: an 0xFC instruction the bit of its sub-opcode,
 * table.set bit 0 (sub-opcode 0 is a truncation).
 */
export const STATE_OPS: readonly { bit: number; name: string; effect: string }[] = [
  { bit: 1 << 0, name: 'table.set', effect: 'changes a table' },
  { bit: 1 << 12, name: 'table.init', effect: 'changes a table' },
  { bit: 1 << 14, name: 'table.copy', effect: 'changes a table' },
  { bit: 1 << 15, name: 'table.grow', effect: 'changes a table' },
  { bit: 1 << 17, name: 'table.fill', effect: 'changes a table' },
  { bit: 1 << 9, name: 'data.drop', effect: 'drops a data segment' },
  { bit: 1 << 13, name: 'elem.drop', effect: 'drops an element segment' },
];
const STATE_TABLE_SET = 1 << 0;
const STATE_FC = STATE_OPS.reduce((mask, op) => mask | op.bit, 0) & ~STATE_TABLE_SET;

// 0xFD (SIMD, relaxed SIMD), by sub-opcode.
const V_NONE = 1;
const V_MEMARG = 2;
const V_BYTES16 = 3; // v128.const, i8x16.shuffle
const V_LANE = 4; // extract/replace lane
const V_MEMARG_LANE = 5; // load/store lane
const SIMD = new Uint8Array(0x114);
SIMD.fill(V_NONE);
for (const op of range(0x00, 0x0b)) SIMD[op] = V_MEMARG;
SIMD[0x0c] = SIMD[0x0d] = V_BYTES16;
for (const op of range(0x15, 0x22)) SIMD[op] = V_LANE;
for (const op of range(0x54, 0x5b)) SIMD[op] = V_MEMARG_LANE;
SIMD[0x5c] = SIMD[0x5d] = V_MEMARG;
// Holes the SIMD proposal left unassigned.
for (const op of [0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee]) {
  SIMD[op] = 0;
}

// Block types of one byte: empty (0x40) or a single-byte value type.
const SHORT_BLOCKTYPE = new Uint8Array(256);
for (const t of [0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69]) SHORT_BLOCKTYPE[t] = 1;

/** The offset after a LEB128 of at most `max` bytes at `p`, or -1 if it is longer (or runs off the array). */
function lebEnd(bytes: Uint8Array, p: number, max: number): number {
  for (let i = 0; i < max; i++) if (bytes[p + i]! < 0x80) return p + i + 1;
  return -1;
}

function hex(...bytes: number[]): string {
  return bytes.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ');
}

function skipMemarg(r: Reader): void {
  const align = r.u32();
  if (align & 0x40) r.u32(); // multi-memory: a memory index follows
  r.skipLeb(10); // offset: u32, or u64 for memory64
}

/** Where a scan records what it finds. */
export interface ScanContext {
  sites: SiteList;
  /** Function indices below this are imports. */
  importedFuncs: number;
  /** Direct calls between the module's own functions, as indices among them. */
  calls: EdgeList;
  /** Per defined function: 1 once a ref.func names it. */
  escapes: Uint8Array;
  /** Per memory (imports first): 1 if it is 64-bit. */
  memory64: number[];
  /** The STATE_OPS bits of the instructions found in any expression. */
  stateOps: number;
}

/** What scanning a function body found besides its sites. */
export interface ScanFacts {
  loops: number;
  /** It calls through a table or a reference. */
  callsIndirect: boolean;
  /** try_table catches land on ordinary labels, where a counter in a local could be stale. */
  hasTryTable: boolean;
  /** Bulk memory instructions weighted as yield points. */
  bulk: number;
  /** memory.grow instructions on memory 0 (GROW sites). */
  grows: number;
}

/**
 * Reads one expression from `r` up to and including the `end` that closes
 * it, recording function-index sites, and, when `body` is a function body's
 * index (not -1), the yield-point sites tagged with it and its calls.
 */
export function scanExpression(r: Reader, ctx: ScanContext, body: number): ScanFacts {
  const { sites, importedFuncs } = ctx;
  const bytes = r.bytes;
  const inBody = body >= 0;
  const facts: ScanFacts = { loops: 0, callsIndirect: false, hasTryTable: false, bulk: 0, grows: 0 };
  let depth = 0; // open frames inside the expression; a label equal to it names the function
  const end = r.end;
  for (;;) {
    // Most instructions are plain, take LEB128 immediates or open and close
    // blocks, and need no site: walk runs of them here without calls. Reading
    // past `end` in here can only move `p` past it, which the check below
    // reports; anything unusual (a long LEB128, a site) takes the full path.
    let p = r.pos;
    for (;;) {
      if (p >= end) break;
      const cls = OP[bytes[p]!];
      if (cls === NONE) {
        p++;
      } else if (cls === IDX || cls === I32) {
        const q = lebEnd(bytes, p + 1, 5);
        if (q < 0) break;
        p = q;
      } else if (cls === MEMARG) {
        if (bytes[p + 1]! >= 0x40) break; // a memory index follows, or a long alignment
        const q = lebEnd(bytes, p + 2, 10); // the offset: u64 under memory64
        if (q < 0) break;
        p = q;
      } else if (cls === BLOCK && SHORT_BLOCKTYPE[bytes[p + 1]!] === 1) {
        p += 2;
        depth++;
      } else if (cls === END && depth > 0) {
        p++;
        depth--;
      } else if (cls === BR && bytes[p + 1]! < 0x80 && (bytes[p + 1] !== depth || !inBody)) {
        p += 2;
      } else {
        break;
      }
    }
    const at = (r.pos = p);
    if (at >= end) r.fail('expression not terminated by end', Math.min(at, end));
    const op = bytes[at]!;
    r.pos = at + 1;
    switch (OP[op]) {
      case NONE:
        break;
      case IDX:
        r.skipLeb(5);
        break;
      case MEMARG:
        skipMemarg(r);
        break;
      case I32:
        r.skipLeb(5);
        break;
      case TABLE_SET:
        r.skipLeb(5);
        ctx.stateOps |= STATE_TABLE_SET;
        break;
      case MEMORY_GROW: {
        const memory = r.u32();
        // A host can only hook 32-bit memory 0 (the one memory of every toolchain in use).
        if (inBody && memory === 0 && ctx.memory64[0] === 0) {
          sites.add(GROW, at, r.pos - at, body);
          facts.grows++;
        }
        break;
      }
      case END:
        if (depth === 0) {
          if (inBody) sites.add(SYNC_OUT, at, 0, body);
          return facts;
        }
        depth--;
        break;
      case BLOCK:
        skipBlockType(r);
        depth++;
        break;
      case LOOP_OP:
        skipBlockType(r);
        depth++;
        facts.loops++;
        if (inBody) sites.add(LOOP, r.pos, 0, body);
        break;
      case BR: {
        const label = r.u32();
        if (inBody && label === depth) sites.add(SYNC_OUT, at, 0, body);
        break;
      }
      case CALL:
      case RETURN_CALL: {
        const start = r.pos;
        const f = r.u32();
        const guest = f >= importedFuncs;
        if (guest && inBody) ctx.calls.add(body, f - importedFuncs);
        // Write back before any call: an import cannot run guest code, but it
        // can throw, and a catch here reads the counter back from the global.
        if (inBody) sites.add(SYNC_OUT, at, 0, body);
        if (guest) sites.add(FUNC, start, r.pos - start, f); // imports keep their indices
        if (inBody && guest && OP[op] !== RETURN_CALL) sites.add(SYNC_IN, r.pos, 0, body);
        break;
      }
      case I64:
        r.skipLeb(10);
        break;
      case F32:
        r.skip(4);
        break;
      case F64:
        r.skip(8);
        break;
      case CALL_INDIRECT:
      case RETURN_CALL_INDIRECT:
      case CALL_REF:
      case RETURN_CALL_REF: {
        const kind = OP[op];
        r.skipLeb(5); // type index
        if (kind === CALL_INDIRECT || kind === RETURN_CALL_INDIRECT) r.skipLeb(5); // table index
        facts.callsIndirect = true;
        if (inBody) {
          sites.add(SYNC_OUT, at, 0, body);
          if (kind === CALL_INDIRECT || kind === CALL_REF) sites.add(SYNC_IN, r.pos, 0, body);
        }
        break;
      }
      case BR_TABLE: {
        const n = r.count();
        let leaves = false;
        for (let i = 0; i <= n; i++) if (r.u32() === depth) leaves = true;
        if (inBody && leaves) sites.add(SYNC_OUT, at, 0, body);
        break;
      }
      case LEAVE:
        if (inBody) sites.add(SYNC_OUT, at, 0, body);
        break;
      case THROW:
        r.skipLeb(5);
        if (inBody) sites.add(SYNC_OUT, at, 0, body);
        break;
      case CATCH:
        r.skipLeb(5);
        if (inBody) sites.add(SYNC_IN, r.pos, 0, body);
        break;
      case CATCH_ALL:
        if (inBody) sites.add(SYNC_IN, r.pos, 0, body);
        break;
      case SELECT_T: {
        const n = r.count();
        for (let i = 0; i < n; i++) skipValType(r);
        break;
      }
      case TRY_TABLE: {
        skipBlockType(r);
        const n = r.count();
        for (let i = 0; i < n; i++) {
          const kindAt = r.pos;
          const kind = r.u8();
          if (kind > 3) r.fail(`unknown catch kind ${kind}`, kindAt);
          if (kind < 2) r.skipLeb(5); // catch, catch_ref: a tag
          r.skipLeb(5); // the label
        }
        depth++;
        facts.hasTryTable = true;
        break;
      }
      case REF_NULL:
        skipHeapType(r);
        break;
      case REF_FUNC: {
        const start = r.pos;
        const f = r.u32();
        if (f >= importedFuncs) {
          sites.add(FUNC, start, r.pos - start, f);
          if (f - importedFuncs < ctx.escapes.length) ctx.escapes[f - importedFuncs] = 1;
        }
        break;
      }
      case DELEGATE:
        r.skipLeb(5);
        if (depth === 0) r.fail('delegate outside a try block', at);
        depth--;
        break;
      case PREFIX_FC: {
        const sub = r.u32();
        const n = FC_IMMEDIATES[sub];
        if (n === undefined) throw new WasmUnsupportedError(at, `instruction ${hex(op)} ${sub}`);
        // One bulk instruction can take as long as millions of loop turns, so
        // it counts by its length, which is an i32 unless its memory (both,
        // for a copy) is 64-bit.
        let weighed = false;
        if (sub === MEMORY_FILL) {
          weighed = ctx.memory64[r.u32()] !== 1;
        } else if (sub === MEMORY_COPY) {
          weighed = ctx.memory64[r.u32()] !== 1;
          weighed = ctx.memory64[r.u32()] !== 1 || weighed;
        } else if (sub === MEMORY_INIT) {
          r.skipLeb(5);
          r.skipLeb(5);
          weighed = true;
        } else {
          for (let i = 0; i < n; i++) r.skipLeb(5);
          if (STATE_FC & (1 << sub)) ctx.stateOps |= 1 << sub;
        }
        if (weighed && inBody) {
          sites.add(BULK, at, 0, body);
          facts.bulk++;
        }
        break;
      }
      case PREFIX_FD: {
        const sub = r.u32();
        switch (sub < SIMD.length ? SIMD[sub] : 0) {
          case V_NONE:
            break;
          case V_MEMARG:
            skipMemarg(r);
            break;
          case V_BYTES16:
            r.skip(16);
            break;
          case V_LANE:
            r.skip(1);
            break;
          case V_MEMARG_LANE:
            skipMemarg(r);
            r.skip(1);
            break;
          default:
            throw new WasmUnsupportedError(at, `SIMD instruction ${hex(op)} ${sub}`);
        }
        break;
      }
      case PREFIX_FE: {
        const sub = r.u32();
        if (sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e)) skipMemarg(r);
        else if (sub === 0x03) r.skip(1); // atomic.fence: a reserved byte
        else throw new WasmUnsupportedError(at, `atomic instruction ${hex(op)} ${sub}`);
        break;
      }
      case PREFIX_GC:
        throw new WasmUnsupportedError(at, `GC instruction ${hex(op, bytes[at + 1] ?? 0)}`);
      default:
        throw new WasmUnsupportedError(at, `instruction ${hex(op)}`);
    }
  }
}
