// bench/idle-pss: memory of one idle Wasm container, as the proportional set
// size (PSS) of every process in its cgroup (the container's init and what
// it started), next to a busybox `sleep` container as the baseline. Both run
// through `tugboat run` and are measured once they sit idle. BENCH_OTHER=DIR
// adds the Wasm container through another checkout's bin/tugboat.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, TUGBOAT, workspace } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 3);
const { dir } = workspace('idle-pss');
const root = join(dir, 'store');

/** PSS and USS (private pages only: unlike PSS, independent of how many other Node processes share the binary). */
function memKiB(pid) {
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const f = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)?.[1] ?? 0);
    return { pss: f('Pss'), uss: f('Private_Clean') + f('Private_Dirty') };
  } catch {
    return { pss: 0, uss: 0 };
  }
}

/** The cgroup.procs file of a `tugboat run` container (cgroup v1 memory controller or v2). */
function procsFile(name) {
  for (const base of ['/sys/fs/cgroup/memory', '/sys/fs/cgroup']) {
    const f = join(base, 'tugboat', name, 'cgroup.procs');
    if (existsSync(f)) return f;
  }
  return undefined;
}

async function idlePss(image, args, i, bin = TUGBOAT, store = root) {
  const name = `pss-${process.pid}-${i}`;
  const child = spawn(bin, ['--root', store, 'run', '--rm', '--name', name, image, ...args], { stdio: 'ignore' });
  const ended = new Promise((r) => child.once('exit', r));
  let file;
  for (let t = 0; t < 100 && !(file = procsFile(name)); t++) await new Promise((r) => setTimeout(r, 100));
  if (!file) throw new Error(`container ${name} did not start`);
  await new Promise((r) => setTimeout(r, 1500)); // idle
  const pids = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  const mem = pids.map(memKiB);
  const kib = mem.reduce((s, m) => s + m.pss, 0);
  const uss = mem.reduce((s, m) => s + m.uss, 0);
  child.kill('SIGTERM');
  await ended;
  return { kib, uss, procs: pids.length };
}

const cases = {
  'busybox sleep (baseline)': [`oci:${join(FIXTURES, 'busybox')}:latest`, ['sleep', '60']],
  'wasm sleep (exitcode.wasm)': [`oci:${join(FIXTURES, 'wasm')}:exitcode`, ['sleep', '60']],
};
const other = process.env.BENCH_OTHER;
if (other) cases[`wasm sleep via ${other}`] = [cases['wasm sleep (exitcode.wasm)'][0], ['sleep', '60'], join(other, 'bin', 'tugboat'), join(dir, 'store-other')];
const out = {};
for (let i = 0; i < runs; i++) {
  for (const [label, [image, args, bin, store]] of Object.entries(cases)) (out[label] ??= []).push(await idlePss(image, args, `${i}-${label.length}`, bin, store));
}
console.log(`\nidle container PSS (every process in its cgroup), median of ${runs}`);
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = med(out['busybox sleep (baseline)'].map((r) => r.kib));
for (const [label, rs] of Object.entries(out)) {
  const kib = med(rs.map((r) => r.kib));
  const uss = med(rs.map((r) => r.uss));
  console.log(`  ${label.padEnd(44)} PSS ${(kib / 1024).toFixed(2).padStart(7)} MiB (${(kib / base).toFixed(2)}x), private ${(uss / 1024).toFixed(2).padStart(6)} MiB, ${rs[0].procs} processes`);
}
