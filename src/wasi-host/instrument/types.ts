// Value types, block types and limits: the type grammar that instructions and
// sections embed. Only their extent matters to a rewrite, except for limits,
// which capMemory changes.
import { WasmUnsupportedError } from '../../errors.js';
import type { Reader } from './bytes.js';

// Single-byte value types: numbers, v128, and the reference shorthands of
// reference types (funcref, externref), exception handling (exnref) and the
// abstract heap types that function references and GC name.
const SHORT_VALTYPE = new Uint8Array(256);
for (const t of [0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x71, 0x72, 0x73, 0x74]) {
  SHORT_VALTYPE[t] = 1;
}
const REF_NULL = 0x63;
const REF = 0x64;

export function skipHeapType(r: Reader): void {
  r.skipLeb(5); // s33: an abstract heap type (negative, one byte) or a type index
}

export function skipValType(r: Reader): void {
  const at = r.pos;
  const t = r.u8();
  if (SHORT_VALTYPE[t] === 1) return;
  if (t === REF_NULL || t === REF) return skipHeapType(r);
  r.fail(`unknown value type 0x${t.toString(16)}`, at);
}

export function skipBlockType(r: Reader): void {
  const t = r.peek();
  if (t === 0x40 || SHORT_VALTYPE[t] === 1) {
    r.pos++;
  } else if (t === REF_NULL || t === REF) {
    r.pos++;
    skipHeapType(r);
  } else {
    const at = r.pos;
    if (r.s33() < 0) r.fail(`unknown block type 0x${t.toString(16)}`, at);
  }
}

export interface Limits {
  /** Offset of the flags byte; the limits end at `end`. */
  start: number;
  end: number;
  flags: number;
  min: number;
  max: number | undefined;
}

const HAS_MAX = 0x01;
const SHARED = 0x02;
const IS_64 = 0x04;

/** Whether a memory's limits make it shared (threads). */
export function isShared(limits: Limits): boolean {
  return (limits.flags & SHARED) !== 0;
}

/** 1 for a 64-bit memory's (or table's) limits, else 0. */
export function is64(limits: Limits): number {
  return limits.flags & IS_64 ? 1 : 0;
}

export function readLimits(r: Reader): Limits {
  const start = r.pos;
  const flags = r.u8();
  if (flags & ~(HAS_MAX | SHARED | IS_64)) throw new WasmUnsupportedError(start, `limits flags 0x${flags.toString(16)}`);
  const is64 = (flags & IS_64) !== 0;
  const min = is64 ? r.u64() : r.u32();
  const max = flags & HAS_MAX ? (is64 ? r.u64() : r.u32()) : undefined;
  return { start, end: r.pos, flags, min, max };
}

export function encodeLimits(flags: number, min: number, max: number | undefined): Uint8Array {
  const out: number[] = [max === undefined ? flags & ~HAS_MAX : flags | HAS_MAX];
  for (const v of max === undefined ? [min] : [min, max]) {
    let x = v;
    do {
      const b = x % 128;
      x = Math.floor(x / 128);
      out.push(x > 0 ? b | 0x80 : b);
    } while (x > 0);
  }
  return new Uint8Array(out);
}

export function skipTableType(r: Reader): void {
  skipValType(r); // a reference type
  readLimits(r);
}

export interface GlobalType {
  mutable: boolean;
  /**
   * Its value type's byte; for a reference to an abstract heap type, that
   * heap type's byte ((ref null exn) reads as exnref, 0x69); for a reference
   * to a type index, REF (0x64). Enough to tell the types JavaScript cannot
   * hold (v128, exnref).
   */
  valType: number;
}

export function readGlobalType(r: Reader): GlobalType {
  const start = r.pos;
  skipValType(r);
  let valType = r.bytes[start]!;
  if (valType === REF_NULL || valType === REF) {
    // An abstract heap type is one negative s33 byte (0x40-0x7f); anything else is a type index.
    const heap = r.bytes[start + 1]!;
    valType = r.pos === start + 2 && heap >= 0x40 ? heap : REF;
  }
  const at = r.pos;
  const mut = r.u8();
  if (mut > 1) throw new WasmUnsupportedError(at, `global mutability 0x${mut.toString(16)}`);
  return { mutable: mut === 1, valType };
}
