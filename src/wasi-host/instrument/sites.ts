// The places in a module where a rewrite may change bytes, in file order.
//
// Decoding records every function index (they shift when an import is
// added), every loop header, function entry, call and exit (where yield
// checks and counter syncs go) and every size prefix (which grows when its
// contents do). A rewrite adds
// replacements (a vector's count, a memory's limits) and insertions (a new
// entry, a new section). Encoding is then one forward copy of the original
// bytes with these sites applied, so everything not named here, including
// padded LEB128 encodings a toolchain chose, comes out byte for byte.

export const FUNC = 0; // a function index: value = the index, len = its encoded width
export const SIZE = 1; // a size prefix: value = the original size of the region after it, len = its width
export const REPLACE = 2; // replace len bytes with `data`
export const APPEND = 3; // insert `data` at the end of the enclosing region (counted in its size)
export const INSERT = 4; // insert `data` here, outside any region that ends here
// Sites in function bodies where yield points may go; value = the body's
// index, whose facts (decode.ts, Bodies) decide what is inserted.
export const LOCALS = 5; // the count of local declaration groups: len = its width
export const ENTRY = 6; // the function entry, just after the local declarations
export const LOOP = 7; // a loop header, just after the loop's block type
export const SYNC_OUT = 8; // before control may leave the function or enter another: call, return, throw, br to the function's label, its final end
export const SYNC_IN = 9; // after control comes back: after a call, at the start of a catch
export const BULK = 10; // before memory.fill, memory.copy or memory.init (32-bit length): a yield point weighted by its length
export const GROW = 11; // memory.grow of memory 0 (32-bit): len = the instruction's bytes, replaced by a call of the host's grow hook when asked

export class SiteList {
  kind: Uint8Array;
  pos: Int32Array;
  len: Int32Array;
  value: Float64Array;
  data: (Uint8Array | undefined)[] = [];
  length = 0;

  constructor(capacity = 64) {
    this.kind = new Uint8Array(capacity);
    this.pos = new Int32Array(capacity);
    this.len = new Int32Array(capacity);
    this.value = new Float64Array(capacity);
  }

  private grow(): void {
    const cap = this.kind.length * 2;
    const kind = new Uint8Array(cap);
    kind.set(this.kind);
    const pos = new Int32Array(cap);
    pos.set(this.pos);
    const len = new Int32Array(cap);
    len.set(this.len);
    const value = new Float64Array(cap);
    value.set(this.value);
    this.kind = kind;
    this.pos = pos;
    this.len = len;
    this.value = value;
  }

  add(kind: number, pos: number, len: number, value: number, data?: Uint8Array): number {
    if (this.length === this.kind.length) this.grow();
    const i = this.length++;
    this.kind[i] = kind;
    this.pos[i] = pos;
    this.len[i] = len;
    this.value[i] = value;
    if (data !== undefined) this.data[i] = data;
    return i;
  }

  /** Appends sites [from, to) of `src`, which has no `data`. */
  appendRange(src: SiteList, from: number, to: number): void {
    const n = to - from;
    while (this.length + n > this.kind.length) this.grow();
    this.kind.set(src.kind.subarray(from, to), this.length);
    this.pos.set(src.pos.subarray(from, to), this.length);
    this.len.set(src.len.subarray(from, to), this.length);
    this.value.set(src.value.subarray(from, to), this.length);
    this.length += n;
  }

  /** The index of the first site at or after offset `pos` (sites are in file order). */
  firstAtOrAfter(pos: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.pos[mid]! < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drops the SYNC_OUT and SYNC_IN sites from index `from` on (a function that keeps no counter in a local). */
  dropSyncs(from: number): void {
    let w = from;
    for (let i = from; i < this.length; i++) {
      const k = this.kind[i]!;
      if (k === SYNC_OUT || k === SYNC_IN) continue;
      if (w !== i) {
        this.kind[w] = k;
        this.pos[w] = this.pos[i]!;
        this.len[w] = this.len[i]!;
        this.value[w] = this.value[i]!;
      }
      w++;
    }
    this.length = w;
  }

  /** Drops every site from index `n` on (a custom section that turned out malformed). */
  truncate(n: number): void {
    this.length = n;
    this.data.length = Math.min(this.data.length, n);
  }
}

/** A change a rewrite asks for, merged into the decoded sites at encode time. */
export interface Edit {
  kind: typeof REPLACE | typeof APPEND | typeof INSERT;
  pos: number;
  len: number;
  data: Uint8Array;
}
