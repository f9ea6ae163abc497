// bench/http-reset: what a fresh instance of an HTTP component costs made
// anew (jco's instantiate and its core instances: the baseline) against put
// back as it was made (src/wasi-host/http/reset.ts), in this process, for
// the hand-written handler and the componentize-js one. The instance is
// dirtied between two resets the way a request dirties it: memory written
// all over (the worst case for the copy) and its globals changed.
//
// BENCH_RUNS (default 200 for http-bench, a tenth of it for componentize-js).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InstanceWatch, type InstanceState } from '../src/wasi-host/http/reset.js';
import { componentMaker } from '../src/wasi-host/http/source.js';
import { REPO } from '../test/unit/helpers/wasm.js';
import { median } from './lib.mjs';

// The transpile cache from the build: its transpiler runs as a child script of dist/, which a bundle has no copy of.
const { COMPONENT_ENTRY, ensureTranspiled } = (await import(pathToFileURL(join(REPO, 'dist', 'linux-runtime', 'component-cache.js')).href)) as typeof import('../src/linux-runtime/component-cache.js');

const runs = Number(process.env.BENCH_RUNS ?? 200);
const work = mkdtempSync(join(tmpdir(), 'tugboat-bench-reset-'));

async function measure(file: string, n: number): Promise<void> {
  const entry = await ensureTranspiled(join(REPO, 'examples', 'components', 'out', file), join(work, 'cache'));
  if (!entry.meta.reset) throw new Error(`${file}: not resettable: ${entry.meta.resetRefused}`);
  const config = { args: [`/${file}`], env: [], component: { dir: entry.dir, entry: COMPONENT_ENTRY, world: 'http' as const } };
  const maker = await componentMaker({ kind: 'container', config });
  const imports = maker.imports({});
  const made: number[] = [];
  let watch = new InstanceWatch();
  for (let i = 0; i < n; i++) {
    watch = new InstanceWatch();
    const t = performance.now();
    maker.instantiate(imports, watch);
    made.push(performance.now() - t);
  }
  const state = watch.capture() as InstanceState | string;
  if (typeof state === 'string') throw new Error(`${file}: ${state}`);
  const memories = watch.cores.flatMap((c) => Object.values(c.exports).filter((v): v is WebAssembly.Memory => v instanceof WebAssembly.Memory));
  const reset: number[] = [];
  for (let i = 0; i < n * 10; i++) {
    for (const m of memories) new Uint8Array(m.buffer).fill(i & 0xff);
    const t = performance.now();
    if (!state.restore(() => false, () => undefined)) throw new Error(`${file}: the instance could not be put back`);
    reset.push(performance.now() - t);
  }
  const a = median(made);
  const b = median(reset);
  console.log(
    `  ${file.padEnd(18)} memory ${(state.bytes / 1024).toFixed(0).padStart(6)} KiB   made anew ${(a * 1000).toFixed(0).padStart(7)} µs   put back ${(b * 1000).toFixed(1).padStart(7)} µs   ${(a / b).toFixed(1)}x faster (medians of ${n} and ${n * 10})`,
  );
}

try {
  console.log('http-reset: a fresh instance, made anew (baseline) against put back as made, in one process');
  await measure('http-bench.wasm', runs);
  await measure('http-hello.wasm', Math.max(5, Math.round(runs / 10)));
} finally {
  rmSync(work, { recursive: true, force: true });
}
