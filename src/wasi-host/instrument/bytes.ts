// Reading and writing the Wasm binary format's primitives: bytes, LEB128
// integers and names. Every read is bounds-checked against the end of the
// region being read, so a truncated or lying module ends in a WasmDecodeError
// naming the offset, never in a read past the end or a loop over a bogus count.
import { WasmDecodeError } from '../../errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: false });

export class Reader {
  pos: number;

  /** Reading stops here; a decoder may move it to read a nested region with the same reader. */
  end: number;

  constructor(
    readonly bytes: Uint8Array,
    pos: number,
    end: number,
  ) {
    this.pos = pos;
    this.end = end;
  }

  fail(reason: string, at: number = this.pos): never {
    throw new WasmDecodeError(at, reason);
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  u8(): number {
    if (this.pos >= this.end) this.fail('unexpected end');
    return this.bytes[this.pos++]!;
  }

  peek(): number {
    if (this.pos >= this.end) this.fail('unexpected end');
    return this.bytes[this.pos]!;
  }

  skip(n: number): void {
    if (n > this.end - this.pos) this.fail(`unexpected end (${n} bytes needed)`);
    this.pos += n;
  }

  /** Unsigned LEB128 of at most 32 bits (5 bytes). */
  u32(): number {
    const p = this.pos;
    if (p < this.end) {
      const b = this.bytes[p]!;
      if (b < 0x80) {
        this.pos = p + 1;
        return b;
      }
    }
    return this.u32Long();
  }

  private u32Long(): number {
    const start = this.pos;
    const bytes = this.bytes;
    let result = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (this.pos >= this.end) this.fail('unexpected end');
      const b = bytes[this.pos++]!;
      result |= (b & 0x7f) << shift;
      if (b < 0x80) return result;
    }
    if (this.pos >= this.end) this.fail('unexpected end');
    const last = bytes[this.pos++]!;
    if (last > 0x0f) this.fail('integer representation too long or too large', start);
    return result + last * 2 ** 28;
  }

  /** Unsigned LEB128 of at most 64 bits, as a number (exact below 2^53, which limits never exceed when valid). */
  u64(): number {
    const start = this.pos;
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.u8();
      if (shift === 63 && b > 0x01) this.fail('integer representation too long or too large', start);
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > Number.MAX_SAFE_INTEGER) this.fail('integer too large', start);
        return result;
      }
      shift += 7;
    }
  }

  /** Skips any LEB128 of at most `maxBytes` bytes (s32: 5, s33: 5, s64/u64: 10). */
  skipLeb(maxBytes: number): void {
    const p = this.pos;
    if (p < this.end && this.bytes[p]! < 0x80) {
      this.pos = p + 1;
      return;
    }
    const start = this.pos;
    const bytes = this.bytes;
    for (let i = 0; i < maxBytes; i++) {
      if (this.pos >= this.end) this.fail('unexpected end');
      if ((bytes[this.pos++]! & 0x80) === 0) return;
    }
    this.fail('integer representation too long', start);
  }

  /** Signed 33-bit LEB128 (block types, heap types); values beyond ±2^31 are not valid anyway. */
  s33(): number {
    const start = this.pos;
    let result = 0;
    let shift = 0;
    let b: number;
    do {
      if (shift >= 35) this.fail('integer representation too long', start);
      b = this.u8();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    if (b & 0x40) result -= 2 ** shift;
    return result;
  }

  /** A length-prefixed byte string: returns [start, end) and skips it. */
  byteString(): [number, number] {
    const len = this.u32();
    const start = this.pos;
    this.skip(len);
    return [start, this.pos];
  }

  /** A name, decoded for comparison and messages (invalid UTF-8 is the engine's to refuse). */
  name(): string {
    const [start, end] = this.byteString();
    return utf8.decode(this.bytes.subarray(start, end));
  }

  /** A vector's element count, which cannot exceed the bytes left (each element takes at least one). */
  count(): number {
    const at = this.pos;
    const n = this.u32();
    if (n > this.end - this.pos) this.fail(`count ${n} exceeds the ${this.end - this.pos} bytes left`, at);
    return n;
  }
}

/** Bytes an unsigned LEB128 of `value` takes, at least `minWidth` (padding keeps an encoder's choice). */
export function lebWidth(value: number, minWidth = 1): number {
  let w = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    w++;
  }
  return w > minWidth ? w : minWidth;
}

/** Writes an unsigned LEB128 into `out` at `at`, padded to `width` bytes; returns the next offset. */
export function putU32(out: Uint8Array, at: number, value: number, width: number): number {
  for (let i = 1; i < width; i++) {
    out[at++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at++] = value & 0x7f;
  return at;
}

export function u32Bytes(value: number, minWidth = 1): Uint8Array {
  const out = new Uint8Array(lebWidth(value, minWidth));
  putU32(out, 0, value, out.length);
  return out;
}

export function s32Bytes(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = value & 0x7f;
    value >>= 7;
    const last = (value === 0 && (b & 0x40) === 0) || (value === -1 && (b & 0x40) !== 0);
    out.push(last ? b : b | 0x80);
    if (last) return out;
  }
}

export function nameBytes(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...u32Bytes(b.length), ...b];
}
