// Putting an instance back to its state when made (src/wasi-host/http/reset.ts)
// and readying a cache entry for it (src/linux-runtime/component-reset.ts).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COMPONENT_ENTRY, ensureTranspiled } from '../../src/linux-runtime/component-cache.js';
import { patchGlue } from '../../src/linux-runtime/component-reset.js';
import { FLAG, tableCreateOwn, tableRemove, type HandleTable } from '../../src/wasi-host/http/abi.js';
import { InstanceState, InstanceWatch, MemoryCopies } from '../../src/wasi-host/http/reset.js';
import { exportState } from '../../src/wasi-host/instrument/index.js';
import { wat } from './helpers/wasm.js';

const GUEST = `(module
  (import "host" "flags" (global $flags (mut i32)))
  (memory (export "memory") 1)
  (global $g (mut i64) (i64.const 7))
  (global $k i32 (i32.const 3))
  (data (i32.const 100) "made")
  (func (export "poke") (param $v i32)
    (i32.store (i32.const 100) (local.get $v))
    (i32.store (i32.const 60000) (local.get $v))
    (global.set $g (i64.extend_i32_u (local.get $v)))
    (global.set $flags (local.get $v)))
  (func (export "peek") (result i64)
    (i64.add (i64.load32_u (i32.const 100)) (global.get $g)))
  (func (export "grow") (drop (memory.grow (i32.const 1))))
  (func (export "grow0") (drop (memory.grow (i32.const 0)))))`;

interface Guest {
  poke(v: number): void;
  peek(): bigint;
  grow(): void;
  grow0(): void;
  memory: WebAssembly.Memory;
}

async function made(): Promise<{ watch: InstanceWatch; guest: Guest; flags: WebAssembly.Global; table: HandleTable }> {
  const { bytes, report } = exportState(await wat(GUEST));
  expect(report.unresettable).toBeUndefined();
  const flags = new WebAssembly.Global({ value: 'i32', mutable: true }, 1);
  const imports = { host: { flags } };
  const watch = new InstanceWatch();
  const table: HandleTable = Object.assign([FLAG, 0], { _createdReps: new Set<number>() });
  const tables: HandleTable[] = [];
  tables[3] = table;
  watch.handleTables(tables);
  const core = new WebAssembly.Instance(new WebAssembly.Module(bytes), imports);
  watch.made(core, imports);
  return { watch, guest: core.exports as unknown as Guest, flags, table };
}

/** Claims no resource: any handle left keeps the instance from being put back. */
const NONE = () => false;
const NOTHING = () => undefined;

function stateOf(watch: InstanceWatch): InstanceState {
  const state = watch.capture();
  if (typeof state === 'string') throw new Error(state);
  return state;
}

describe('putting an instance back as it was made', () => {
  it('copies its memory back and sets its globals and the glue-made ones back', async () => {
    const { watch, guest, flags } = await made();
    const state = stateOf(watch);
    const before = guest.peek();
    expect(before).toBe(BigInt(Buffer.from('made').readUInt32LE()) + 7n);
    guest.poke(0x5ec2e7);
    expect(guest.peek()).not.toBe(before);
    expect(flags.value).toBe(0x5ec2e7);
    expect(state.restore(NONE, NOTHING)).toBe(true);
    expect(guest.peek()).toBe(before);
    expect(new DataView(guest.memory.buffer).getUint32(60000, true)).toBe(0);
    expect(flags.value).toBe(1);
    expect(state.bytes).toBe(65536);
  });

  it('empties the handle tables as jco makes them, once the guest dropped every handle', async () => {
    const { watch, guest, table } = await made();
    const state = stateOf(watch);
    const a = tableCreateOwn(table, 11);
    const b = tableCreateOwn(table, 12);
    guest.poke(9);
    // A handle left: state outside the memory, the instance must go; nothing was put back.
    let released = 0;
    expect(state.restore(NONE, () => released++)).toBe(false);
    expect(guest.peek()).toBe(18n);
    tableRemove(table, a);
    expect(state.restore(NONE, () => released++)).toBe(false);
    expect(released).toBe(0);
    tableRemove(table, b);
    expect(state.restore(NONE, () => released++)).toBe(true);
    expect(released).toBe(1);
    expect([...table]).toEqual([FLAG, 0]);
    expect(table._createdReps!.size).toBe(0);
    // The next handle is the first, as in a fresh instance.
    expect(tableCreateOwn(table, 13)).toBe(1);
  });

  it('lets handles the guest kept go with it, only when the host claims every one of their resources', async () => {
    const { watch, guest, table } = await made();
    const state = stateOf(watch);
    tableCreateOwn(table, 21);
    tableCreateOwn(table, 22);
    guest.poke(4);
    expect(state.restore((rep) => rep === 21, NOTHING)).toBe(false);
    const released: string[] = [];
    expect(state.restore((rep) => rep === 21 || rep === 22, () => released.push('scope'))).toBe(true);
    expect(released).toEqual(['scope']);
    expect([...table]).toEqual([FLAG, 0]);
    expect(guest.peek()).toBe(BigInt(Buffer.from('made').readUInt32LE()) + 7n);
  });

  it('refuses an instance whose memory grew (a memory cannot shrink)', async () => {
    const { watch, guest } = await made();
    const state = stateOf(watch);
    guest.poke(5);
    guest.grow();
    expect(state.restore(NONE, NOTHING)).toBe(false);
  });

  it('puts back an instance whose memory got a new buffer of the same size (a grow of 0 pages)', async () => {
    const { watch, guest } = await made();
    const state = stateOf(watch);
    const before = guest.peek();
    guest.poke(5);
    guest.grow0();
    expect(state.restore(NONE, NOTHING)).toBe(true);
    expect(guest.peek()).toBe(before);
    guest.poke(6);
    expect(state.restore(NONE, NOTHING)).toBe(true);
    expect(guest.peek()).toBe(before);
  });

  it('shares one copy between instances whose memories start alike, and each still gets its own bytes back', async () => {
    const copies = new MemoryCopies();
    const a = new Uint8Array([1, 2, 3]);
    const first = copies.of('0 m', a);
    expect(first).not.toBe(a);
    expect(copies.of('0 m', new Uint8Array([1, 2, 3]))).toBe(first);
    const other = copies.of('0 m', new Uint8Array([1, 2, 4]));
    expect([...other]).toEqual([1, 2, 4]);
    expect(copies.of('1 m', new Uint8Array([1, 2, 4]))).not.toBe(other);

    const x = await made();
    const y = await made();
    const sx = x.watch.capture(copies) as InstanceState;
    const sy = y.watch.capture(copies) as InstanceState;
    const before = x.guest.peek();
    x.guest.poke(1);
    y.guest.poke(2);
    expect(sx.restore(NONE, NOTHING)).toBe(true);
    expect(x.guest.peek()).toBe(before);
    // The shared copy was only read: the other instance still goes back to the same bytes.
    expect(sy.restore(NONE, NOTHING)).toBe(true);
    expect(y.guest.peek()).toBe(before);
  });

  it('refuses to capture what it cannot account for', async () => {
    const unpatched = new InstanceWatch();
    expect(unpatched.capture()).toMatch(/did not hand over its handle tables/);

    // A handle made while the instance was made: the copy of its memory would hold it.
    const early = await made();
    tableCreateOwn(early.table, 5);
    expect(early.watch.capture()).toMatch(/handle tables are not empty/);

    const foreign = new InstanceWatch();
    foreign.handleTables([]);
    const memory = new WebAssembly.Memory({ initial: 1 });
    const imports = { env: { memory } };
    const core = new WebAssembly.Instance(new WebAssembly.Module(exportState(await wat('(module (import "env" "memory" (memory 1)))')).bytes), imports);
    foreign.made(core, imports);
    expect(foreign.capture()).toMatch(/imports a memory none of them defines/);
  });
});

describe("readying jco's glue", () => {
  const dir = mkdtempSync(join(tmpdir(), 'tugboat-http-reset-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('hands the handle tables to our instantiateCore in a transpiled HTTP component, whose core modules export their state', async () => {
    const entry = await ensureTranspiled(join(import.meta.dirname, '..', '..', 'examples', 'components', 'out', 'http-bench.wasm'), join(dir, 'cache'));
    expect(entry.meta).toMatchObject({ world: 'http', reset: true });
    expect(entry.meta.resetRefused).toBeUndefined();
    const glue = readFileSync(join(entry.dir, COMPONENT_ENTRY), 'utf8');
    expect(glue).toMatch(/^\s*const HANDLE_TABLES= \[\]; instantiateCore\.tugboat\?\.handleTables\(HANDLE_TABLES\);$/m);
    const main = new WebAssembly.Module(readFileSync(join(entry.dir, 'component.core.wasm')));
    const names = WebAssembly.Module.exports(main).map((e) => e.name);
    expect(names.filter((n) => n.startsWith('tugboat:state:memory:'))).toHaveLength(1);
    // $heap, $heap-base and $served (the mutable ones).
    expect(names.filter((n) => n.startsWith('tugboat:state:global:'))).toHaveLength(3);
  }, 120_000);

  it('refuses glue laid out otherwise', () => {
    const sig = 'export function instantiate(getCoreModule, imports, instantiateCore = WebAssembly.instantiate) {';
    const good = `${sig}\nconst HANDLE_TABLES= [];\n  const handleTable0 = [T_FLAG, 0];\n  HANDLE_TABLES[0] = handleTable0;\n}`;
    expect(patchGlue(good)).toEqual({ glue: good.replace('const HANDLE_TABLES= [];', 'const HANDLE_TABLES= []; instantiateCore.tugboat?.handleTables(HANDLE_TABLES);') });
    expect(patchGlue(good.replace(sig, 'export function instantiate(a, b, c) {'))).toHaveProperty('why');
    expect(patchGlue(good.replace('const HANDLE_TABLES= [];', ''))).toHaveProperty('why');
    expect(patchGlue(good.replace('const HANDLE_TABLES= [];', 'const HANDLE_TABLES= [];\nconst HANDLE_TABLES= [];'))).toHaveProperty('why');
    // Indented as jco lays it out for some components.
    expect(patchGlue(good.replace('const HANDLE_TABLES= [];', '  const HANDLE_TABLES= [];'))).toHaveProperty('glue');
    // Before instantiate(): not where its parameter is.
    expect(patchGlue(`const HANDLE_TABLES= [];\n${good.replace('const HANDLE_TABLES= [];\n', '')}`)).toHaveProperty('why');
    // A table the list does not hold could keep a handle across a reset.
    expect(patchGlue(good.replace('  HANDLE_TABLES[0] = handleTable0;', ''))).toHaveProperty('why');
    expect(patchGlue(good.replace('HANDLE_TABLES[0] = handleTable0;', 'HANDLE_TABLES[0] = handleTable0;\n  const handleTable1 = [T_FLAG, 0];'))).toHaveProperty('why');
  });
});
