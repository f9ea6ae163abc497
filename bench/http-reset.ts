// bench/http-reset: what a fresh instance of an HTTP component costs made
// anew (jco's instantiate and its core instances: the baseline) against put
// back as it was made (src/wasi-host/http/reset.ts), in this process, for
// the hand-written handler and the componentize-js one.
//
// Between two resets the instance is dirtied: its globals changed, and its
// memory written either all over (the worst case) or the way a request
// writes it (one write in every 32nd 4 KiB page, the same pages every time:
// a componentize-js request writes the same ~76 of the 2,576 pages of its
// 10 MiB, in ~53 runs). The time of a reset counts
// those writes too: where the kernel tells which pages were written
// (written-pages.ts), a first write to a page since it was last protected
// costs a fault, the price of copying back that page only (pages copied back
// are protected again every PROTECT_EVERY resets). Memories under 1 MiB are
// always copied back whole.
//
// The ways of telling the written pages, each on an instance of its own:
// userfaultfd on the instance's own memory; userfaultfd on the memory mapped
// on its image (what a handler thread uses where it can: page-trackers.ts);
// the image alone, with PAGEMAP_SCAN, and with every pagemap entry read
// (what a kernel before 6.7, or a seccomp filter without userfaultfd, gets).
//
// BENCH_RUNS (default 200 for http-bench, a tenth of it for componentize-js).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InstanceWatch, WATCHED_MIN_BYTES, type InstanceState } from '../src/wasi-host/http/reset.js';
import { componentMaker } from '../src/wasi-host/http/source.js';
import { PageWatch } from '../src/wasi-host/http/written-pages.js';
import { ImageWatch } from '../src/wasi-host/http/image-pages.js';
import { openPageTrackers } from '../src/wasi-host/http/page-trackers.js';
import type { PageTracker } from '../src/wasi-host/http/reset.js';
import { REPO } from '../test/unit/helpers/wasm.js';
import { median } from './lib.mjs';

// The transpile cache from the build: its transpiler runs as a child script of dist/, which a bundle has no copy of.
const { COMPONENT_ENTRY, ensureTranspiled } = (await import(pathToFileURL(join(REPO, 'dist', 'linux-runtime', 'component-cache.js')).href)) as typeof import('../src/linux-runtime/component-cache.js');

const runs = Number(process.env.BENCH_RUNS ?? 200);
const work = mkdtempSync(join(tmpdir(), 'tugboat-bench-reset-'));
const uffd = PageWatch.open();
const both = openPageTrackers({ filterLetsItRun: true });
const scanned = ImageWatch.open();
const read = ImageWatch.open({ readEntries: true });
/** Each way, or why it is not here. */
const trackers: [string, PageTracker | undefined | string][] = [
  ['whole memory', undefined],
  ['userfaultfd', typeof uffd === 'string' ? uffd : { watch: (view) => uffd.watch(view) }],
  ['userfaultfd, image', typeof both === 'string' ? both : both.how === 'written pages: userfaultfd, images' ? both : both.how],
  ['image, PAGEMAP_SCAN', typeof scanned === 'string' ? scanned : scanned.how === 'PAGEMAP_SCAN' ? scanned : 'the kernel has no PAGEMAP_SCAN'],
  ['image, pagemap entries', read],
];

type Dirt = (view: Uint8Array, i: number) => void;
const ALL: Dirt = (view, i) => view.fill(i & 0xff);
const REQUEST: Dirt = (view, i) => {
  for (let at = 0; at < view.length; at += 32 * 4096) view[at] = i & 0xff;
};

async function measure(file: string, n: number): Promise<void> {
  const entry = await ensureTranspiled(join(REPO, 'examples', 'components', 'out', file), join(work, 'cache'));
  if (!entry.meta.reset) throw new Error(`${file}: not resettable: ${entry.meta.resetRefused}`);
  const config = { args: [`/${file}`], env: [], component: { dir: entry.dir, entry: COMPONENT_ENTRY, world: 'http' as const } };
  const maker = await componentMaker({ kind: 'container', config });
  const imports = maker.imports({});
  const made: number[] = [];
  const watches: InstanceWatch[] = [];
  for (let i = 0; i < n; i++) {
    const watch = new InstanceWatch();
    const t = performance.now();
    maker.instantiate(imports, watch);
    made.push(performance.now() - t);
    watches.push(watch);
  }
  const cell = (ms: number) => `${(ms * 1000).toFixed(1).padStart(7)} µs`;
  const a = median(made);
  console.log(`  ${file}: made anew ${cell(a)} (median of ${n})`);
  for (const [i, [mode, tracker]] of trackers.entries()) {
    if (typeof tracker === 'string') {
      console.log(`    put back, ${mode}: not here (${tracker})`);
      continue;
    }
    const watch = watches.at(-1 - i)!;
    const state = watch.capture(undefined, tracker && (() => tracker)) as InstanceState | string;
    if (typeof state === 'string') throw new Error(`${file}: ${state}`);
    if (tracker && state.bytes < WATCHED_MIN_BYTES) {
      console.log(`    put back, ${mode}: not for a memory under ${WATCHED_MIN_BYTES >> 20} MiB (copied whole)`);
      continue;
    }
    const memories = watch.cores.flatMap((c) => Object.values(c.exports).filter((v): v is WebAssembly.Memory => v instanceof WebAssembly.Memory));
    const cells: string[] = [];
    for (const [what, dirt] of [['a request\'s writes', REQUEST], ['memory written all over', ALL]] as const) {
      const reset: number[] = [];
      for (let i = 0; i < n * 10; i++) {
        const t = performance.now();
        for (const m of memories) dirt(new Uint8Array(m.buffer), i);
        if (!state.restore(() => false, () => undefined)) throw new Error(`${file}: the instance could not be put back`);
        reset.push(performance.now() - t);
      }
      const b = median(reset);
      cells.push(`${what}: ${cell(b)} (${(a / b).toFixed(1)}x faster)`);
    }
    console.log(`    put back, ${mode.padEnd(22)} (memory ${(state.bytes / 1024).toFixed(0)} KiB), writes and reset: ${cells.join('; ')}`);
  }
}

try {
  console.log('http-reset: a fresh instance, made anew (baseline) against put back as made, in one process');
  await measure('http-bench.wasm', runs);
  await measure('http-hello.wasm', Math.max(trackers.length, Math.round(runs / 10)));
} finally {
  for (const t of [uffd, both, scanned, read]) if (typeof t !== 'string') t.close();
  rmSync(work, { recursive: true, force: true });
}
