// exportState: every memory and mutable global a module defines is exported
// under tugboat:state:*, so a host can copy an instance's state when it is
// made and copy it back between requests; and a module whose code changes
// what those exports cannot reach (tables, segments), or whose copy would not
// hold still (a shared memory), is reported as unresettable.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WasmDecodeError, WasmUnsupportedError } from '../../src/errors.js';
import { exportState, instrument, STATE_EXPORT_PREFIX } from '../../src/wasi-host/instrument/index.js';
import { coreModules, dependencyModules, leb128, REPO, wat } from './helpers/wasm.js';

const EXPORT_SECTION = 7;

/** A module's sections in order: id and the whole section's bytes. */
function sections(bytes: Uint8Array): { id: number; bytes: Buffer }[] {
  const out: { id: number; bytes: Buffer }[] = [];
  let p = 8;
  while (p < bytes.length) {
    const start = p;
    const id = bytes[p++]!;
    let size: number;
    [size, p] = leb128(bytes, p);
    p += size;
    out.push({ id, bytes: Buffer.from(bytes.subarray(start, p)) });
  }
  return out;
}

function instantiate(bytes: Uint8Array, imports: WebAssembly.Imports = {}): WebAssembly.Exports {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports;
}

const STATEFUL = `(module
  (import "env" "g" (global $imported (mut i32)))
  (memory (export "memory") 1)
  (global $counter (mut i32) (i32.const 7))
  (global $constant i64 (i64.const 2))
  (global $wide (mut i64) (i64.const 3))
  (func (export "counter") (result i32) (global.get $counter))
  (func (export "bump") (global.set $counter (i32.add (global.get $counter) (i32.const 1))))
  (func (export "wide") (result i64) (global.get $wide))
  (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0))))`;

describe('exportState', () => {
  it('exports the memory and the mutable globals the module defines, numbered in their index spaces', async () => {
    const { report } = exportState(await wat(STATEFUL));
    expect(report).toEqual({ memories: ['tugboat:state:memory:0'], globals: ['tugboat:state:global:1', 'tugboat:state:global:3'] });
    expect(report.unresettable).toBeUndefined();
  });

  it('reads and writes a global through its export, as the module sees it', async () => {
    const { bytes } = exportState(await wat(STATEFUL));
    const e = instantiate(bytes, { env: { g: new WebAssembly.Global({ value: 'i32', mutable: true }, 0) } });
    const counter = e['tugboat:state:global:1'] as WebAssembly.Global;
    const wide = e['tugboat:state:global:3'] as WebAssembly.Global;
    const call = (name: string) => (e[name] as () => number | bigint)();
    expect(counter.value).toBe(7);
    call('bump');
    expect(counter.value).toBe(8);
    counter.value = 42;
    expect(call('counter')).toBe(42);
    expect(wide.value).toBe(3n);
    wide.value = -1n;
    expect(call('wide')).toBe(-1n);
    expect(e['tugboat:state:global:0']).toBeUndefined(); // imported: the host's own
    expect(e['tugboat:state:global:2']).toBeUndefined(); // immutable
  });

  it('exports the same Memory the module exports itself', async () => {
    const { bytes } = exportState(await wat(STATEFUL));
    const e = instantiate(bytes, { env: { g: new WebAssembly.Global({ value: 'i32', mutable: true }, 0) } });
    const memory = e['tugboat:state:memory:0'] as WebAssembly.Memory;
    expect(memory).toBe(e.memory);
    new Uint8Array(memory.buffer)[5] = 99;
    expect((e.load as (p: number) => number)(5)).toBe(99);
  });

  it('leaves every section but the export section byte for byte, the code above all', async () => {
    const input = await wat(STATEFUL);
    const { bytes } = exportState(input);
    const rest = (b: Uint8Array) => sections(b).filter((s) => s.id !== EXPORT_SECTION);
    expect(rest(bytes).length).toBe(rest(input).length);
    rest(bytes).forEach((s, i) => expect(s.bytes.equals(rest(input)[i]!.bytes)).toBe(true));
    expect(sections(bytes).some((s) => s.id === 10)).toBe(true);
  });

  it('skips imported memories in the names and the exports, and counts them in the index space', async () => {
    const text = `(module (import "env" "m" (memory 1)) (memory 1) (global (mut f64) (f64.const 0.5))
      (func (export "size") (result i32) (memory.size 1)))`;
    const { bytes, report } = exportState(await wat(text));
    expect(report).toEqual({ memories: ['tugboat:state:memory:1'], globals: ['tugboat:state:global:0'] });
    const imported = new WebAssembly.Memory({ initial: 1 });
    const e = instantiate(bytes, { env: { m: imported } });
    expect(e['tugboat:state:memory:1']).toBeInstanceOf(WebAssembly.Memory);
    expect(e['tugboat:state:memory:1']).not.toBe(imported);
    expect((e['tugboat:state:global:0'] as WebAssembly.Global).value).toBe(0.5);
  });

  it('adds an export section where there is none, before a start section', async () => {
    const input = await wat('(module (memory 1) (global (mut i32) (i32.const 0)) (func $s (global.set 0 (i32.const 5))) (start $s))');
    expect(sections(input).some((s) => s.id === EXPORT_SECTION)).toBe(false);
    const { bytes, report } = exportState(input);
    expect(report.globals).toEqual(['tugboat:state:global:0']);
    const e = instantiate(bytes);
    expect((e['tugboat:state:global:0'] as WebAssembly.Global).value).toBe(5);
    expect(e['tugboat:state:memory:0']).toBeInstanceOf(WebAssembly.Memory);
  });

  it('exports global reference values JavaScript can hold', async () => {
    const { bytes, report } = exportState(await wat('(module (global (mut externref) (ref.null extern)) (global (mut funcref) (ref.null func)))'));
    expect(report).toEqual({ memories: [], globals: ['tugboat:state:global:0', 'tugboat:state:global:1'] });
    const e = instantiate(bytes);
    const ext = e['tugboat:state:global:0'] as WebAssembly.Global;
    ext.value = { any: 'thing' };
    expect(ext.value).toEqual({ any: 'thing' });
  });

  it('gives a module without memory or mutable globals no exports, and the input back', async () => {
    for (const text of ['(module (func (export "f") (result i32) (i32.const 1)))', '(module (global i32 (i32.const 1)) (table 1 funcref))', '(module)']) {
      const input = await wat(text);
      const { bytes, report } = exportState(input);
      expect(report).toEqual({ memories: [], globals: [] });
      expect(bytes).toBe(input);
    }
  });

  it('exports the yield counter of an instrumented module, which then resets with the rest', async () => {
    const { bytes: instrumented, report: ir } = instrument(await wat('(module (memory 1) (func (export "spin") (loop $l (br $l))))'), { yieldPoints: { interval: 100 } });
    const { bytes, report } = exportState(instrumented);
    expect(report.globals).toEqual([`${STATE_EXPORT_PREFIX}global:${ir.yieldPoints!.counterGlobal}`]);
    expect(WebAssembly.validate(bytes)).toBe(true);
  });
});

// One body per instruction that changes a table or drops a segment.
const BASE = (body: string) => `(module (memory 1) (table $t 2 funcref) (elem $e func $f) (data $d "x")
  (global (mut i32) (i32.const 0))
  (func $f (export "f") ${body}))`;

const UNRESETTABLE: [string, string, string][] = [
  ['table.set', '(table.set $t (i32.const 0) (ref.null func))', 'it changes a table at run time (table.set)'],
  ['table.grow', '(drop (table.grow $t (ref.null func) (i32.const 1)))', 'it changes a table at run time (table.grow)'],
  ['table.fill', '(table.fill $t (i32.const 0) (ref.null func) (i32.const 1))', 'it changes a table at run time (table.fill)'],
  ['table.copy', '(table.copy $t $t (i32.const 0) (i32.const 1) (i32.const 1))', 'it changes a table at run time (table.copy)'],
  ['table.init', '(table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))', 'it changes a table at run time (table.init)'],
  ['elem.drop', '(elem.drop $e)', 'it drops an element segment at run time (elem.drop)'],
  ['data.drop', '(data.drop $d)', 'it drops a data segment at run time (data.drop)'],
];

describe('unresettable modules', () => {
  it.each(UNRESETTABLE)('%s: says so and names it, and gives the input back', async (_name, body, reason) => {
    const input = await wat(BASE(body));
    expect(WebAssembly.validate(input)).toBe(true);
    const { bytes, report } = exportState(input);
    expect(report).toEqual({ unresettable: reason, memories: [], globals: [] });
    expect(bytes).toBe(input);
  });

  it('names every such instruction found, grouped by what it changes', async () => {
    const body = '(data.drop $d) (table.set $t (i32.const 0) (ref.null func)) (drop (table.grow $t (ref.null func) (i32.const 1))) (table.set $t (i32.const 1) (ref.null func))';
    const { report } = exportState(await wat(BASE(body)));
    expect(report.unresettable).toBe('it changes a table at run time (table.set, table.grow); it drops a data segment at run time (data.drop)');
  });

  it.each([
    ['memory.init', '(memory.init $d (i32.const 0) (i32.const 0) (i32.const 1))'],
    ['memory.fill', '(memory.fill (i32.const 0) (i32.const 7) (i32.const 4))'],
    ['memory.copy', '(memory.copy (i32.const 0) (i32.const 4) (i32.const 4))'],
    ['table.get', '(drop (table.get $t (i32.const 0)))'],
    ['table.size', '(drop (table.size $t))'],
    ['memory.grow', '(drop (memory.grow (i32.const 1)))'],
    ['call_indirect', '(call_indirect $t (i32.const 1))'],
  ])('%s: resettable (memory contents are restored; tables only read)', async (_name, body) => {
    const input = await wat(BASE(body));
    expect(WebAssembly.validate(input)).toBe(true);
    const { bytes, report } = exportState(input);
    expect(report).toEqual({ memories: ['tugboat:state:memory:0'], globals: ['tugboat:state:global:0'] });
    expect(WebAssembly.validate(bytes)).toBe(true);
  });

  it('a shared memory, defined or imported', async () => {
    for (const memory of ['(memory 1 1 shared)', '(import "env" "m" (memory 1 1 shared))']) {
      const input = await wat(`(module ${memory} (global (mut i32) (i32.const 0)))`);
      expect(WebAssembly.validate(input)).toBe(true);
      const { bytes, report } = exportState(input);
      expect(report).toEqual({ unresettable: 'it has a shared memory (threads)', memories: [], globals: [] });
      expect(bytes).toBe(input);
    }
  });

  it('an export of its own under tugboat:state: (a guest must not fake ours)', async () => {
    const input = await wat('(module (memory 1) (global $g (mut i32) (i32.const 0)) (export "tugboat:state:x" (global $g)))');
    const { bytes, report } = exportState(input);
    expect(report.unresettable).toBe('it exports "tugboat:state:x" itself (a name reserved for state exports)');
    expect(bytes).toBe(input);
    // Already exported once: exporting again would fake nothing, but the same rule holds.
    const again = exportState(exportState(await wat('(module (memory 1))')).bytes);
    expect(again.report.unresettable).toContain('"tugboat:state:memory:0"');
  });

  it('a mutable v128 global (JavaScript cannot read it); an immutable one is fine', async () => {
    const mutable = exportState(await wat('(module (global i32 (i32.const 0)) (global (mut v128) (v128.const i64x2 0 0)))'));
    expect(mutable.report.unresettable).toBe('global 1 is a mutable v128, which JavaScript cannot read');
    const immutable = exportState(await wat('(module (global v128 (v128.const i64x2 0 0)) (global (mut i32) (i32.const 0)))'));
    expect(immutable.report).toEqual({ memories: [], globals: ['tugboat:state:global:1'] });
  });

  it('malformed or unsupported input ends in the decoder’s typed errors', async () => {
    expect(() => exportState(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 7, 5, 1]))).toThrow(WasmDecodeError);
    expect(() => exportState(new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]))).toThrow(WasmUnsupportedError); // a component
  });
});

describe('built modules', () => {
  /** The core modules under the build outputs (components' embedded ones included), if built. */
  function built(): { name: string; bytes: Uint8Array }[] {
    const out: { name: string; bytes: Uint8Array }[] = [];
    for (const dir of [join(REPO, 'test', 'fixtures', 'out'), join(REPO, 'examples', 'components', 'out')]) {
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir).filter((f) => f.endsWith('.wasm'))) {
        const bytes = readFileSync(join(dir, f));
        if (bytes[4] === 0x0d && bytes[6] === 1) coreModules(bytes).forEach((m, i) => out.push({ name: `${f} core module ${i}`, bytes: m }));
        else out.push({ name: f, bytes });
      }
    }
    return out;
  }

  const modules = built();
  it.skipIf(modules.length === 0)('exports their state and still compile', async () => {
    for (const { name, bytes } of modules) {
      const { bytes: out, report } = exportState(bytes);
      const module = await WebAssembly.compile(out);
      const names = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
      for (const n of [...report.memories, ...report.globals]) expect(names.has(n), `${name}: ${n}`).toBe(true);
    }
  });

  it('dependency modules (large, real toolchain output) are resettable and stay valid', () => {
    for (const { name, bytes } of dependencyModules()) {
      const { bytes: out, report } = exportState(bytes);
      expect(report.unresettable, name).toBeUndefined();
      expect(WebAssembly.validate(out), name).toBe(true);
    }
  });
});
