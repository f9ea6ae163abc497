// bench/density: memory of N idle containers, counted as the proportional set
// size (PSS, /proc/<pid>/smaps_rollup) of every process that serves them:
// shims and their descendants (runc inits, WASI hosts, pod hosts). Wasm
// containers (sleeping guest) via containerd-shim-tugboat-v1 vs busybox
// `sleep` via containerd-shim-runc-v2 (BENCH_N of each, default 20): at
// `container` level ungrouped and in one group (before issue 9), and at
// `pod` level in one group with each of BENCH_POD_SIZES (default
// 20,200,1000) containers.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startContainerd, type ContainerdHandle } from '../test/integration/daemons/containerd.js';
import { treePss } from './lib.mjs';

const REPO = join(import.meta.dirname, '..', '..');
const FIXTURES = join(REPO, 'test', 'fixtures', 'out');
const N = Number(process.env.BENCH_N ?? 20);
const POD_SIZES = (process.env.BENCH_POD_SIZES ?? '20,200,1000').split(',').filter(Boolean).map(Number);
const WIDTH = 10;

async function inBatches<T>(items: T[], fn: (x: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += WIDTH) await Promise.all(items.slice(i, i + WIDTH).map(fn));
}

function shimPids(c: ContainerdHandle, name: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.includes(name)) && argv.includes(c.address)) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

async function measure(c: ContainerdHandle, n: number, runtime: string, image: string, args: string[], shimName: string, ns: string, extra: string[] = []) {
  const ids = Array.from({ length: n }, (_, i) => `${ns}-${i}`);
  const ctr = async (a: string[]) => {
    const r = await c.ctr(['-n', ns, ...a], { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`ctr ${a.join(' ')}: ${r.stderr}`);
  };
  const t0 = process.hrtime.bigint();
  await inBatches(ids, (id) => ctr(['run', '-d', ...extra, '--runtime', runtime, image, id, ...args]));
  const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
  await new Promise((r) => setTimeout(r, 3000)); // let every guest reach its idle state
  const result = { ...treePss(shimPids(c, shimName)), startMs };
  await inBatches(ids, (id) => c.ctr(['-n', ns, 'tasks', 'delete', '--force', id], { timeoutMs: 300_000 }));
  await inBatches(ids, (id) => c.ctr(['-n', ns, 'containers', 'delete', id], { timeoutMs: 300_000 }));
  return result;
}

const c = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
try {
  const pods = POD_SIZES.map((n) => `pod${n}`);
  for (const ns of ['runc', 'wasm', 'wasmgroup', ...pods]) {
    for (const f of ['busybox.docker.tar', 'wasm-tools.docker.tar']) await c.ctr(['-n', ns, 'images', 'import', join(FIXTURES, f)]);
  }
  const sleeper = ['/exitcode.wasm', 'sleep', '3600'];
  const tools = 'tugboat.local/wasm-tools:latest';
  const rows: Array<[string, number, { pss: number; procs: number; startMs: number }]> = [];
  rows.push(['busybox sleep via runc.v2 (baseline)', N, await measure(c, N, 'io.containerd.runc.v2', 'tugboat.local/busybox:latest', ['sleep', '3600'], 'containerd-shim-runc-v2', 'runc')]);
  const level = (l: string) => ['--annotation', `io.tugboat.isolation=${l}`];
  const group = (g: string) => ['--annotation', `io.containerd.runc.v2.group=${g}`];
  rows.push(['wasm, container level, ungrouped', N, await measure(c, N, 'io.containerd.tugboat.v1', tools, sleeper, 'shim.mjs', 'wasm', level('container'))]);
  // All served by one shim (the runc shim's grouping annotation, which CRI sets per pod), each its own host.
  rows.push(['wasm, container level, one group', N, await measure(c, N, 'io.containerd.tugboat.v1', tools, sleeper, 'shim.mjs', 'wasmgroup', [...group('density'), ...level('container')])]);
  // One group at pod level (its default): every guest in one pod host.
  for (const n of POD_SIZES) rows.push([`wasm, pod level, one pod`, n, await measure(c, n, 'io.containerd.tugboat.v1', tools, sleeper, 'shim.mjs', `pod${n}`, group(`pod${n}`))]);
  const base = rows[0]![2].pss / rows[0]![1];
  console.log('\ndensity: idle containers, PSS of shims and everything below them, per container');
  for (const [name, n, r] of rows) {
    const per = r.pss / n;
    console.log(
      `  ${name.padEnd(38)} ${String(n).padStart(5)}  ${(r.pss / 1024).toFixed(1).padStart(8)} MiB in ${String(r.procs).padStart(4)} processes  ${(per / 1024).toFixed(2).padStart(7)} MiB each  ${(per / base).toFixed(2).padStart(6)}x  (started in ${(r.startMs / 1000).toFixed(1)} s)`,
    );
  }
} finally {
  await c.stop();
}
