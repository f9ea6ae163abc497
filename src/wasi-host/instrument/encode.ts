// Writes a decoded module back out with a rewrite applied: one forward copy of
// the original bytes in which each site (sites.ts) is renumbered, resized,
// replaced or followed by inserted bytes. Sizes are known before writing: a
// backward pass adds up how much each size-prefixed region grows, so the
// output is allocated once at its exact length.
import { lebWidth, putU32 } from './bytes.js';
import type { DecodedModule } from './decode.js';
import { APPEND, FUNC, GROW, INSERT, LOCALS, REPLACE, SIZE, SiteList, type Edit } from './sites.js';

const DEAD = 255; // a site inside bytes that a REPLACE removes

/** What goes into function bodies (yield-code.ts). */
export interface CodeInserts {
  /** Bytes to insert at a site of `kind` (ENTRY, LOOP, SYNC_OUT, SYNC_IN, BULK) in body `body`. */
  at(kind: number, body: number): Uint8Array;
  /** The body's count of local declaration groups after the rewrite. */
  localGroups(body: number): number;
}

export interface EncodeOptions {
  /** Function indices at or above this move up by `funcShift` (function imports were added there). */
  funcShiftFrom: number;
  /** How many function imports were added (default 1). */
  funcShift?: number;
  code: CodeInserts | undefined;
  /** What replaces each memory.grow of memory 0 (a call of the host's hook); absent: they stay. */
  growCall?: Uint8Array;
}

function merge(sites: SiteList, edits: readonly Edit[]): SiteList {
  if (edits.length === 0) return sites;
  // At one offset, an APPEND (the end of the region before) precedes an
  // INSERT (a new section there); edits precede decoded sites.
  const order = (e: Edit) => e.pos * 4 + (e.kind === APPEND ? 0 : e.kind === INSERT ? 1 : 2);
  const sorted = [...edits].sort((a, b) => order(a) - order(b));
  const out = new SiteList(sites.length + sorted.length);
  let from = 0;
  for (const x of sorted) {
    const at = sites.firstAtOrAfter(x.pos);
    out.appendRange(sites, from, at);
    from = at;
    out.add(x.kind, x.pos, x.len, 0, x.data);
  }
  out.appendRange(sites, from, sites.length);
  return out;
}

/**
 * For each SIZE site, the index of the first site after its region. A site
 * at a region's end is outside it, except an APPEND, which belongs to the
 * outermost region ending there (a section, not its last function body).
 * Sites a REPLACE covers are marked DEAD.
 */
function regionEnds(s: SiteList): Int32Array {
  const n = s.length;
  const endSite = new Int32Array(n);
  const stack: number[] = [];
  const stackEnd: number[] = [];
  let deadUntil = -1;
  for (let j = 0; j < n; j++) {
    const p = s.pos[j]!;
    const k = s.kind[j]!;
    if (p < deadUntil) {
      s.kind[j] = DEAD;
      continue;
    }
    for (let top = stack.length - 1; top >= 0; top = stack.length - 1) {
      const e = stackEnd[top]!;
      const outside = e < p || (e === p && (k !== APPEND || (top > 0 && stackEnd[top - 1] === p)));
      if (!outside) break;
      endSite[stack.pop()!] = j;
      stackEnd.pop();
    }
    if (k === SIZE) {
      stack.push(j);
      stackEnd.push(p + s.len[j]! + s.value[j]!);
    } else if (k === REPLACE) {
      deadUntil = p + s.len[j]!;
    }
  }
  for (const i of stack) endSite[i] = n;
  return endSite;
}

export function encodeModule(m: DecodedModule, edits: readonly Edit[], options: EncodeOptions): Uint8Array {
  const bytes = m.bytes;
  const s = merge(m.sites, edits);
  const n = s.length;
  const endSite = regionEnds(s);
  const shiftFrom = options.funcShiftFrom;
  const shift = options.funcShift ?? 1;
  const code = options.code;
  const growCall = options.growCall;

  // Backward: what each site adds, and the new value and width of every
  // index and size prefix.
  const grows = new Float64Array(n + 1); // grows[i] = bytes added by sites i..n-1
  const newValue = new Float64Array(n);
  const newWidth = new Uint8Array(n);
  const { kind, pos, len: lens, value, data } = s;
  for (let i = n - 1; i >= 0; i--) {
    const len = lens[i]!;
    let d = 0;
    let leb = -1; // a LEB128 the site rewrites, at least as wide as before
    switch (kind[i]) {
      case FUNC: {
        const f = value[i]!;
        leb = f >= shiftFrom ? f + shift : f;
        break;
      }
      case GROW:
        if (growCall) d = growCall.length - len;
        break;
      case LOCALS:
        leb = code ? code.localGroups(value[i]!) : m.bodies.groups[value[i]!]!;
        break;
      case SIZE:
        leb = value[i]! + grows[i + 1]! - grows[endSite[i]!]!;
        break;
      case REPLACE:
        d = data[i]!.length - len;
        break;
      case APPEND:
      case INSERT:
        d = data[i]!.length;
        break;
      case DEAD:
        break;
      default: // code inserts
        d = code ? code.at(kind[i]!, value[i]!).length : 0;
    }
    if (leb >= 0) {
      const w = lebWidth(leb, len);
      newValue[i] = leb;
      newWidth[i] = w;
      d = w - len;
    }
    grows[i] = grows[i + 1]! + d;
  }

  // Forward: copy, applying each site.
  const out = new Uint8Array(bytes.length + grows[0]!);
  let o = 0;
  let cur = 0;
  for (let j = 0; j < n; j++) {
    const k = kind[j]!;
    if (k === DEAD) continue;
    const p = pos[j]!;
    if (p - cur > 192) {
      // (set() on a subarray allocates; a short gap copies faster by hand)
      out.set(bytes.subarray(cur, p), o);
      o += p - cur;
    } else {
      while (cur < p) out[o++] = bytes[cur++]!;
    }
    cur = p;
    switch (k) {
      case FUNC:
      case SIZE:
      case LOCALS:
        o = putU32(out, o, newValue[j]!, newWidth[j]!);
        cur = p + lens[j]!;
        break;
      case GROW:
        if (growCall) {
          out.set(growCall, o);
          o += growCall.length;
          cur = p + lens[j]!;
        }
        break;
      case REPLACE:
      case APPEND:
      case INSERT: {
        const bytesIn = data[j]!;
        out.set(bytesIn, o);
        o += bytesIn.length;
        if (k === REPLACE) cur = p + lens[j]!;
        break;
      }
      default: // code inserts
        if (code) {
          const ins = code.at(k, value[j]!);
          for (let x = 0; x < ins.length; x++) out[o++] = ins[x]!;
        }
    }
  }
  out.set(bytes.subarray(cur), o);
  o += bytes.length - cur;
  if (o !== out.length) throw new Error(`instrument: wrote ${o} bytes, expected ${out.length}`);
  return out;
}
