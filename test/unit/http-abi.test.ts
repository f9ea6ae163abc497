// The canonical ABI of host functions lowered straight into a core module
// (src/wasi-host/http/abi.ts): layouts, flat values, memory, handles; checked
// against the Component Model's rules with a real WebAssembly.Memory.
import { describe, expect, it } from 'vitest';
import { codec, Ctx, ErrResult, layout, resourcesOf, TableRoles, tableCreateOwn, handleRep, type FnType, type HandleTable, type HostFn, type Ty } from '../../src/wasi-host/http/abi.js';
import { lowering } from '../../src/wasi-host/http/lowered.js';
import { Reps, SlotList } from '../../src/wasi-host/http/reps.js';
import { ERROR_CODE, FIELD_VALUE, futureResult, HEADER_ERROR, METHOD, STREAM_ERROR, BYTES, ENTRIES, fn, method, option, own, result, list, borrow } from '../../src/wasi-host/http/wit.js';

const FLAG = 1 << 30;

/** A guest's side: its memory, a bump realloc, empty handle tables. */
function guest() {
  const memory = new WebAssembly.Memory({ initial: 1 });
  let heap = 1024;
  const realloc = (_old: number, _oldSize: number, align: number, size: number) => {
    heap = Math.ceil(heap / align) * align;
    const p = heap;
    heap += size;
    return p;
  };
  const reps = new Reps();
  const low = { host: reps, roles: new TableRoles(reps) };
  const table = (): HandleTable => Object.assign([FLAG, 0], { _createdReps: new Set<number>() });
  const dv = () => new DataView(memory.buffer);
  const bytes = (p: number, n: number) => new Uint8Array(memory.buffer, p, n);
  const putString = (p: number, s: string) => {
    const b = Buffer.from(s);
    bytes(p, b.length).set(b);
    return b.length;
  };
  return { memory, realloc, reps, low, table, dv, bytes, putString };
}

describe('layout', () => {
  it('follows the canonical ABI for the wasi:http types', () => {
    expect(layout('string')).toMatchObject({ size: 8, align: 4, flat: ['i32', 'i32'] });
    expect(layout(option('string'))).toMatchObject({ size: 12, align: 4, flat: ['i32', 'i32', 'i32'], payload: 4 });
    expect(layout(result(BYTES, STREAM_ERROR))).toMatchObject({ size: 12, align: 4, flat: ['i32', 'i32', 'i32'] });
    expect(layout(option('u64'))).toMatchObject({ size: 16, align: 8, flat: ['i32', 'i64'], payload: 8 });
    // error-code: 39 cases, the widest payload option<field-size-payload> (6 flat values, one of them an i64 from option<u64>).
    expect(layout(ERROR_CODE).flat).toEqual(['i32', 'i32', 'i64', 'i32', 'i32', 'i32', 'i32']);
    expect(layout(ERROR_CODE).size).toBe(32);
    expect(layout(HEADER_ERROR)).toMatchObject({ size: 1, align: 1, flat: ['i32'] });
    expect(layout(METHOD)).toMatchObject({ size: 12, flat: ['i32', 'i32', 'i32'] });
    // response-outparam.set: handle + result<own, error-code> = 9 flat parameters (as jco and wit-component lower it).
    const set = fn([own('response-outparam'), result(own('outgoing-response'), ERROR_CODE)]);
    expect(set.params.flatMap((p) => layout(p).flat)).toEqual(['i32', 'i32', 'i32', 'i32', 'i64', 'i32', 'i32', 'i32', 'i32']);
  });

  it('names the resource types of a signature', () => {
    expect([...resourcesOf([borrow('input-stream'), result(BYTES, STREAM_ERROR)])].sort()).toEqual(['error', 'input-stream']);
    expect([...resourcesOf([futureResult(option(own('fields')))])]).toEqual(['fields']);
  });
});

describe('lowered functions', () => {
  it('lifts a string and a borrowed handle, lowers a list of byte lists through a return pointer', () => {
    const g = guest();
    const fields = g.table();
    const obj = { get: (n: string) => [Buffer.from(`${n}=1`), Buffer.from(`${n}=2`)] };
    const type = method('fields', ['string'], list(BYTES));
    const core = lowering(type, (f: typeof obj, n: string) => f.get(n), g.low)({ memory: g.memory, realloc: g.realloc, resourceTables: [fields] }) as (...a: number[]) => void;
    const h = tableCreateOwn(fields, g.reps.add(obj, 'fields'));
    const len = g.putString(100, 'x-echo');
    core(h, 100, len, 16);
    const [ptr, n] = [g.dv().getUint32(16, true), g.dv().getUint32(20, true)];
    expect(n).toBe(2);
    const item = (i: number) => Buffer.from(g.bytes(g.dv().getUint32(ptr + i * 8, true), g.dv().getUint32(ptr + i * 8 + 4, true))).toString();
    expect([item(0), item(1)]).toEqual(['x-echo=1', 'x-echo=2']);
  });

  it('answers err when the host throws a plain value, traps on an Error', () => {
    const g = guest();
    const fields = g.table();
    const type = method('fields', ['string', BYTES], result(null, HEADER_ERROR));
    let thrown: unknown = { tag: 'forbidden' };
    const core = lowering(type, () => {
      throw thrown;
    }, g.low)({ memory: g.memory, resourceTables: [fields] }) as (...a: number[]) => void;
    const h = tableCreateOwn(fields, g.reps.add({}, 'fields'));
    core(h, 100, 1, 100, 1, 32);
    expect([g.dv().getUint8(32), g.dv().getUint8(33)]).toEqual([1, 1]); // err, forbidden
    thrown = new TypeError('a bug');
    expect(() => core(h, 100, 1, 100, 1, 32)).toThrow('a bug');
  });

  it('generates each function\'s own code, named after its WIT function in stack traces', () => {
    const g = guest();
    const fields = g.table();
    const type = method('fields', ['string'], 'bool');
    const boom = () => {
      throw new Error('boom');
    };
    const has = lowering(type, boom, g.low, false, '[method]fields.has')({ memory: g.memory, resourceTables: [fields] }) as (...a: number[]) => number;
    const other = lowering(type, boom, g.low, false, '[method]fields.other')({ memory: g.memory, resourceTables: [fields] }) as (...a: number[]) => number;
    expect(has).not.toBe(other);
    const h = tableCreateOwn(fields, g.reps.add({}, 'fields'));
    let stack = '';
    try {
      has(h, 100, 1);
    } catch (err) {
      stack = (err as Error).stack ?? '';
    }
    expect(stack).toContain('lowered$_method_fields_has');
    expect(stack).toContain('tugboat-lowered/');
  });

  it('answers err when the host returns an ErrResult (no throw on the hot path), also from a promise', async () => {
    const g = guest();
    const fields = g.table();
    const type = method('fields', ['string', BYTES], result(null, HEADER_ERROR));
    let answer: unknown = new ErrResult({ tag: 'immutable' });
    const core = lowering(type, () => answer, g.low)({ memory: g.memory, resourceTables: [fields] }) as (...a: number[]) => unknown;
    const h = tableCreateOwn(fields, g.reps.add({}, 'fields'));
    core(h, 100, 1, 100, 1, 32);
    expect([g.dv().getUint8(32), g.dv().getUint8(33)]).toEqual([1, 2]); // err, immutable
    answer = Promise.resolve(new ErrResult({ tag: 'forbidden' }));
    await core(h, 100, 1, 100, 1, 40);
    expect([g.dv().getUint8(40), g.dv().getUint8(41)]).toEqual([1, 1]);
    answer = undefined;
    core(h, 100, 1, 100, 1, 48);
    expect(g.dv().getUint8(48)).toBe(0); // ok
  });

  it('works out which table is which once an instance is made, from every function lowered for it', () => {
    const g = guest();
    const [requests, fields, outparams, responses] = [g.table(), g.table(), g.table(), g.table()];
    g.low.roles.collect();
    const noop = () => undefined;
    // Functions with two tables each, in jco's order (by table index, not by type), and one single-table one.
    lowering(method('incoming-request', [], own('fields')), noop, g.low)({ resourceTables: [fields, requests] });
    lowering(fn([own('fields')], own('outgoing-response')), noop, g.low)({ resourceTables: [fields, responses] });
    lowering(method('outgoing-response', ['u16'], result(null, null)), noop, g.low)({ resourceTables: [responses] });
    lowering(fn([own('response-outparam'), result(own('outgoing-response'), ERROR_CODE)]), noop, g.low)({ memory: g.memory, resourceTables: [responses, outparams] });
    // fields is known from neither function alone: only once outgoing-response is.
    expect(g.low.roles.tableFor('response-outparam')).toBe(outparams);
    expect(g.low.roles.tableFor('fields')).toBe(fields);
    expect(g.low.roles.tableFor('incoming-request')).toBe(requests);
    g.low.roles.endCollect();
    // Two tables no function tells apart stay unknown.
    const h = guest();
    h.low.roles.collect();
    lowering(fn([own('fields')], own('outgoing-response')), noop, h.low)({ resourceTables: [h.table(), h.table()] });
    expect(h.low.roles.tableFor('fields')).toBeUndefined();
  });

  it('sees memory the guest grew between two calls', () => {
    const g = guest();
    const fields = g.table();
    const seen: string[] = [];
    const core = lowering(method('fields', ['string'], 'bool'), (_f: object, n: string) => (seen.push(n), true), g.low)({ memory: g.memory, resourceTables: [fields] }) as (...a: number[]) => number;
    const h = tableCreateOwn(fields, g.reps.add({}, 'fields'));
    core(h, 100, g.putString(100, 'before'));
    g.memory.grow(1);
    // A string in the new page: past the end of the buffer the first call saw.
    core(h, 70000, g.putString(70000, 'after'));
    expect(seen).toEqual(['before', 'after']);
  });

  it('sees a shared memory grown between two calls (its old buffer stays valid at its old length)', () => {
    const g = guest();
    const fields = g.table();
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
    const put = (at: number, s: string) => Buffer.from(memory.buffer).write(s, at, 'utf8');
    const seen: string[] = [];
    const core = lowering(method('fields', ['string'], 'bool'), (_f: object, n: string) => (seen.push(n), true), g.low)({ memory, resourceTables: [fields] }) as (...a: number[]) => number;
    const h = tableCreateOwn(fields, g.reps.add({}, 'fields'));
    core(h, 100, put(100, 'before'));
    memory.grow(1);
    core(h, 70000, put(70000, 'after'));
    expect(seen).toEqual(['before', 'after']);
  });

  it('takes an owned handle out of its table and gives a new one for an owned result', () => {
    const g = guest();
    const [a, b] = [g.table(), g.table()];
    const body = { name: 'body' };
    // incoming-body.finish: own<incoming-body> -> own<future-trailers>; tables come in index order, not by role.
    const type = fn([own('incoming-body')], own('future-trailers'));
    const core = lowering(type, (x: unknown) => ({ from: x }), g.low)({ resourceTables: [b, a] }) as (h: number) => number;
    const h = tableCreateOwn(a, g.reps.add(body, 'incoming-body'));
    const out = core(h);
    // The handle is gone from the body's table, the result lives in the other one.
    expect(handleRep(a, h)).toBeUndefined();
    const rep = handleRep(b, out)!;
    expect(g.reps.get(rep, 'future-trailers')).toEqual({ from: body });
    expect(g.low.roles.roleOf(a)).toBe('incoming-body');
    expect(g.low.roles.roleOf(b)).toBe('future-trailers');
  });

  it('lowers a variant whose i32 payload sits in a joined i64 slot, and lifts it back', () => {
    const g = guest();
    let got: unknown;
    const set = fn([own('response-outparam'), result(own('outgoing-response'), ERROR_CODE)]);
    const [t1, t2] = [g.table(), g.table()];
    const core = lowering(set, (_p: unknown, r: unknown) => void (got = r), g.low)({ memory: g.memory, resourceTables: [t1, t2] }) as (...a: (number | bigint)[]) => void;
    const param = tableCreateOwn(t2, g.reps.add({}, 'response-outparam'));
    g.low.roles.learn(t1, 'outgoing-response');
    // err(HTTP-response-body-size(some(123))): case 28, option some, u64 in the i64 slot.
    core(param, 1, 28, 1, 123n, 0, 0, 0, 0);
    expect(got).toEqual({ tag: 'err', val: { tag: 'HTTP-response-body-size', val: 123n } });
    // err(internal-error(some("boom"))): case 38, option some, the string's pointer in the i64 slot, its length after.
    const len = g.putString(200, 'boom');
    const param2 = tableCreateOwn(t2, g.reps.add({}, 'response-outparam'));
    core(param2, 1, 38, 1, 200n, len, 0, 0, 0);
    expect(got).toEqual({ tag: 'err', val: { tag: 'internal-error', val: 'boom' } });
  });

  it('stores lists, tuples and records as the codecs read them back (generated stores against the reference)', () => {
    const g = guest();
    const cases: [Ty, unknown][] = [
      [ENTRIES, [['content-type', 'text/plain'], ['x-v', 'caf\xe9'], ['empty', '']]],
      [list(list('u32')), [[1, 2, 3], [], [0xffffffff]]],
      [list('string'), ['a', 'é€', '']],
      [{ record: [['field-name', option('string')], ['field-size', option('u32')]] }, { fieldName: 'x-long', fieldSize: 70000 }],
      [{ tuple: ['u8', 'u64', 'bool'] }, [7, 2n ** 40n, true]],
      [list({ tuple: [BYTES, 'bool'] }), [[Buffer.from([1, 2]), false], [Buffer.alloc(0), true]]],
    ];
    for (const [ty, value] of cases) {
      const core = lowering(fn([], ty), () => value, g.low)({ memory: g.memory, realloc: g.realloc, resourceTables: [] }) as (ret: number) => void;
      core(64);
      const ctx = new Ctx({ memory: g.memory, realloc: g.realloc }, () => [], g.reps, undefined);
      const back = codec(ty).load(ctx, 64);
      const plain = (v: unknown): unknown => (v instanceof Uint8Array ? [...v] : Array.isArray(v) ? v.map(plain) : v);
      expect(plain(back), JSON.stringify(ty)).toEqual(plain(value));
    }
  });

  it('stores option<result<result<option<own>>>> (a future\'s get) in memory', () => {
    const g = guest();
    const [fieldsT, trailersT] = [g.table(), g.table()];
    const type = method('future-trailers', [], futureResult(option(own('fields'))));
    const value = { tag: 'ok', val: { tag: 'ok', val: { trailers: true } } };
    const core = lowering(type, () => value, g.low)({ memory: g.memory, realloc: g.realloc, resourceTables: [fieldsT, trailersT] }) as (...a: number[]) => void;
    const self = tableCreateOwn(trailersT, g.reps.add({}, 'future-trailers'));
    core(self, 64);
    const l = layout(type.result as Ty);
    expect(l.size).toBe(56);
    const dv = g.dv();
    // some(ok(ok(some(handle)))): discriminants at 0, 8, 16, 24 (error-code aligns the inner payloads to 8).
    expect([dv.getUint8(64), dv.getUint8(72), dv.getUint8(80), dv.getUint8(88)]).toEqual([1, 0, 0, 1]);
    const h = dv.getUint32(92, true);
    expect(g.reps.get(handleRep(fieldsT, h)!, 'fields')).toEqual({ trailers: true });
  });

  it('lifts list<tuple<string, list<u8>>> (fields.from-list) from memory', () => {
    const g = guest();
    const fieldsT = g.table();
    let got: unknown;
    const type = fn([ENTRIES], result(own('fields'), HEADER_ERROR));
    const core = lowering(type, (e: unknown) => {
      got = e;
      return {};
    }, g.low)({ memory: g.memory, realloc: g.realloc, resourceTables: [fieldsT] }) as (...a: number[]) => void;
    const dv = g.dv();
    const n1 = g.putString(300, 'a');
    g.bytes(310, 3).set([0x78, 0xe9, 0xff]);
    dv.setUint32(400, 300, true);
    dv.setUint32(404, n1, true);
    dv.setUint32(408, 310, true);
    dv.setUint32(412, 3, true);
    core(400, 1, 48);
    // A field value is bytes, held as a latin1 string (one char per byte).
    expect(got).toEqual([['a', 'x\xe9\xff']]);
    expect(dv.getUint8(48)).toBe(0);
  });

  it('passes field values as latin1 both ways: bytes in, the same bytes out', () => {
    const g = guest();
    const fieldsT = g.table();
    const values = new Map<string, string>();
    const obj = { append: (n: string, v: string) => void values.set(n, v), get: (n: string) => [values.get(n)!, 'b'] };
    const lower = (type: FnType, f: HostFn) => lowering(type, f, g.low)({ memory: g.memory, realloc: g.realloc, resourceTables: [fieldsT] }) as (...a: number[]) => void;
    const append = lower(method('fields', ['string', FIELD_VALUE], result(null, HEADER_ERROR)), (f: typeof obj, n: string, v: string) => f.append(n, v));
    const get = lower(method('fields', ['string'], list(FIELD_VALUE)), (f: typeof obj, n: string) => f.get(n));
    const h = tableCreateOwn(fieldsT, g.reps.add(obj, 'fields'));
    const n = g.putString(100, 'x-v');
    g.bytes(200, 4).set([0x63, 0x61, 0xe9, 0x80]);
    append(h, 100, n, 200, 4, 48);
    expect(values.get('x-v')).toBe('ca\xe9\x80');
    get(h, 100, n, 56);
    const dv = g.dv();
    const [list0, count] = [dv.getUint32(56, true), dv.getUint32(60, true)];
    expect(count).toBe(2);
    const first = g.bytes(dv.getUint32(list0, true), dv.getUint32(list0 + 4, true));
    expect([...first]).toEqual([0x63, 0x61, 0xe9, 0x80]);
  });

  it('refuses a handle of another type, and a bad variant discriminant, as traps', () => {
    const g = guest();
    const t = g.table();
    const core = lowering(method('fields', [], 'bool'), () => true, g.low)({ resourceTables: [t] }) as (h: number) => number;
    const h = tableCreateOwn(t, g.reps.add({}, 'incoming-request'));
    expect(() => core(h)).toThrow(WebAssembly.RuntimeError);
    expect(() => core(99)).toThrow(/unknown handle/);
    const f = lowering(fn([METHOD]), () => undefined, g.low)({ memory: g.memory }) as (...a: number[]) => void;
    expect(() => f(42, 0, 0)).toThrow(/discriminant/);
  });

  it('makes a JSPI Suspending import of a function that may wait', () => {
    const g = guest();
    const factory = lowering(fn([], 'u32'), () => 7, g.low, true);
    expect(factory({})).toBeInstanceOf(WebAssembly.Suspending);
  });
});

describe('reps', () => {
  it('reuses freed reps, checks types, and lets an instance\'s resources go with it', () => {
    const reps = new Reps();
    const scope = {};
    const other = {};
    const a = reps.add({ a: 1 }, 'fields', scope);
    const b = reps.add({ b: 1 }, 'pollable', scope);
    const kept = reps.add({ k: 1 }, 'pollable', other);
    expect(a).toBeGreaterThanOrEqual(1 << 28);
    expect(reps.typeOf(a)).toBe('fields');
    expect(() => reps.get(a, 'pollable')).toThrow(WebAssembly.RuntimeError);
    expect(reps.take(a, 'fields')).toEqual({ a: 1 });
    expect(reps.add({ c: 1 }, 'fields')).toBe(a);
    reps.releaseScope(scope);
    expect(() => reps.get(b, 'pollable')).toThrow();
    expect(reps.get(kept, 'pollable')).toEqual({ k: 1 });
    expect(reps.live).toBe(2);
  });

  it('holds objects in reusable slots (a slot list), each removed once', () => {
    const list = new SlotList<{ n: number }>();
    const a = list.add({ n: 1 });
    const b = list.add({ n: 2 });
    list.remove(a);
    list.remove(a);
    expect(list.add({ n: 3 })).toBe(a);
    const seen: number[] = [];
    list.forEach((o) => seen.push(o.n));
    expect(seen.sort()).toEqual([2, 3]);
    list.remove(b);
    expect(list.add({ n: 4 })).toBe(b);
  });

  it('names preview2-shim\'s objects in their own range, weakly', () => {
    const reps = new Reps();
    class ShimStream {}
    reps.nameForeign(ShimStream, 'input-stream');
    const s = new ShimStream();
    const rep = (s as Record<symbol, number>)[Symbol.for('cabiRep')]!;
    expect(rep).toBeGreaterThanOrEqual(1 << 29);
    expect((s as Record<symbol, number>)[Symbol.for('cabiRep')]).toBe(rep);
    expect(reps.get(rep, 'input-stream')).toBe(s);
    expect(reps.typeOf(rep)).toBe('input-stream');
  });
});
