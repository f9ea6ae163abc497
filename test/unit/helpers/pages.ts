// What the tests of the two ways of telling a memory's written pages share
// (written-pages.test.ts: userfaultfd; image-pages.test.ts: the memory's
// image): the runs a watch lists, and a guest reset through InstanceWatch.
import { closeSync, openSync, readSync } from 'node:fs';
import { expect } from 'vitest';
import { FLAG, type HandleTable } from '../../../src/wasi-host/http/abi.js';
import { InstanceWatch, WATCHED_MIN_BYTES, type PageTracker, type WrittenRange } from '../../../src/wasi-host/http/reset.js';
import { exportState } from '../../../src/wasi-host/instrument/index.js';
import { wat } from './wasm.js';

const PAGE = 4096;

/** The runs of written pages a watched range lists, as page numbers [from, to). */
export function writtenPages(range: { written(run: (from: number, to: number) => void): boolean }): number[][] {
  const runs: number[][] = [];
  expect(range.written((from, to) => runs.push([from / PAGE, to / PAGE]))).toBe(true);
  return runs;
}

/** An InstanceWatch that saw one core instance of `text` made (its state exported as the transpile does), and that instance. */
export async function watchedInstance(text: string): Promise<{ watch: InstanceWatch; core: WebAssembly.Instance }> {
  const { bytes } = exportState(await wat(text));
  const watch = new InstanceWatch();
  watch.handleTables([Object.assign([FLAG, 0], { _createdReps: new Set<number>() }) as HandleTable]);
  const core = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
  watch.made(core, {});
  return { watch, core };
}

/** A guest with a memory of 17 wasm pages (over 1 MiB, so watched), a data segment, a store and a fill. */
const GUEST = `(module
  (memory (export "memory") 17)
  (data (i32.const 100) "made")
  (func (export "poke") (param $at i32) (param $v i32) (i32.store (local.get $at) (local.get $v)))
  (func (export "fill") (memory.fill (i32.const 0) (i32.const 0xab) (i32.const 1114112))))`;

/** Resets of GUEST, its pages told by `tracker`, put back what the guest and the host wrote, as the whole copy does. */
export async function expectResetsPutBack(tracker: PageTracker): Promise<void> {
  const { watch, core } = await watchedInstance(GUEST);
  const state = watch.capture(undefined, () => tracker);
  if (typeof state === 'string') throw new Error(state);
  const guest = core.exports as { poke(at: number, v: number): void; fill(): void; memory: WebAssembly.Memory };
  expect(guest.memory.buffer.byteLength).toBeGreaterThanOrEqual(WATCHED_MIN_BYTES);
  const fresh = new Uint8Array(guest.memory.buffer).slice();
  expect(new TextDecoder().decode(fresh.subarray(100, 104))).toBe('made');
  for (let round = 0; round < 3; round++) {
    guest.poke(100, 0x5ec2e7);
    guest.poke(17 * 65536 - 4, round + 1);
    new Uint8Array(guest.memory.buffer)[500_000] = 9;
    expect(state.restore(() => false, () => undefined)).toBe(true);
    expect(Buffer.compare(new Uint8Array(guest.memory.buffer), fresh)).toBe(0);
  }
  guest.fill();
  expect(state.restore(() => false, () => undefined)).toBe(true);
  expect(Buffer.compare(new Uint8Array(guest.memory.buffer), fresh)).toBe(0);
}

/** What watches a memory: `view`, which holds `saved` byte for byte now. */
type Watch = (view: Uint8Array, saved: Uint8Array) => WrittenRange & { written(run: (from: number, to: number) => void): boolean };

/** A watch of 4 wasm pages lists the pages then written by JavaScript and by the kernel (a read(2) into the memory), and no other. */
export function expectWritesListed(watch: Watch): void {
  const view = new Uint8Array(new WebAssembly.Memory({ initial: 4 }).buffer);
  for (let i = 0; i < view.length; i += 1009) view[i] = (i >> 10) & 255;
  const saved = view.slice();
  const range = watch(view, saved);
  expect(range).toBeDefined();
  expect(Buffer.compare(view, saved)).toBe(0);
  expect(writtenPages(range)).toEqual([]);
  view[3 * PAGE + 1] = 1;
  view[4 * PAGE] = 1;
  view[60 * PAGE - 1] = 1;
  const fd = openSync('/dev/urandom', 'r');
  try {
    expect(readSync(fd, view, 20 * PAGE + 100, 10, null)).toBe(10);
  } finally {
    closeSync(fd);
  }
  expect(writtenPages(range)).toEqual([
    [3, 5],
    [20, 21],
    [59, 60],
  ]);
}

/** `rounds` resets of a mix of the same and other pages, now and then many (a regrowth), each put back. */
export function expectMixedRoundsPutBack(watch: Watch, rounds: number): void {
  const view = new Uint8Array(new WebAssembly.Memory({ initial: 64 }).buffer);
  for (let i = 0; i < view.length; i += 4093) view[i] = (i >> 12) & 255;
  const saved = view.slice();
  const range = watch(view, saved);
  // A fixed seed: the same rounds every run.
  let seed = 12345;
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const hot = Array.from({ length: 24 }, () => random(view.length / PAGE));
  for (let round = 0; round < rounds; round++) {
    for (const p of hot) view[p * PAGE + random(PAGE)] = 1 + random(255);
    // Some rounds also write elsewhere, now and then many pages (a regrowth).
    const others = round % 17 === 0 ? 200 : random(4);
    for (let i = 0; i < others; i++) view[random(view.length)] = 1 + random(255);
    expect(range.copyBack(view, saved)).toBe(true);
    expect(Buffer.compare(view, saved), `round ${round}`).toBe(0);
  }
}
