// capMemory: a guest's linear memory is capped by lowering the module's
// memory maximum before compiling, so a grow past the cap fails in the guest
// (memory.grow returns -1; Rust's allocator then aborts: its OOM).
import { describe, expect, it } from 'vitest';
import { ConfigError, MemoryCapError, exitCodeFor } from '../../src/errors.js';
import { capMemory, GROW_IMPORT, instrument, START_EXPORT } from '../../src/wasi-host/instrument/index.js';
import { dependencyModules, runWasi, rustExamples, wat } from './helpers/wasm.js';

const PAGE = 65536;

const growable = (memory: string) => `(module ${memory}
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size)))`;

interface Growable {
  grow(pages: number): number;
  size(): number;
}

function instantiate(bytes: Uint8Array, imports: WebAssembly.Imports = {}): Growable {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports as unknown as Growable;
}

describe('capMemory', () => {
  it('gives a memory without a maximum one; growing past it fails', async () => {
    const { bytes, report } = instrument(await wat(growable('(memory 1)')), { maxMemoryPages: 4 });
    expect(report.memories).toEqual([{ index: 0, imported: false, minPages: 1, maxPagesBefore: undefined, maxPagesAfter: 4 }]);
    const m = instantiate(bytes);
    expect(m.grow(3)).toBe(1);
    expect(m.size()).toBe(4);
    expect(m.grow(1)).toBe(-1);
    expect(m.size()).toBe(4);
  });

  it('lowers a larger maximum and keeps a smaller one', async () => {
    const lowered = instantiate(capMemory(await wat(growable('(memory 1 100)')), 2));
    expect(lowered.grow(1)).toBe(1);
    expect(lowered.grow(1)).toBe(-1);
    const small = await wat(growable('(memory 1 2)'));
    expect(Buffer.from(capMemory(small, 4)).equals(Buffer.from(small))).toBe(true);
  });

  it('accepts a minimum equal to the cap and refuses one above it (the guest is OOM: 137)', async () => {
    expect(instantiate(capMemory(await wat(growable('(memory 3)')), 3)).grow(1)).toBe(-1);
    const above = await wat(growable('(memory 5)'));
    expect(() => capMemory(above, 4)).toThrow(MemoryCapError);
    expect(() => capMemory(above, 4)).toThrow('the module needs 5 pages (64 KiB each) of memory at start, above the limit of 4 pages');
    try {
      capMemory(above, 4);
    } catch (err) {
      expect(exitCodeFor(err)).toBe(137);
    }
  });

  it('caps an imported memory: the host must provide one within the cap', async () => {
    const bytes = capMemory(await wat(growable('(import "env" "memory" (memory 1))')), 4);
    const provide = (maximum?: number) => instantiate(bytes, { env: { memory: new WebAssembly.Memory({ initial: 1, ...(maximum ? { maximum } : {}) }) } });
    expect(() => provide(100)).toThrow(WebAssembly.LinkError);
    expect(() => provide()).toThrow(WebAssembly.LinkError);
    const m = provide(4);
    expect(m.grow(3)).toBe(1);
    expect(m.grow(1)).toBe(-1);
  });

  it('caps shared and 64-bit memories, and every memory of a multi-memory module', async () => {
    const shared = instantiate(capMemory(await wat(growable('(memory 1 100 shared)')), 2));
    expect(shared.grow(1)).toBe(1);
    expect(shared.grow(1)).toBe(-1);

    const m64 = await wat(`(module (memory i64 1) (func (export "grow") (param i64) (result i64) (memory.grow (local.get 0))))`);
    const g64 = new WebAssembly.Instance(new WebAssembly.Module(capMemory(m64, 2))).exports as unknown as { grow(p: bigint): bigint };
    expect(g64.grow(1n)).toBe(1n);
    expect(g64.grow(1n)).toBe(-1n);

    const multi = await wat(`(module (import "env" "m" (memory 1 50)) (memory $own 2)
      (func (export "grow") (param i32) (result i32) (memory.grow $own (local.get 0))))`);
    const { bytes, report } = instrument(multi, { maxMemoryPages: 3 });
    expect(report.memories.map((m) => [m.index, m.imported, m.maxPagesAfter])).toEqual([[0, true, 3], [1, false, 3]]);
    const own = instantiate(bytes, { env: { m: new WebAssembly.Memory({ initial: 1, maximum: 3 }) } });
    expect(own.grow(1)).toBe(2);
    expect(own.grow(1)).toBe(-1);
  });

  it('never lets a 32-bit maximum exceed 4 GiB', async () => {
    const { report } = instrument(await wat(growable('(memory 1)')), { maxMemoryPages: 1 << 20 });
    expect(report.memories[0]!.maxPagesAfter).toBe(65536);
  });

  it('leaves a module without memory, and everything but the limits, as it was', async () => {
    const none = await wat('(module (func (export "f")))');
    expect(Buffer.from(capMemory(none, 1)).equals(Buffer.from(none))).toBe(true);
    // a 10 MB module: only the memory section's limits change, nothing is decoded past it
    const big = dependencyModules().sort((a, b) => b.bytes.length - a.bytes.length)[0]!.bytes;
    const out = capMemory(big, 1000);
    expect(Math.abs(out.length - big.length)).toBeLessThan(8);
    expect(Buffer.from(out.subarray(out.length - 4096)).equals(Buffer.from(big.subarray(big.length - 4096)))).toBe(true);
    expect(WebAssembly.validate(out)).toBe(true);
  });

  it('refuses a cap that is not a whole number of pages', async () => {
    const bytes = await wat(growable('(memory 1)'));
    for (const bad of [-1, 1.5, Number.NaN]) expect(() => capMemory(bytes, bad)).toThrow(ConfigError);
  });

  it("makes a Rust guest's allocation past the cap its OOM, and lets it run below", async () => {
    const alloc = rustExamples().find((m) => m.name === 'exitcode.wasm')!.bytes;
    const capped = capMemory(alloc, (32 << 20) / PAGE); // 32 MiB
    const below = await runWasi(capped, ['exitcode', 'alloc', '8']);
    expect(below).toMatchObject({ code: 0, stdout: 'allocated 8 MiB\n' });
    const above = await runWasi(capped, ['exitcode', 'alloc', '64']);
    expect(above.trap).toBe('unreachable');
    expect(above.stderr).toMatch(/memory allocation of \d+ bytes failed/);
  });
});

describe('grow hook', () => {
  /** A hook that grows `memory()` itself while the total stays within `limit` pages; counts refusals. */
  function hook(memory: () => WebAssembly.Memory, limit: number) {
    const calls: number[] = [];
    let refused = 0;
    const grow = (delta: number) => {
      calls.push(delta);
      const m = memory();
      const pages = m.buffer.byteLength / PAGE;
      if (pages + delta > limit) {
        refused++;
        return -1;
      }
      return m.grow(delta);
    };
    return { grow, calls, refused: () => refused };
  }

  it('turns every memory.grow of memory 0 into a call of the host, which decides', async () => {
    const src = await wat(`(module (memory (export "memory") 1)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
      (func (export "size") (result i32) (memory.size)))`);
    const { bytes, report } = instrument(src, { growHook: true });
    expect(report.growHook).toEqual({ sites: 1, importIndex: 0 });
    let mem: WebAssembly.Memory | undefined;
    const h = hook(() => mem!, 3);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { [GROW_IMPORT.module]: { [GROW_IMPORT.name]: h.grow } });
    mem = inst.exports.memory as WebAssembly.Memory;
    const m = inst.exports as unknown as Growable;
    expect(m.grow(1)).toBe(1);
    expect(m.grow(2)).toBe(-1);
    expect(m.grow(1)).toBe(2);
    expect(m.size()).toBe(3);
    expect(h.calls).toEqual([1, 2, 1]);
    expect(h.refused()).toBe(1);
  });

  it('with yield points: both imports are added, functions move up by two, the start function is exported', async () => {
    const src = await wat(`(module (import "env" "f" (func $f)) (memory (export "memory") 1) (global $g (mut i32) (i32.const 0))
      (func $start (global.set $g (memory.grow (i32.const 1))))
      (func $helper (result i32) (global.get $g))
      (func (export "run") (result i32) (loop $l (br_if $l (i32.eqz (i32.const 1)))) (call $f) (call $helper))
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
      (start $start))`);
    const { bytes, report } = instrument(src, { yieldPoints: { interval: 2 }, growHook: true });
    expect(report.yieldPoints!.importIndex).toBe(1);
    expect(report.growHook).toEqual({ sites: 2, importIndex: 2 });
    expect(report.yieldPoints!.startExport).toBe(START_EXPORT);
    let mem: WebAssembly.Memory | undefined;
    const h = hook(() => mem!, 4);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { f: () => undefined },
      tugboat: { yield: new WebAssembly.Suspending(() => undefined), memory_grow: h.grow },
    });
    mem = inst.exports.memory as WebAssembly.Memory;
    await WebAssembly.promising(inst.exports[START_EXPORT] as () => void)();
    expect(await WebAssembly.promising(inst.exports.run as () => number)()).toBe(1); // the old size the start function's grow returned
    expect((inst.exports.grow as (n: number) => number)(5)).toBe(-1);
    expect(h.calls).toEqual([1, 5]);
  });

  it('leaves memory.grow of other memories and of 64-bit memories alone', async () => {
    const m64 = await wat(`(module (memory i64 1) (func (export "grow") (param i64) (result i64) (memory.grow (local.get 0))))`);
    expect(instrument(m64, { growHook: true }).report.growHook!.sites).toBe(0);
    const multi = await wat(`(module (memory 1) (memory $b 1) (func (export "grow") (param i32) (result i32) (memory.grow $b (local.get 0))))`);
    const { bytes, report } = instrument(multi, { growHook: true });
    expect(report.growHook!.sites).toBe(0);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { tugboat: { memory_grow: () => -1 } });
    expect((inst.exports.grow as (n: number) => number)(1)).toBe(1);
  });

  it("makes a Rust guest's allocations go through the host, which can refuse them", async () => {
    const alloc = rustExamples().find((m) => m.name === 'exitcode.wasm')!.bytes;
    const { bytes, report } = instrument(alloc, { yieldPoints: { interval: 10_000 }, growHook: true });
    expect(report.growHook!.sites).toBeGreaterThan(0);
    expect(WebAssembly.validate(bytes)).toBe(true);
    for (const { name, bytes: b } of rustExamples()) expect(WebAssembly.validate(instrument(b, { growHook: true }).bytes), name).toBe(true);
  });
});
