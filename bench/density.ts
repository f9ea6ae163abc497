// bench/density: memory of N idle containers, counted as the proportional set
// size (PSS, /proc/<pid>/smaps_rollup) of every process that serves them:
// shims and their descendants (runc inits, WASI hosts). Wasm containers
// (sleeping guest) via containerd-shim-tugboat-v1 vs busybox `sleep` via
// containerd-shim-runc-v2.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startContainerd, type ContainerdHandle } from '../test/integration/daemons/containerd.js';

const REPO = join(import.meta.dirname, '..', '..');
const FIXTURES = join(REPO, 'test', 'fixtures', 'out');
const N = Number(process.env.BENCH_N ?? 20);

function children(): Map<number, number[]> {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone
    }
  }
  return kids;
}

function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
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

function treePss(roots: number[]): { pss: number; procs: number } {
  const kids = children();
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const p = stack.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    stack.push(...(kids.get(p) ?? []));
  }
  let pss = 0;
  for (const p of seen) pss += pssKiB(p);
  return { pss, procs: seen.size };
}

async function measure(c: ContainerdHandle, runtime: string, image: string, args: string[], shimName: string, ns: string, extra: string[] = []) {
  for (let i = 0; i < N; i++) {
    const r = await c.ctr(['-n', ns, 'run', '-d', ...extra, '--runtime', runtime, image, `${ns}-${i}`, ...args]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  await new Promise((r) => setTimeout(r, 2000)); // let every guest reach its idle state
  const result = treePss(shimPids(c, shimName));
  for (let i = 0; i < N; i++) {
    await c.ctr(['-n', ns, 'task', 'kill', '-s', 'SIGKILL', `${ns}-${i}`]);
  }
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < N; i++) {
    await c.ctr(['-n', ns, 'task', 'delete', `${ns}-${i}`]);
    await c.ctr(['-n', ns, 'containers', 'delete', `${ns}-${i}`]);
  }
  return result;
}

const c = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
try {
  for (const ns of ['runc', 'wasm', 'wasmgroup']) {
    for (const f of ['busybox.docker.tar', 'wasm-tools.docker.tar']) await c.ctr(['-n', ns, 'images', 'import', join(FIXTURES, f)]);
  }
  const runc = await measure(c, 'io.containerd.runc.v2', 'tugboat.local/busybox:latest', ['sleep', '3600'], 'containerd-shim-runc-v2', 'runc');
  const wasm = await measure(c, 'io.containerd.tugboat.v1', 'tugboat.local/wasm-tools:latest', ['/exitcode.wasm', 'sleep', '3600'], 'shim.mjs', 'wasm');
  // The same, all served by one shim (the runc shim's grouping annotation, which CRI sets per pod).
  const grouped = await measure(c, 'io.containerd.tugboat.v1', 'tugboat.local/wasm-tools:latest', ['/exitcode.wasm', 'sleep', '3600'], 'shim.mjs', 'wasmgroup', ['--annotation', 'io.containerd.runc.v2.group=density']);
  console.log(`\ndensity: ${N} idle containers, PSS of shims and everything below them`);
  console.log(`  busybox sleep via runc.v2 (baseline)   ${(runc.pss / 1024).toFixed(1).padStart(8)} MiB in ${runc.procs} processes   1.00x`);
  console.log(`  wasm sleep via tugboat.v1              ${(wasm.pss / 1024).toFixed(1).padStart(8)} MiB in ${wasm.procs} processes   ${(wasm.pss / runc.pss).toFixed(2)}x`);
  console.log(`  wasm sleep via tugboat.v1, one group   ${(grouped.pss / 1024).toFixed(1).padStart(8)} MiB in ${grouped.procs} processes   ${(grouped.pss / runc.pss).toFixed(2)}x`);
} finally {
  await c.stop();
}
