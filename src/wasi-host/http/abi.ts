// The Component Model's canonical ABI, the part wasi:io and wasi:http need,
// for host functions handed to a component's core module as they are.
//
// Why: jco's generated glue (1.35) wraps every import call in its Preview 3
// task machinery (a task, a subtask, promises, bookkeeping): measured ~20 µs
// per call, ~20 calls per request, more than everything else on a request's
// path together. jco has a hook for hosts that lower a function themselves:
// with importBindings 'hybrid', an import function carrying
// `[Symbol.for('cabiLower')]` is asked for a core function
// (`({ memory, realloc, resourceTables }) => coreFn`) that the core module
// then calls directly (preview2-shim uses the same hook for its pollables).
// Its arguments are core values (handles, pointers into the guest's memory):
// they are lifted into JS values, the host's implementation is called and
// its answer lowered back, following the canonical ABI's layout rules
// (https://github.com/WebAssembly/component-model, CanonicalABI.md). This
// module has the rules (layouts, a codec per type, handle tables);
// lowered.ts generates each host function's core function from them.
//
// Resources: a guest names a resource by a handle, an index into one of
// jco's handle tables (one per resource type and instance: pairs of
// [scope, rep | OWN_FLAG]); the rep is ours to choose. Ours come from a
// registry (Reps) whose reps never collide with the ones jco counts itself
// or preview2-shim's IO worker ids. jco gives a lowered function the tables
// of the resource types in its signature ordered by table index, not by
// type: which table is which is learnt from the handles a guest passes in
// (their reps tell the type) and from functions with a single table.

/** A WIT type, as far as wasi:io and wasi:http use them. */
export type Ty =
  /** list<u8> that the host holds as a latin1 string (one char per byte): header values, which Node reads and writes as latin1. */
  | 'latin1'
  | 'bool'
  | 'u8'
  | 'u16'
  | 'u32'
  | 'u64'
  | 'string'
  | { list: Ty }
  | { option: Ty }
  | { result: [ok: Ty | null, err: Ty | null] }
  | { tuple: Ty[] }
  | { record: [name: string, ty: Ty][] }
  | { variant: [name: string, ty: Ty | null][] }
  | { enum: string[] }
  | { own: string }
  | { borrow: string };

export interface FnType {
  params: Ty[];
  result: Ty | null;
}

type Flat = 'i32' | 'i64';
type Case = [string, Ty | null];

/** jco's handle table: [free-list head | FLAG, 0, scope, rep | OWN_FLAG, …]. */
export type HandleTable = number[] & { _createdReps?: Set<number> };
/** jco's handle-table flag: on a rep, an owned handle; on a slot's first word, a free slot. */
export const FLAG = 1 << 30;

// ---- layout ----

/** A variant-like type (option, result, enum, variant): which, and its cases in order. */
export function variantOf(t: Ty): { kind: 'option' | 'result' | 'enum' | 'variant'; cases: Case[] } | undefined {
  if (typeof t === 'string') return undefined;
  if ('option' in t) return { kind: 'option', cases: [['none', null], ['some', t.option]] };
  if ('result' in t) return { kind: 'result', cases: [['ok', t.result[0]], ['err', t.result[1]]] };
  if ('enum' in t) return { kind: 'enum', cases: t.enum.map((n) => [n, null]) };
  if ('variant' in t) return { kind: 'variant', cases: t.variant };
  return undefined;
}

const cases = (t: Ty): Case[] | undefined => variantOf(t)?.cases;

function fields(t: Ty): Ty[] | undefined {
  if (typeof t === 'string') return undefined;
  if ('tuple' in t) return t.tuple;
  if ('record' in t) return t.record.map(([, f]) => f);
  return undefined;
}

const alignTo = (n: number, a: number) => Math.ceil(n / a) * a;
/** Bytes of the discriminant of a variant with `n` cases. */
export const discSize = (n: number) => (n <= 256 ? 1 : n <= 65536 ? 2 : 4);

interface Layout {
  size: number;
  align: number;
  flat: Flat[];
  /** Variants: the payload's offset; records: each field's offset. */
  offsets?: number[];
  payload?: number;
}

const layouts = new WeakMap<object, Layout>();
const SCALARS: Record<string, Layout> = {
  bool: { size: 1, align: 1, flat: ['i32'] },
  u8: { size: 1, align: 1, flat: ['i32'] },
  u16: { size: 2, align: 2, flat: ['i32'] },
  u32: { size: 4, align: 4, flat: ['i32'] },
  u64: { size: 8, align: 8, flat: ['i64'] },
  string: { size: 8, align: 4, flat: ['i32', 'i32'] },
  latin1: { size: 8, align: 4, flat: ['i32', 'i32'] },
};

export function layout(t: Ty): Layout {
  if (typeof t === 'string') return SCALARS[t]!;
  let l = layouts.get(t);
  if (l) return l;
  if ('list' in t) l = { size: 8, align: 4, flat: ['i32', 'i32'] };
  else if ('own' in t || 'borrow' in t) l = { size: 4, align: 4, flat: ['i32'] };
  else if (fields(t)) {
    let size = 0;
    let align = 1;
    const offsets: number[] = [];
    const flat: Flat[] = [];
    for (const f of fields(t)!) {
      const fl = layout(f);
      size = alignTo(size, fl.align);
      offsets.push(size);
      size += fl.size;
      align = Math.max(align, fl.align);
      flat.push(...fl.flat);
    }
    l = { size: alignTo(size, align), align, flat, offsets };
  } else {
    const cs = cases(t)!;
    const d = discSize(cs.length);
    let caseAlign = 1;
    let caseSize = 0;
    const joined: Flat[] = [];
    for (const [, ct] of cs) {
      if (!ct) continue;
      const cl = layout(ct);
      caseAlign = Math.max(caseAlign, cl.align);
      caseSize = Math.max(caseSize, cl.size);
      cl.flat.forEach((f, i) => (joined[i] = joined[i] === undefined || joined[i] === f ? f : 'i64'));
    }
    const align = Math.max(d, caseAlign);
    const payload = alignTo(d, caseAlign);
    l = { size: alignTo(payload + caseSize, align), align, flat: ['i32', ...joined], payload };
  }
  layouts.set(t, l);
  return l;
}

/** Resource types a signature names, in no particular order. */
export function resourcesOf(types: (Ty | null)[], out = new Set<string>()): Set<string> {
  for (const t of types) {
    if (t === null || typeof t === 'string') continue;
    if ('own' in t) out.add(t.own);
    else if ('borrow' in t) out.add(t.borrow);
    else if ('list' in t) resourcesOf([t.list], out);
    else if (fields(t)) resourcesOf(fields(t)!, out);
    else resourcesOf(cases(t)!.map(([, c]) => c), out);
  }
  return out;
}

// ---- resources ----

/** Where the objects behind reps live (reps.ts). */
export interface ResourceHost {
  /** The object behind `rep`, checking it is of type `res`. */
  get(rep: number, res: string): object;
  /** Gives up `rep` (the guest passed its handle on) and returns its object. */
  take(rep: number, res: string): object;
  /** A new rep for `obj` of type `res`, owned by `scope` (an instance). */
  add(obj: object, res: string, scope?: object): number;
  typeOf(rep: number): string | undefined;
  /** The instance being made while its functions are lowered. */
  readonly scope?: object | undefined;
}

export function handleRep(table: HandleTable, handle: number): number | undefined {
  const scope = table[handle << 1];
  const val = table[(handle << 1) + 1];
  if (scope === undefined || val === undefined || val === 0 || (scope & FLAG) !== 0 || handle === 0) return undefined;
  return val & ~FLAG;
}

export function tableCreateOwn(table: HandleTable, rep: number): number {
  const free = table[0]! & ~FLAG;
  table._createdReps?.add(rep);
  if (free === 0) {
    table.push(0, rep | FLAG);
    return (table.length >> 1) - 1;
  }
  table[0] = table[free << 1]!;
  table[free << 1] = 0;
  table[(free << 1) + 1] = rep | FLAG;
  return free;
}

export function tableRemove(table: HandleTable, handle: number): number {
  const scope = table[handle << 1];
  const val = table[(handle << 1) + 1];
  if (scope === undefined || val === undefined || val === 0 || (scope & FLAG) !== 0) throw new WebAssembly.RuntimeError(`unknown handle index ${handle}`);
  if ((val & FLAG) !== 0 && scope !== 0) throw new WebAssembly.RuntimeError('cannot remove owned resource while borrowed');
  table[handle << 1] = table[0]! | FLAG;
  table[0] = handle | FLAG;
  return val & ~FLAG;
}

/** The object behind borrowed handle `h` of `table`, of type `res`; a trap for a handle the table does not hold. */
export function borrowedObject(host: ResourceHost, table: HandleTable, h: number, res: string): object {
  const rep = handleRep(table, h);
  if (rep === undefined) throw new WebAssembly.RuntimeError(`unknown handle index ${h}`);
  return host.get(rep, res);
}

/** A discriminant the guest gave that its variant does not have. */
export function badCase(i: number): never {
  throw new WebAssembly.RuntimeError(`invalid variant discriminant ${i}`);
}

/** A host value that is no case of its variant (a host bug). */
export function badTag(tag: unknown): never {
  throw new TypeError(`not a case of the variant: ${JSON.stringify(tag)}`);
}

/**
 * Which of a function's tables belongs to which resource type: learnt from
 * single-table functions when they are lowered and from the reps of handles
 * guests pass, shared by every function of one import object.
 */
export class TableRoles {
  readonly #roles = new WeakMap<HandleTable, string>();
  readonly #host: ResourceHost;
  constructor(host: ResourceHost) {
    this.#host = host;
  }
  learn(table: HandleTable, res: string): void {
    this.#roles.set(table, res);
  }
  roleOf(table: HandleTable): string | undefined {
    return this.#roles.get(table);
  }
  /**
   * While an instance is made (between `collect` and `tableFor`), the tables
   * each lowered function was given and the resource types of its signature.
   */
  #lowered: { tables: HandleTable[]; resources: string[] }[] | undefined;
  collect(): void {
    this.#lowered = [];
  }
  noteLowered(tables: HandleTable[], resources: string[]): void {
    this.#lowered?.push({ tables, resources });
  }
  /**
   * The table of resource type `res` of the instance just made, worked out
   * from every function lowered for it (a function's tables are its types,
   * in an order of jco's: a table is known once every other table of some
   * function is); undefined when the functions the guest imports do not tell.
   */
  tableFor(res: string): HandleTable | undefined {
    const lowered = this.#lowered ?? [];
    for (let changed = true; changed; ) {
      changed = false;
      for (const { tables, resources } of lowered) if (this.deduce(tables, resources)) changed = true;
    }
    for (const { tables } of lowered) for (const t of tables) if (this.#roles.get(t) === res) return t;
    return undefined;
  }
  /** One function's last table, once every other table of it is known: it is the type left over. True when learnt. */
  deduce(tables: HandleTable[], resources: string[]): boolean {
    const unknown = tables.filter((t) => !this.#roles.has(t));
    if (unknown.length !== 1) return false;
    const open = resources.filter((r) => !tables.some((t) => this.#roles.get(t) === r));
    if (open.length !== 1) return false;
    this.#roles.set(unknown[0]!, open[0]!);
    return true;
  }
  /** The instance is made: what was collected for it goes. */
  endCollect(): void {
    this.#lowered = undefined;
  }
  /** Pins tables from a handle of type `res` that must be valid in one of `tables`. */
  identify(tables: HandleTable[], res: string, handle: number): void {
    for (const t of tables) {
      if (this.#roles.has(t)) continue;
      const rep = handleRep(t, handle);
      if (rep !== undefined && this.#host.typeOf(rep) === res) {
        this.#roles.set(t, res);
        return;
      }
    }
  }
}

// ---- values ----

/** What a lowered function works on: the instance's memory (views cached per buffer), realloc, tables, reps. */
export class Ctx {
  readonly #opts: LowerOptions;
  #buffer: ArrayBuffer | undefined;
  #dv: DataView | undefined;
  #bytes: Buffer | undefined;
  #shared = false;
  constructor(
    opts: LowerOptions,
    readonly table: (res: string) => HandleTable,
    readonly host: ResourceHost,
    readonly scope: object | undefined,
  ) {
    this.#opts = opts;
  }
  #refresh(): void {
    // Growing a (non-shared) memory detaches its old buffer: a buffer that
    // still has bytes is the current one. Asking the memory for its buffer is
    // a call into the engine's C++ on every access (~1 µs a request). A
    // shared memory's old buffer stays valid at its old length: asked always.
    const held = this.#buffer;
    if (held !== undefined && !this.#shared && held.byteLength !== 0) return;
    const memory = this.#opts.memory;
    if (!memory) throw new WebAssembly.RuntimeError('the component gave no memory for a function that needs it');
    const buffer = memory.buffer as ArrayBuffer;
    if (buffer !== this.#buffer) {
      this.#buffer = buffer;
      this.#shared = !(buffer instanceof ArrayBuffer);
      this.#dv = new DataView(buffer);
      this.#bytes = Buffer.from(buffer);
    }
  }
  get dv(): DataView {
    this.#refresh();
    return this.#dv!;
  }
  get bytes(): Buffer {
    this.#refresh();
    return this.#bytes!;
  }
  alloc(align: number, size: number): number {
    const realloc = this.#opts.realloc;
    if (!realloc) throw new WebAssembly.RuntimeError('the component gave no realloc for a result that needs memory');
    return realloc(0, 0, align, size);
  }
}

function check(ctx: Ctx, ptr: number, len: number): void {
  if (ptr + len > ctx.bytes.length) throw new WebAssembly.RuntimeError('out of bounds memory access');
}

/** A copy of the guest's bytes (the host may keep them; the guest's memory moves on). */
export function bytesAt(ctx: Ctx, ptr: number, len: number): Uint8Array {
  check(ctx, ptr, len);
  const out = Buffer.allocUnsafe(len);
  ctx.bytes.copy(out, 0, ptr, ptr + len);
  return out;
}

export function stringAt(ctx: Ctx, ptr: number, len: number): string {
  check(ctx, ptr, len);
  return ctx.bytes.toString('utf8', ptr, ptr + len);
}

/** The guest's bytes as a latin1 string: a copy in one step (no Buffer on the way). */
export function latin1At(ctx: Ctx, ptr: number, len: number): string {
  check(ctx, ptr, len);
  return ctx.bytes.toString('latin1', ptr, ptr + len);
}

/** A fresh copy of `bytes` in the guest's memory: its pointer. */
function copyBytes(ctx: Ctx, bytes: Uint8Array): number {
  const ptr = ctx.alloc(1, bytes.length);
  ctx.bytes.set(bytes, ptr);
  return ptr;
}

/** A fresh copy of `s` in the guest's memory, `len` bytes in `encoding`: its pointer. */
function copyString(ctx: Ctx, s: string, len: number, encoding: 'utf8' | 'latin1'): number {
  const ptr = ctx.alloc(1, len);
  ctx.bytes.write(s, ptr, len, encoding);
  return ptr;
}

/** A list's or string's pointer and length, stored at `at` (after the copy: memory may have grown). */
export function setPair(ctx: Ctx, at: number, ptr: number, len: number): void {
  const dv = ctx.dv;
  dv.setUint32(at, ptr, true);
  dv.setUint32(at + 4, len, true);
}

/** Bytes copied into the guest's memory, their pointer and length stored at `at`. */
export function putBytes(ctx: Ctx, bytes: Uint8Array, at: number): void {
  setPair(ctx, at, copyBytes(ctx, bytes), bytes.length);
}

/** A latin1 string's bytes (one per char) copied into the guest's memory, their pointer and length stored at `at`. */
export function putLatin1(ctx: Ctx, s: string, at: number): void {
  setPair(ctx, at, copyString(ctx, s, s.length, 'latin1'), s.length);
}

/** A string copied into the guest's memory (UTF-8), its pointer and length stored at `at`. */
export function putString(ctx: Ctx, s: string, at: number): void {
  const len = Buffer.byteLength(s, 'utf8');
  setPair(ctx, at, copyString(ctx, s, len, 'utf8'), len);
}

export type CoreValue = number | bigint;

export class Reader {
  i = 0;
  constructor(public values: ArrayLike<CoreValue>) {}
  reset(values: ArrayLike<CoreValue>): this {
    this.values = values;
    this.i = 0;
    return this;
  }
  next(): CoreValue {
    return this.values[this.i++]!;
  }
}

/** A type's four conversions, made once per type. */
interface Codec {
  load(ctx: Ctx, ptr: number): unknown;
  store(ctx: Ctx, v: unknown, ptr: number): void;
  lift(ctx: Ctx, r: Reader): unknown;
  lower(ctx: Ctx, v: unknown, out: CoreValue[]): void;
  /** Variants: store or lower case `i` with its payload (no {tag, val} object on the way). */
  storeCase?(ctx: Ctx, i: number, payload: unknown, ptr: number): void;
  lowerCase?(ctx: Ctx, i: number, payload: unknown, out: CoreValue[]): void;
}

const codecs = new Map<Ty, Codec>();

export function codec(t: Ty): Codec {
  let c = codecs.get(t);
  if (!c) codecs.set(t, (c = makeCodec(t)));
  return c;
}

const camelCache = new Map<string, string>();
export function camel(name: string): string {
  let c = camelCache.get(name);
  if (c === undefined) camelCache.set(name, (c = name.toLowerCase().replace(/-([a-z0-9])/g, (_, x: string) => x.toUpperCase())));
  return c;
}

function scalar(size: 1 | 2 | 4, get: (dv: DataView, p: number) => number, set: (dv: DataView, p: number, v: number) => void, mask: (v: number) => number): Codec {
  return {
    load: (ctx, p) => get(ctx.dv, p),
    store: (ctx, v, p) => set(ctx.dv, p, v as number),
    lift: (_ctx, r) => mask(r.next() as number),
    lower: (_ctx, v, out) => void out.push((v as number) | 0),
  };
}

function makeCodec(t: Ty): Codec {
  switch (t) {
    case 'bool':
      return {
        load: (ctx, p) => ctx.dv.getUint8(p) !== 0,
        store: (ctx, v, p) => ctx.dv.setUint8(p, v ? 1 : 0),
        lift: (_ctx, r) => (r.next() as number) !== 0,
        lower: (_ctx, v, out) => void out.push(v ? 1 : 0),
      };
    case 'u8':
      return scalar(1, (dv, p) => dv.getUint8(p), (dv, p, v) => dv.setUint8(p, v), (v) => v & 0xff);
    case 'u16':
      return scalar(2, (dv, p) => dv.getUint16(p, true), (dv, p, v) => dv.setUint16(p, v, true), (v) => v & 0xffff);
    case 'u32':
      return scalar(4, (dv, p) => dv.getUint32(p, true), (dv, p, v) => dv.setUint32(p, v, true), (v) => v >>> 0);
    case 'u64':
      return {
        load: (ctx, p) => ctx.dv.getBigUint64(p, true),
        store: (ctx, v, p) => ctx.dv.setBigUint64(p, BigInt.asUintN(64, BigInt(v as bigint)), true),
        lift: (_ctx, r) => BigInt.asUintN(64, BigInt(r.next())),
        lower: (_ctx, v, out) => void out.push(BigInt.asIntN(64, BigInt(v as bigint))),
      };
    case 'string':
      return pointerPair(
        (ctx, ptr, len) => stringAt(ctx, ptr, len),
        (ctx, v) => {
          const len = Buffer.byteLength(v as string, 'utf8');
          return [copyString(ctx, v as string, len, 'utf8'), len];
        },
      );
    case 'latin1':
      return pointerPair(
        (ctx, ptr, len) => latin1At(ctx, ptr, len),
        (ctx, v) => [copyString(ctx, v as string, (v as string).length, 'latin1'), (v as string).length],
      );
  }
  if ('list' in t) {
    const elem = t.list;
    if (elem === 'u8') return pointerPair((ctx, ptr, len) => bytesAt(ctx, ptr, len), (ctx, v) => [copyBytes(ctx, v as Uint8Array), (v as Uint8Array).length]);
    const el = layout(elem);
    const ec = codec(elem);
    return pointerPair(
      (ctx, ptr, len) => {
        check(ctx, ptr, len * el.size);
        const out: unknown[] = new Array(len);
        for (let i = 0; i < len; i++) out[i] = ec.load(ctx, ptr + i * el.size);
        return out;
      },
      (ctx, v) => {
        const items = v as ArrayLike<unknown>;
        const ptr = ctx.alloc(el.align, items.length * el.size);
        for (let i = 0; i < items.length; i++) ec.store(ctx, items[i], ptr + i * el.size);
        return [ptr, items.length];
      },
    );
  }
  if ('own' in t || 'borrow' in t) {
    const res = 'own' in t ? t.own : t.borrow;
    const lift = 'own' in t
      ? (ctx: Ctx, h: number) => ctx.host.take(tableRemove(ctx.table(res), h), res)
      : (ctx: Ctx, h: number) => borrowedObject(ctx.host, ctx.table(res), h, res);
    const lower = (ctx: Ctx, v: unknown) => {
      if ('borrow' in t) throw new TypeError('a host function cannot return a borrow');
      return tableCreateOwn(ctx.table(res), ctx.host.add(v as object, res, ctx.scope));
    };
    return {
      load: (ctx, p) => lift(ctx, ctx.dv.getUint32(p, true)),
      store: (ctx, v, p) => ctx.dv.setUint32(p, lower(ctx, v), true),
      lift: (ctx, r) => lift(ctx, r.next() as number),
      lower: (ctx, v, out) => void out.push(lower(ctx, v)),
    };
  }
  const fs = fields(t);
  if (fs) return recordCodec(t, fs);
  return variantCodec(t, variantOf(t)!);
}

function pointerPair(read: (ctx: Ctx, ptr: number, len: number) => unknown, write: (ctx: Ctx, v: unknown) => [number, number]): Codec {
  return {
    load: (ctx, p) => {
      const dv = ctx.dv;
      return read(ctx, dv.getUint32(p, true), dv.getUint32(p + 4, true));
    },
    store: (ctx, v, p) => {
      const [ptr, len] = write(ctx, v);
      setPair(ctx, p, ptr, len);
    },
    lift: (ctx, r) => {
      const ptr = (r.next() as number) >>> 0;
      return read(ctx, ptr, (r.next() as number) >>> 0);
    },
    lower: (ctx, v, out) => void out.push(...write(ctx, v)),
  };
}

/** A record's JS value: an object by field name (camelCase); a tuple's an array. */
function recordCodec(t: Ty, fs: Ty[]): Codec {
  const l = layout(t);
  const cs = fs.map(codec);
  const names = typeof t !== 'string' && 'record' in t ? t.record.map(([n]) => camel(n)) : undefined;
  const make = (values: unknown[]) => (names ? Object.fromEntries(names.map((n, i) => [n, values[i]])) : values);
  const parts = (v: unknown) => (names ? names.map((n) => (v as Record<string, unknown>)[n]) : (v as unknown[]));
  return {
    load: (ctx, p) => make(cs.map((c, i) => c.load(ctx, p + l.offsets![i]!))),
    store: (ctx, v, p) => parts(v).forEach((x, i) => cs[i]!.store(ctx, x, p + l.offsets![i]!)),
    lift: (ctx, r) => make(cs.map((c) => c.lift(ctx, r))),
    lower: (ctx, v, out) => parts(v).forEach((x, i) => cs[i]!.lower(ctx, x, out)),
  };
}

/** jco's conventions: option → value | undefined, result → {tag: 'ok'|'err', val}, enum → its name, variant → {tag, val}. */
function variantCodec(t: Ty, { kind, cases: cs }: NonNullable<ReturnType<typeof variantOf>>): Codec {
  const l = layout(t);
  const payloads = cs.map(([, ct]) => (ct ? codec(ct) : undefined));
  const caseFlat = cs.map(([, ct]) => (ct ? layout(ct).flat : []));
  const joined = l.flat.slice(1);
  const d = discSize(cs.length);
  const index = new Map(cs.map(([n], i) => [n, i]));
  const value = (i: number, payload: unknown): unknown => {
    if (kind === 'option') return i === 1 ? payload : undefined;
    if (kind === 'enum') return cs[i]![0];
    if (kind === 'result' || cs[i]![1]) return { tag: cs[i]![0], val: payload };
    return { tag: cs[i]![0] };
  };
  const caseOf = (v: unknown): [number, unknown] => {
    if (kind === 'option') return v === undefined || v === null ? [0, undefined] : [1, v];
    const tag = kind === 'enum' ? v : (v as { tag?: unknown })?.tag;
    const i = index.get(tag as string);
    if (i === undefined) badTag(tag);
    return [i, kind === 'enum' ? undefined : (v as { val?: unknown }).val];
  };
  const caseAt = (i: number) => (i >= cs.length ? badCase(i) : i);
  const storeCase = (ctx: Ctx, i: number, payload: unknown, p: number) => {
    const dv = ctx.dv;
    if (d === 1) dv.setUint8(p, i);
    else if (d === 2) dv.setUint16(p, i, true);
    else dv.setUint32(p, i, true);
    payloads[i]?.store(ctx, payload, p + l.payload!);
  };
  const lowerCase = (ctx: Ctx, i: number, payload: unknown, out: CoreValue[]) => {
    out.push(i);
    const pc = payloads[i];
    if (!pc) {
      for (const want of joined) out.push(want === 'i64' ? 0n : 0);
      return;
    }
    const start = out.length;
    pc.lower(ctx, payload, out);
    const have = caseFlat[i]!;
    for (let k = 0; k < joined.length; k++) {
      const want = joined[k]!;
      if (start + k >= out.length) out.push(want === 'i64' ? 0n : 0);
      else if (want === 'i64' && have[k] === 'i32') out[start + k] = BigInt((out[start + k] as number) >>> 0);
    }
  };
  return {
    load: (ctx, p) => {
      const dv = ctx.dv;
      const i = caseAt(d === 1 ? dv.getUint8(p) : d === 2 ? dv.getUint16(p, true) : dv.getUint32(p, true));
      return value(i, payloads[i]?.load(ctx, p + l.payload!));
    },
    store: (ctx, v, p) => {
      const [i, payload] = caseOf(v);
      storeCase(ctx, i, payload, p);
    },
    lift: (ctx, r) => {
      const i = caseAt(r.next() as number);
      // The payload comes in the joined slots; an i32 of the case may sit in an i64 slot.
      const raw: CoreValue[] = joined.map(() => r.next());
      const pc = payloads[i];
      if (!pc) return value(i, undefined);
      const have = caseFlat[i]!;
      return value(i, pc.lift(ctx, new Reader(have.map((f, k) => (f === 'i32' && joined[k] === 'i64' ? Number(BigInt.asIntN(32, BigInt(raw[k]!))) : raw[k]!)))));
    },
    lower: (ctx, v, out) => {
      const [i, payload] = caseOf(v);
      lowerCase(ctx, i, payload, out);
    },
    storeCase,
    lowerCase,
  };
}

// ---- lowered functions ----

/**
 * A host function's err case, returned instead of thrown: a throw walks the
 * stack through the guest's frames to locate itself (~10 µs, measured), too
 * much for what a guest meets on every request (the end of a body).
 */
export class ErrResult {
  constructor(readonly val: unknown) {}
}

/** A host function in JS values; a thrown non-Error (or a returned ErrResult) is the err case of its result, an Error a trap. */
export type HostFn = (...args: never[]) => unknown;

export interface LowerOptions {
  memory?: WebAssembly.Memory;
  realloc?: (old: number, oldSize: number, align: number, size: number) => number;
  resourceTables?: HandleTable[];
}

export interface Lowering {
  host: ResourceHost;
  roles: TableRoles;
}

/** jco's symbols for the hook. */
export const CABI_LOWER = Symbol.for('cabiLower');
export const CABI_DISPOSE = Symbol.for('cabiDispose');
export const CABI_REP = Symbol.for('cabiRep');
