// Host functions lowered into a component's core module (abi.ts has the
// canonical ABI's rules): one JavaScript function generated per signature.
//
// Why generated: one interpreted `core` shared by every host function makes
// every call inside it megamorphic (the same call site lifts a string for
// fields.get, a u64 for a read, a handle for a drop), so V8 inlines none of
// them: measured ~19 µs of a request's ~130 in that code alone. Source text
// per signature gives each function its own code and type feedback: straight
// reads of its core arguments, its own table lookups, its own stores. Types
// the generator does not spell out itself (records, lists of non-bytes,
// variants nested in memory) go through abi.ts's codecs, which stay the
// reference implementation of the rules.
//
// The text is compiled once per host function (`lowering`); each instance of
// a component gets closures over its own memory and tables. It is made only
// from the host's own WIT types and function names (wit.ts, types.ts,
// io.ts), never from anything a guest or an image gives.
import {
  badCase,
  badTag,
  borrowedObject,
  bytesAt,
  camel,
  codec,
  Ctx,
  discSize,
  ErrResult,
  layout,
  Reader,
  resourcesOf,
  setPair,
  stringAt,
  latin1At,
  putLatin1,
  tableCreateOwn,
  tableRemove,
  variantOf,
  putBytes,
  putString,
  type CoreValue,
  type FnType,
  type HandleTable,
  type HostFn,
  type LowerOptions,
  type Lowering,
  type Ty,
} from './abi.js';

const MAX_FLAT_PARAMS = 16;
const MAX_FLAT_RESULTS = 1;

/** What the generated text refers to, by name: values bound once per host function. */
class Gen {
  readonly names: string[] = [];
  readonly values: unknown[] = [];
  readonly resources: string[] = [];
  #n = 0;
  dep(value: unknown, hint: string): string {
    const i = this.values.indexOf(value);
    if (i >= 0) return this.names[i]!;
    const name = `${hint}$${this.values.length}`;
    this.names.push(name);
    this.values.push(value);
    return name;
  }
  tmp(hint: string): string {
    return `${hint}_${this.#n++}`;
  }
  /** The table of resource type `res` of the instance (looked up once, then kept). */
  table(res: string): string {
    let i = this.resources.indexOf(res);
    if (i < 0) i = this.resources.push(res) - 1;
    return `T${i}()`;
  }
}

const str = (s: string) => JSON.stringify(s);

/** The discriminant's store for `n` cases. */
function setDisc(n: number, p: string, v: string | number): string {
  const size = discSize(n);
  if (size === 1) return `ctx.dv.setUint8(${p}, ${v});`;
  if (size === 2) return `ctx.dv.setUint16(${p}, ${v}, true);`;
  return `ctx.dv.setUint32(${p}, ${v}, true);`;
}

/** An expression: the JS value of `t` from its flat core values `s` (each an expression used once, except a variant's discriminant). */
function lift(g: Gen, t: Ty, s: string[]): string {
  switch (t) {
    case 'bool':
      return `(${s[0]} !== 0)`;
    case 'u8':
      return `(${s[0]} & 255)`;
    case 'u16':
      return `(${s[0]} & 65535)`;
    case 'u32':
      return `(${s[0]} >>> 0)`;
    case 'u64':
      return `BigInt.asUintN(64, BigInt(${s[0]}))`;
    case 'string':
      return `stringAt(ctx, ${s[0]} >>> 0, ${s[1]} >>> 0)`;
    case 'latin1':
      return `latin1At(ctx, ${s[0]} >>> 0, ${s[1]} >>> 0)`;
  }
  if ('list' in t && t.list === 'u8') return `bytesAt(ctx, ${s[0]} >>> 0, ${s[1]} >>> 0)`;
  if ('own' in t) return `host.take(tableRemove(${g.table(t.own)}, ${s[0]}), ${str(t.own)})`;
  if ('borrow' in t) return `borrowed(${g.table(t.borrow)}, ${s[0]}, ${str(t.borrow)})`;
  const v = variantOf(t);
  if (v) {
    const joined = layout(t).flat.slice(1);
    const d = g.tmp('d');
    const arms = v.cases.map(([name, ct], i) => {
      let payload = 'undefined';
      if (ct) {
        const have = layout(ct).flat;
        // An i32 of this case may sit in an i64 slot of the joined payload.
        payload = lift(g, ct, have.map((f, k) => (f === 'i32' && joined[k] === 'i64' ? `Number(BigInt.asIntN(32, BigInt(${s[k + 1]})))` : s[k + 1]!)));
      }
      if (v.kind === 'option') return i === 0 ? 'undefined' : payload;
      if (v.kind === 'enum') return str(name);
      if (v.kind === 'result' || ct) return `{ tag: ${str(name)}, val: ${payload} }`;
      return `{ tag: ${str(name)} }`;
    });
    // The discriminant is read once, in an arrow called at once (inlined by V8).
    const body = arms.map((a, i) => `${d} === ${i} ? ${a} : `).join('');
    return `((${d}) => ${body}badCase(${d}))(${s[0]})`;
  }
  return `${g.dep(codec(t), 'C')}.lift(ctx, new Reader([${s.join(', ')}]))`;
}

/** Statements: store JS value `v` (an identifier) of `t` at `p` in the guest's memory. */
function store(g: Gen, t: Ty, v: string, p: string): string {
  switch (t) {
    case 'bool':
      return `ctx.dv.setUint8(${p}, ${v} ? 1 : 0);`;
    case 'u8':
      return `ctx.dv.setUint8(${p}, ${v});`;
    case 'u16':
      return `ctx.dv.setUint16(${p}, ${v}, true);`;
    case 'u32':
      return `ctx.dv.setUint32(${p}, ${v}, true);`;
    case 'u64':
      return `ctx.dv.setBigUint64(${p}, BigInt.asUintN(64, BigInt(${v})), true);`;
    case 'string':
      return `putString(ctx, ${v}, ${p});`;
    case 'latin1':
      return `putLatin1(ctx, ${v}, ${p});`;
  }
  if ('list' in t && t.list === 'u8') return `putBytes(ctx, ${v}, ${p});`;
  if ('list' in t) {
    // The elements first (each may allocate, and memory may grow), then the list's pointer and length.
    const el = layout(t.list);
    const [at, items, base, i, x] = ['at', 'items', 'base', 'i', 'x'].map((h) => g.tmp(h)) as [string, string, string, string, string];
    return `{ const ${at} = ${p}; const ${items} = ${v}; const ${base} = ctx.alloc(${el.align}, ${items}.length * ${el.size}); for (let ${i} = 0; ${i} < ${items}.length; ${i}++) { const ${x} = ${items}[${i}]; ${store(g, t.list, x, `${base} + ${i} * ${el.size}`)} } setPair(ctx, ${at}, ${base}, ${items}.length); }`;
  }
  if ('tuple' in t || 'record' in t) {
    // A tuple's JS value is an array, a record's an object by camelCase field name.
    const offsets = layout(t).offsets!;
    const fields: [string, Ty][] = 'tuple' in t ? t.tuple.map((f, i) => [`[${i}]`, f]) : t.record.map(([n, f]) => [`.${camel(n)}`, f]);
    const whole = g.tmp('whole');
    const parts = fields.map(([access, f], i) => {
      const x = g.tmp('x');
      return `const ${x} = ${whole}${access}; ${store(g, f, x, `${p} + ${offsets[i]}`)}`;
    });
    return `{ const ${whole} = ${v}; ${parts.join(' ')} }`;
  }
  if ('own' in t) return `ctx.dv.setUint32(${p}, tableCreateOwn(${g.table(t.own)}, host.add(${v}, ${str(t.own)}, ctx.scope)), true);`;
  const v2 = variantOf(t);
  if (v2 && v2.kind !== 'variant' && v2.kind !== 'enum') {
    // option: the value or undefined; result: {tag, val}.
    if (v2.kind === 'option') return `if (${v} === undefined || ${v} === null) ${setDisc(2, p, 0)} else { ${storeCase(g, t, 1, v, p)} }`;
    const x = g.tmp('x');
    return `if (${v}.tag === 'ok') { const ${x} = ${v}.val; ${storeCase(g, t, 0, x, p)} } else if (${v}.tag === 'err') { const ${x} = ${v}.val; ${storeCase(g, t, 1, x, p)} } else badTag(${v}?.tag);`;
  }
  return `${g.dep(codec(t), 'C')}.store(ctx, ${v}, ${p});`;
}

/** Statements: store case `i` of variant `t` with payload `v` at `p`. */
function storeCase(g: Gen, t: Ty, i: number, v: string, p: string): string {
  const { cases } = variantOf(t)!;
  const ct = cases[i]![1];
  const off = layout(t).payload!;
  return setDisc(cases.length, p, i) + (ct ? ' ' + store(g, ct, v, `${p} + ${off}`) : '');
}

/** An expression: the one flat core value of `t` for JS value `v` (results that fit one value). */
function lowerOne(g: Gen, t: Ty, v: string): string {
  switch (t) {
    case 'bool':
      return `(${v} ? 1 : 0)`;
    case 'u8':
    case 'u16':
    case 'u32':
      return `(${v} | 0)`;
    case 'u64':
      return `BigInt.asIntN(64, BigInt(${v}))`;
  }
  if (typeof t !== 'string' && 'own' in t) return `tableCreateOwn(${g.table(t.own)}, host.add(${v}, ${str(t.own)}, ctx.scope))`;
  return `lowerVia(${g.dep(codec(t), 'C')}, ctx, ${v})`;
}

/** Statements that return case `i` of result type `t` with payload `v`, through `ret` or as the one flat value. */
function answerCase(g: Gen, t: Ty, i: number, v: string, retptr: boolean): string {
  if (retptr) return `${storeCase(g, t, i, v, 'ret')} return undefined;`;
  // A result in one flat value has no payloads: its case index is all of it.
  return `return ${i};`;
}

function answer(g: Gen, t: Ty | null, v: string, retptr: boolean): string {
  if (!t) return 'return undefined;';
  if (retptr) return `${store(g, t, v, 'ret')} return undefined;`;
  return `return ${lowerOne(g, t, v)};`;
}

function lowerVia(c: ReturnType<typeof codec>, ctx: Ctx, v: unknown): CoreValue | undefined {
  const out: CoreValue[] = [];
  c.lower(ctx, v, out);
  return out[0];
}

/** What a generated function is made with, per instance. */
type PerInstance = (
  ctx: Ctx,
  tableOf: (res: string) => HandleTable,
  /** Handles passed while some table's role is still unknown teach it (TableRoles.identify). */
  learn: ((res: string, handle: number) => void) | undefined,
) => (...core: CoreValue[]) => CoreValue | undefined | Promise<CoreValue | undefined>;

/** The text of a host function's core function for `type`, compiled once. */
function compile(type: FnType, impl: HostFn, low: Lowering, name: string): PerInstance {
  const g = new Gen();
  const paramFlat = type.params.flatMap((p) => layout(p).flat);
  const viaMemory = paramFlat.length > MAX_FLAT_PARAMS;
  const resultFlat = type.result ? layout(type.result).flat : [];
  const retptr = resultFlat.length > MAX_FLAT_RESULTS;
  const mayErr = type.result !== null && typeof type.result !== 'string' && 'result' in type.result;

  const core: string[] = viaMemory ? ['a0'] : paramFlat.map((_, i) => `a${i}`);
  if (retptr) core.push('ret');
  let args: string;
  let learnText = '';
  if (viaMemory) {
    args = `...${g.dep(codec({ tuple: type.params }), 'C')}.load(ctx, a0)`;
  } else {
    const parts: string[] = [];
    let at = 0;
    for (const p of type.params) {
      const n = layout(p).flat.length;
      parts.push(lift(g, p, core.slice(at, at + n)));
      if (typeof p !== 'string' && ('own' in p || 'borrow' in p)) learnText += `learn(${str('own' in p ? p.own : p.borrow)}, a${at}); `;
      at += n;
    }
    args = parts.join(', ');
  }
  const ok = mayErr ? answerCase(g, type.result!, 0, 'value', retptr) : answer(g, type.result, 'value', retptr);
  const err = mayErr ? answerCase(g, type.result!, 1, 'err', retptr) : 'throw err;';
  const retArg = retptr ? 'ret' : '0';
  const tables = g.resources.map((r, i) => `let t${i}; const T${i} = () => t${i} ?? (t${i} = tableOf(${str(r)}));`).join('\n  ');
  // Named after the WIT function, in profiles and stack traces.
  const ident = `lowered$${name.replace(/[^A-Za-z0-9_$]/g, '_')}`;
  const text = `"use strict";
return function perInstance(ctx, tableOf, learn) {
  ${tables}
  const fail = (err, ret) => {
    if (err instanceof Error) throw err;
    ${err}
  };
  const finish = (value, ret) => {
    if (value instanceof ErrResult) return fail(value.val, ret);
    ${ok}
  };
  return function ${ident}(${core.join(', ')}) {
    ${learnText ? `if (learn !== undefined) { ${learnText}}` : ''}
    let value;
    try {
      value = impl(${args});
    } catch (err) {
      return fail(err, ${retArg});
    }
    if (value instanceof Promise) return value.then((v) => finish(v, ${retArg}), (e) => fail(e, ${retArg}));
    return finish(value, ${retArg});
  };
};
//# sourceURL=tugboat-lowered/${encodeURIComponent(name)}.js`;
  const host = low.host;
  const fixed: Record<string, unknown> = {
    impl,
    host,
    ErrResult,
    Reader,
    stringAt,
    latin1At,
    putLatin1,
    bytesAt,
    putString,
    putBytes,
    setPair,
    tableRemove,
    tableCreateOwn,
    badCase,
    badTag,
    lowerVia,
    borrowed: (table: HandleTable, h: number, res: string) => borrowedObject(host, table, h, res),
  };
  const names = [...Object.keys(fixed), ...g.names];
  const values = [...Object.values(fixed), ...g.values];
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function(...names, text)(...values) as PerInstance;
}

/**
 * The `cabiLower` factory of `fn`, whose WIT type is `type`: jco calls it
 * once per instance with that instance's memory, realloc and handle tables.
 * `suspending`: the core function is a JSPI Suspending import (fn may return
 * a promise, the guest waits without blocking the thread). `name` (the WIT
 * function's) names the generated code.
 */
export function lowering(type: FnType, fn: HostFn, low: Lowering, suspending = false, name = 'host'): (opts: LowerOptions) => unknown {
  const resources = [...resourcesOf([...type.params, type.result])];
  let perInstance: PerInstance | undefined;
  return (opts: LowerOptions) => {
    const tables = opts.resourceTables ?? [];
    if (tables.length !== resources.length) {
      throw new Error(`tugboat: jco gave ${tables.length} resource tables for a function with ${resources.length} resource types`);
    }
    if (tables.length === 1) low.roles.learn(tables[0]!, resources[0]!);
    low.roles.noteLowered(tables, resources);
    // The tables found, by the index of their type in `resources` (an array: one Map per function and instance was most of what a fresh instance of ours kept).
    const found: (HandleTable | undefined)[] = [];
    const known = (r: string) => tables.find((cand) => low.roles.roleOf(cand) === r);
    const tableOf = (r: string): HandleTable => {
      const i = resources.indexOf(r);
      let t = found[i];
      if (t) return t;
      t = known(r) ?? (low.roles.deduce(tables, resources) ? known(r) : undefined);
      if (!t) throw new WebAssembly.RuntimeError(`tugboat: cannot tell which handle table holds ${r}`);
      return (found[i] = t);
    };
    // Handles teach the tables' roles until every table of this function is known.
    let learn: ((res: string, handle: number) => void) | undefined;
    if (resources.length > 1) {
      learn = (res, handle) => {
        if (!known(res)) low.roles.identify(tables, res, handle);
        if (resources.every((r) => known(r))) learn = undefined;
      };
    }
    perInstance ??= compile(type, fn, low, name);
    // `learn` is read by the core function on every call: give it a getter-free view.
    const core = perInstance(new Ctx(opts, tableOf, low.host, low.host.scope), tableOf, resources.length > 1 ? (res, h) => learn?.(res, h) : undefined);
    return suspending ? new WebAssembly.Suspending(core) : core;
  };
}
