// insertYieldPoints: a guest calls the Suspending import `tugboat.yield`
// once every `interval` yield points (loop headers, entries of functions that
// may recurse), however control moves between functions; the host can hand
// the event loop back there, and stop the guest. Everything else the module
// does stays the same.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { DEFAULT_YIELD_INTERVAL, insertYieldPoints, instrument, START_EXPORT } from '../../src/wasi-host/instrument/index.js';
import { runWasi, rustExamples, wat } from './helpers/wasm.js';

type Exports = Record<string, (...args: number[]) => number>;

/** Instantiates `bytes` with a plain (non-suspending) `tugboat.yield` that counts its calls. */
function counting(bytes: Uint8Array, imports: WebAssembly.Imports = {}): { exports: Exports; yields: () => number } {
  let yields = 0;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { ...imports, tugboat: { yield: () => void yields++ } });
  return { exports: instance.exports as unknown as Exports, yields: () => yields };
}

async function yieldsOf(text: string, interval: number, call: (e: Exports) => unknown, imports: WebAssembly.Imports = {}): Promise<number> {
  const out = insertYieldPoints(await wat(text), { interval });
  expect(WebAssembly.validate(out)).toBe(true);
  const guest = counting(out, imports);
  call(guest.exports);
  return guest.yields();
}

describe('a spinning guest', () => {
  it('hands the event loop back through tugboat.yield, and stops there for good when never resumed', async () => {
    const bytes = insertYieldPoints(await wat('(module (func (export "spin") (loop $forever (br $forever))))'), { interval: 1000 });
    let calls = 0;
    let timerFired = false;
    setTimeout(() => (timerFired = true), 5);
    const started = performance.now();
    const host = new WebAssembly.Suspending(async () => {
      calls++;
      // What the shared host does: let other guests and timers run; and to
      // kill a guest, never resume it (its suspended stack is then garbage).
      await new Promise((resolve) => setImmediate(resolve));
      if (timerFired || performance.now() - started > 5_000) await new Promise(() => {});
    });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { tugboat: { yield: host } });
    let settled = false;
    void WebAssembly.promising(instance.exports.spin as () => void)().finally(() => (settled = true));
    while (!timerFired) await new Promise((resolve) => setTimeout(resolve, 1));
    const callsAtKill = calls;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toBeGreaterThan(0);
    expect(calls - callsAtKill).toBeLessThanOrEqual(1); // frozen at its next yield point
    expect(settled).toBe(false);
  });

  it('can catch an exception the host throws from tugboat.yield (so throwing cannot kill)', async () => {
    const bytes = insertYieldPoints(await wat('(module (func (export "spin") (loop $l try (loop $m (br $m)) catch_all end (br $l))))'), { interval: 100 });
    let calls = 0;
    const host = new WebAssembly.Suspending(async () => {
      if (++calls <= 3) throw new Error('killed');
      await new Promise(() => {});
    });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { tugboat: { yield: host } });
    void WebAssembly.promising(instance.exports.spin as () => void)();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toBe(4);
  });

  it('yields every `interval` loop iterations, across calls', async () => {
    const loop = `(module (func (export "run") (param $n i32)
      (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))`;
    expect(await yieldsOf(loop, 10, (e) => e.run!(1000))).toBe(100);
    expect(await yieldsOf(loop, 10, (e) => [e.run!(995), e.run!(5)])).toBe(100);
    expect(await yieldsOf(loop, 7, (e) => e.run!(20))).toBe(2);
  });
});

describe('yield points are exact however control moves', () => {
  // interval 10 throughout: N yield points → floor(N / 10) calls
  it('through calls: the callee counts on where the caller left the counter', async () => {
    const text = `(module
      (func $inner (local $i i32) (local.set $i (i32.const 3)) (loop $l (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1))))))
      (func (export "run") (param $n i32) (loop $l (call $inner) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))`;
    // 100 outer headers + 100 × 3 inner headers
    expect(await yieldsOf(text, 10, (e) => e.run!(100))).toBe(40);
  });

  it('through indirect calls', async () => {
    const text = `(module (type $v (func)) (table 1 funcref) (elem (i32.const 0) $inner)
      (func $inner (local $i i32) (local.set $i (i32.const 3)) (loop $l (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1))))))
      (func (export "run") (param $n i32) (loop $l (call_indirect (type $v) (i32.const 0)) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))`;
    expect(await yieldsOf(text, 10, (e) => e.run!(100))).toBe(40);
  });

  it('at the entries of functions on a call cycle only', async () => {
    const chain = `(module
      (func $leaf (result i32) (i32.const 1))
      (func $mid (result i32) (call $leaf))
      (func (export "run") (param $n i32) (loop $l (drop (call $mid)) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))`;
    // 100 outer headers; $mid calls but cannot recurse
    expect(await yieldsOf(chain, 10, (e) => e.run!(100))).toBe(10);
    const mutual = `(module
      (func $even (export "even") (param $n i32) (result i32) (if (result i32) (local.get $n) (then (call $odd (i32.sub (local.get $n) (i32.const 1)))) (else (i32.const 1))))
      (func $odd (param $n i32) (result i32) (if (result i32) (local.get $n) (then (call $even (i32.sub (local.get $n) (i32.const 1)))) (else (i32.const 0)))))`;
    expect(await yieldsOf(mutual, 10, (e) => e.even!(99))).toBe(10); // 100 entries
    // a cycle through a table: $step calls whatever slot 0 holds, which is $step
    const indirect = `(module (type $t (func (param i32))) (table 1 funcref) (elem (i32.const 0) $step)
      (func $step (param $n i32) (if (local.get $n) (then (call_indirect (type $t) (i32.sub (local.get $n) (i32.const 1)) (i32.const 0)))))
      (func (export "run") (param $n i32) (call $step (local.get $n))))`;
    expect(await yieldsOf(indirect, 10, (e) => e.run!(99))).toBe(10); // 100 entries of $step
  });

  it('in recursion without any loop', async () => {
    const text = `(module (func $fib (export "fib") (param $n i32) (result i32)
      (if (result i32) (i32.lt_u (local.get $n) (i32.const 2)) (then (local.get $n))
        (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1))) (call $fib (i32.sub (local.get $n) (i32.const 2))))))))`;
    const calls = (n: number): number => (n < 2 ? 1 : 1 + calls(n - 1) + calls(n - 2));
    let result = 0;
    expect(await yieldsOf(text, 10, (e) => (result = e.fib!(20)))).toBe(Math.floor(calls(20) / 10));
    expect(result).toBe(6765);
  });

  it('in tail calls', async () => {
    const text = `(module (func $down (export "down") (param $n i32) (result i32)
      (if (result i32) (local.get $n) (then (return_call $down (i32.sub (local.get $n) (i32.const 1)))) (else (i32.const 0)))))`;
    expect(await yieldsOf(text, 10, (e) => e.down!(999))).toBe(100); // 1000 entries
  });

  it.each([
    ['br_if', '(br_if 1 (i32.eqz (local.get $i)))'],
    ['br_table', '(br_table 0 1 (i32.eqz (local.get $i)))'],
    ['return', '(if (i32.eqz (local.get $i)) (then return))'],
  ])('when a loop leaves its function by %s', async (_how, exit) => {
    const text = `(module
      (func $inner (local $i i32) (local.set $i (i32.const 5))
        (loop $l (local.set $i (i32.sub (local.get $i) (i32.const 1))) ${exit} (br $l)))
      (func (export "run") (param $n i32) (loop $l (call $inner) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))`;
    // 10 outer headers + 10 × 5 inner headers
    expect(await yieldsOf(text, 10, (e) => e.run!(10))).toBe(6);
  });

  it.each([
    [
      'legacy try/catch',
      `(loop $l try (call $thrower) catch $e end (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))`,
    ],
    [
      'try_table',
      `(loop $l (block $c (try_table (catch $e $c) (call $thrower))) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))`,
    ],
    [
      'a catch of what an import throws',
      `(loop $l try (call $jsThrows) catch_all end (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))`,
    ],
  ])('when exceptions unwind through functions (%s)', async (_how, body) => {
    const text = `(module (tag $e) (import "env" "throws" (func $jsThrows))
      (func $thrower (local $i i32) (local.set $i (i32.const 4))
        (loop $l (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1))))) (throw $e))
      (func (export "run") (param $n i32) ${body}))`;
    // 50 outer headers + 50 × 4 thrower headers; or 250 outer headers around a throwing import
    const thrower = body.includes('$thrower');
    expect(await yieldsOf(text, 10, (e) => e.run!(thrower ? 50 : 250), { env: { throws: () => { throw new Error('from the host'); } } })).toBe(25);
  });
});

describe('bulk memory instructions count by their length', () => {
  // One yield point per 64 bytes, checked just before the instruction runs.
  const expected = (turns: number, bytes: number, interval: number) => {
    let counter = interval;
    let yields = 0;
    for (let i = 0; i < turns; i++) {
      if (--counter === 0) [counter, yields] = [interval, yields + 1]; // the loop header
      counter -= bytes >>> 6;
      if (counter <= 0) [counter, yields] = [interval, yields + 1];
    }
    return yields;
  };
  const data = '\\00'.repeat(8192);
  const loop = (op: string) => `(module (memory (export "memory") 1) (data $d "${data}")
    (func $op (param $len i32) ${op})
    (func (export "inline") (param $n i32) (param $len i32)
      (loop $l ${op} (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    (func (export "called") (param $n i32) (param $len i32)
      (loop $l (call $op (local.get $len)) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))`;

  it.each([
    ['memory.fill', '(memory.fill (i32.const 0) (i32.const 7) (local.get $len))'],
    ['memory.copy', '(memory.copy (i32.const 0) (i32.const 8192) (local.get $len))'],
    ['memory.init', '(memory.init $d (i32.const 0) (i32.const 0) (local.get $len))'],
  ])('%s, in a loop and in a function a loop calls', async (_name, op) => {
    for (const [bytes, turns] of [[6400, 100], [64, 1000], [8000, 37]] as const) {
      expect(await yieldsOf(loop(op), 1000, (e) => e.inline!(turns, bytes))).toBe(expected(turns, bytes, 1000));
      expect(await yieldsOf(loop(op), 1000, (e) => e.called!(turns, bytes))).toBe(expected(turns, bytes, 1000));
    }
  });

  it('yields before a fill that is worth an interval on its own, not after', async () => {
    const bytes = insertYieldPoints(await wat('(module (memory (export "memory") 17) (func (export "fill") (memory.fill (i32.const 0) (i32.const 7) (i32.const 1048576))))'), { interval: 10_000 });
    let seen = -1;
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      tugboat: { yield: () => void (seen = new Uint8Array((exports.memory as WebAssembly.Memory).buffer)[1048575]!) },
    });
    (exports.fill as () => void)();
    expect(seen).toBe(0);
    expect(new Uint8Array((exports.memory as WebAssembly.Memory).buffer)[1048575]).toBe(7);
  });

  it('leaves a 64-bit memory\'s bulk instructions unweighted', async () => {
    const text = `(module (memory i64 1) (func (export "run") (param $n i32)
      (loop $l (memory.fill (i64.const 0) (i32.const 7) (i64.const 6400)) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))`;
    expect(await yieldsOf(text, 10, (e) => e.run!(100))).toBe(10);
  });
});

describe('what stays the same', () => {
  it('loops with parameters and results keep working', async () => {
    const text = `(module (func (export "sum") (param $n i32) (result i32)
      (i32.const 0) (local.get $n)
      (loop $l (param i32 i32) (result i32)
        (local.set $n) (i32.add (local.get $n)) (local.get $n) (i32.sub (i32.const 1)) (local.tee $n)
        (br_if $l (local.get $n)) (drop))))`;
    const bytes = await wat(text);
    const before = counting(bytes).exports.sum!(100);
    expect(before).toBe(5050);
    expect(counting(insertYieldPoints(bytes, { interval: 3 })).exports.sum!(100)).toBe(5050);
  });

  it('every place a function index lives is renumbered: exports, start, elements, tables, globals, ref.func', async () => {
    const text = `(module
      (type $i (func (result i32)))
      (import "env" "seven" (func $seven (result i32)))
      (import "env" "base" (global $base i32))
      (table $t 8 funcref)
      (table $typed 1 (ref null $i) (ref.func $two))
      (global $gf funcref (ref.func $three))
      (global $gt (ref null $i) (ref.func $four))
      (global $started (mut i32) (i32.const 0))
      (elem (table $t) (offset (global.get $base)) func $one $two $seven)
      (elem $passive func $three $four)
      (elem declare func $five)
      (func $one (type $i) (i32.const 1))
      (func $two (type $i) (i32.const 2))
      (func $three (type $i) (i32.const 3))
      (func $four (type $i) (i32.const 4))
      (func $five (type $i) (i32.const 5))
      (func $init (global.set $started (i32.const 42)))
      (start $init)
      (func (export "indirect") (param i32) (result i32) (call_indirect $t (type $i) (local.get 0)))
      (func (export "passive") (param i32) (result i32)
        (table.init $t $passive (i32.const 5) (i32.const 0) (i32.const 2))
        (call_indirect $t (type $i) (local.get 0)))
      (func (export "viaGlobal") (result i32) (table.set $t (i32.const 7) (global.get $gf)) (call_indirect $t (type $i) (i32.const 7)))
      (func (export "typed") (result i32) (i32.add (call_ref $i (ref.as_non_null (global.get $gt))) (call_ref $i (ref.as_non_null (table.get $typed (i32.const 0))))))
      (func (export "refFunc") (result i32) (call_ref $i (ref.func $five)))
      (func (export "started") (result i32) (global.get $started))
      (func (export "imported") (result i32) (call $seven))
      (export "two" (func $two))
      (export "table" (table $t)))`;
    const bytes = await wat(text);
    const out = insertYieldPoints(bytes, { interval: 2 });
    expect(WebAssembly.validate(out)).toBe(true);
    const imports = { env: { seven: () => 7, base: new WebAssembly.Global({ value: 'i32' }, 1) } };
    const results = (e: Exports) => [e.indirect!(1), e.indirect!(2), e.indirect!(3), e.passive!(5), e.passive!(6), e.viaGlobal!(), e.typed!(), e.refFunc!(), e.started!(), e.imported!(), e.two!()];
    const expected = [1, 2, 7, 3, 4, 3, 6, 5, 42, 7, 2];
    expect(results(counting(bytes, imports).exports)).toEqual(expected);
    const instrumented = counting(out, imports).exports;
    instrumented[START_EXPORT]!(); // the start function is the host's to call now
    expect(results(instrumented)).toEqual(expected);
  });

  it('turns the start function into an export the host calls through JSPI', async () => {
    // A start function runs inside instantiation, where no promising call is
    // on the stack and a Suspending import throws; one with a long loop
    // (AssemblyScript puts a program's top level there) would die at its
    // first yield.
    const text = `(module (global $done (mut i32) (i32.const 0))
      (func $main (local $n i32) (local.set $n (i32.const 100))
        (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))) (global.set $done (i32.const 1)))
      (start $main)
      (func (export "done") (result i32) (global.get $done)))`;
    const { bytes, report } = instrument(await wat(text), { yieldPoints: { interval: 10 } });
    expect(report.yieldPoints!.startExport).toBe(START_EXPORT);
    let yields = 0;
    const host = new WebAssembly.Suspending(async () => void yields++);
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { tugboat: { yield: host } });
    expect((exports.done as () => number)()).toBe(0);
    await WebAssembly.promising(exports[START_EXPORT] as () => void)();
    expect((exports.done as () => number)()).toBe(1);
    expect(yields).toBe(10);
    // A module without exports gets an export section, before the start section's old place.
    const bare = instrument(await wat('(module (func $s) (start $s) (func (loop)))'), { yieldPoints: { interval: 10 } }).bytes;
    expect(WebAssembly.Module.exports(new WebAssembly.Module(bare))).toEqual([{ name: START_EXPORT, kind: 'function' }]);
    // A module that already uses the name is refused.
    const taken = await wat('(module (func $s) (start $s) (export "tugboat:start" (func $s)))');
    expect(() => insertYieldPoints(taken, { interval: 10 })).toThrow(/unsupported Wasm export name "tugboat:start" \(reserved for the start function\)/);
  });

  it('renumbers the name section, so a trap still names the right function', async () => {
    const text = `(module (import "env" "f" (func $imported))
      (func $first) (func $boom unreachable) (func $last)
      (func (export "go") (call $first) (call $boom) (call $last)))`;
    const { bytes, report } = instrument(await wat(text), { yieldPoints: { interval: 5 } });
    expect(report.yieldPoints!.nameSection).toBe('renumbered');
    const { exports } = counting(bytes, { env: { f: () => {} } });
    let stack = '';
    try {
      exports.go!();
    } catch (err) {
      stack = (err as Error).stack ?? '';
    }
    expect(stack.split('\n')[1]).toMatch(/at boom \(wasm:/);
  });

  it('drops a malformed name section and the custom sections that point into code', async () => {
    const bytes = await wat('(module (func (export "f") (loop $l (br_if $l (i32.const 0)))))');
    const custom = (name: string, payload: number[]) => [0x00, 1 + name.length + payload.length, name.length, ...Buffer.from(name), ...payload];
    const withCustom = new Uint8Array([...bytes, ...custom('name', [0x01, 0x7f, 0x00]), ...custom('.debug_info', [1, 2, 3]), ...custom('producers', [0])]);
    expect(WebAssembly.validate(withCustom)).toBe(true);
    const { bytes: out, report } = instrument(withCustom, { yieldPoints: { interval: 5 } });
    expect(report.yieldPoints).toMatchObject({ nameSection: 'dropped (malformed)', droppedSections: ['.debug_info'] });
    expect(WebAssembly.validate(out)).toBe(true);
    const sections = WebAssembly.Module.customSections(new WebAssembly.Module(out), 'producers');
    expect(sections).toHaveLength(1);
    expect(WebAssembly.Module.customSections(new WebAssembly.Module(out), 'name')).toHaveLength(0);
  });

  it('adds the sections a module lacks, in their place', async () => {
    // no type, import, function, global or code section at all
    const bare = await wat('(module (memory 1))');
    const out = instrument(bare, { yieldPoints: { interval: 5 } });
    expect(WebAssembly.validate(out.bytes)).toBe(true);
    expect(WebAssembly.Module.imports(new WebAssembly.Module(out.bytes))).toEqual([{ module: 'tugboat', name: 'yield', kind: 'function' }]);
    expect(out.report.yieldPoints).toMatchObject({ importIndex: 0, counterGlobal: 0, loops: 0 });
  });

  it('reports what it did', async () => {
    const text = `(module (import "env" "f" (func)) (global i32 (i32.const 0)) (memory 1)
      (func $loops (loop $l (br_if $l (i32.const 0))) (loop $m (br_if $m (i32.const 0))) (memory.fill (i32.const 0) (i32.const 0) (i32.const 0)))
      (func $calls (call $loops))
      (func $rec (call $rec))
      (func $leaf))`;
    const { report } = instrument(await wat(text), { yieldPoints: { interval: 77 } });
    expect(report.yieldPoints).toEqual({
      interval: 77,
      loops: 2,
      functionEntries: 1,
      bulkInstructions: 1,
      functionBodies: 4,
      localCounters: 1,
      importIndex: 1,
      counterGlobal: 1,
      nameSection: 'renumbered',
      droppedSections: [],
      startExport: undefined,
    });
  });

  it('counts on the global in a function that has no room for one more local', () => {
    // (func (param i32) (local i32 × 49999) (loop (br_if 0 (local.get 0)))): V8 allows 50000 locals in all
    const body = [0x01, 0xcf, 0x86, 0x03, 0x7f, 0x03, 0x40, 0x20, 0x00, 0x0d, 0x00, 0x0b, 0x0b];
    const bytes = new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x01, 0x05, 0x01, 0x60, 0x01, 0x7f, 0x00, // type: [i32] -> []
      0x03, 0x02, 0x01, 0x00,
      0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // export "f"
      0x0a, body.length + 2, 0x01, body.length, ...body,
    ]);
    expect(WebAssembly.validate(bytes)).toBe(true);
    const { bytes: out, report } = instrument(bytes, { yieldPoints: { interval: 1 } });
    expect(report.yieldPoints).toMatchObject({ loops: 1, localCounters: 0 });
    const guest = counting(out);
    guest.exports.f!(0);
    expect(guest.yields()).toBe(1);
  });

  it('refuses an interval that is not a positive 31-bit integer', async () => {
    const bytes = await wat('(module)');
    for (const interval of [0, -1, 2.5, 2 ** 31]) expect(() => insertYieldPoints(bytes, { interval })).toThrow(ConfigError);
    expect(DEFAULT_YIELD_INTERVAL).toBeGreaterThan(0);
  });
});

describe('the Rust examples behave the same instrumented', () => {
  const example = (name: string) => rustExamples().find((m) => m.name === `${name}.wasm`)!.bytes;
  const both = async (name: string, args: string[], options: Parameters<typeof runWasi>[2] = {}) => {
    const bytes = example(name);
    const instrumented = instrument(bytes, { maxMemoryPages: 4096, yieldPoints: { interval: 1000 } }).bytes;
    const before = await runWasi(bytes, args, options);
    const after = await runWasi(instrumented, args, { ...options, suspendEvery: 3 });
    return { before, after };
  };

  it.each([
    ['hello', ['hello', 'one', 'two words']],
    ['exitcode', ['exitcode', '0']],
    ['exitcode', ['exitcode', '3']],
    ['exitcode', ['exitcode', '255']],
    ['exitcode', ['exitcode', 'nan']],
    ['exitcode', ['exitcode', 'trap']],
    ['compute', ['compute', '200000']],
  ])('%s %j', async (name, args) => {
    const { before, after } = await both(name, args);
    expect({ ...after, yields: 0 }).toEqual({ ...before, yields: 0 });
    if (name === 'compute') expect(after.yields).toBeGreaterThan(100);
  });

  it('fileio writes and reads through a preopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tugboat-fileio-'));
    try {
      const preopens = { '/data': dir };
      const write = await both('fileio', ['fileio', 'write', '/data/a.txt', 'hello'], { preopens });
      expect(write.after).toMatchObject({ code: 0, stdout: write.before.stdout });
      expect(readFileSync(join(dir, 'a.txt'), 'utf8')).toBe('hello');
      const read = await both('fileio', ['fileio', 'read', '/data/a.txt'], { preopens });
      expect(read.after).toMatchObject({ code: 0, stdout: 'hello' });
      const ls = await both('fileio', ['fileio', 'ls', '/data'], { preopens });
      expect(ls.after.stdout).toBe(ls.before.stdout);
      const missing = await both('fileio', ['fileio', 'read', '/data/nope'], { preopens });
      expect({ ...missing.after, yields: 0 }).toEqual({ ...missing.before, yields: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
