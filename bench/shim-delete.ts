// bench/shim-delete: what containerd does when a group's shim is SIGKILLed,
// `containerd-shim-tugboat-v1 delete` for every task of it at once (each
// within containerd's 5 s cleanup timeout), with Node (TUGBOAT_SHIM_FAST=off,
// the baseline) and from sh. Each task as the dead shim leaves it: a running
// busybox under real runc (private root), its rootfs a mount, a derived
// bundle, the group's socket with nobody listening. And the common case, a
// task the daemon already deleted (nothing left to clean). Interleaved,
// medians of the wall time of all N deletes, ratios to Node.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '..', '..');
const SHIM = join(REPO, 'bin', 'containerd-shim-tugboat-v1');
const N = Number(process.env.BENCH_TASKS ?? 50);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const NS = 'bench';
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const work = mkdtempSync(join(tmpdir(), 'tugboat-bench-shim-delete-'));
const root = join(work, 'runc');
// The group's socket where shims keep theirs (sh reads no other), dead: a
// listener SIGKILLed before it could unlink it.
const sock = join('/run/containerd/s', createHash('sha256').update(`bench-shim-delete/${process.pid}`).digest('hex'));
function deadSocket(): void {
  mkdirSync('/run/containerd/s', { recursive: true, mode: 0o700 });
  try {
    execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`], { stdio: 'ignore' });
  } catch {
    // killed, as meant
  }
}
let seq = 0;

/** N tasks of a killed shim (`dirty`) or of one that deleted them cleanly. */
function tasks(dirty: boolean): { dir: string; id: string }[] {
  const out: { dir: string; id: string }[] = [];
  rmSync(sock, { force: true });
  if (dirty) deadSocket();
  for (let i = 0; i < N; i++) {
    const id = `t${seq++}`;
    const dir = join(work, id);
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs, { recursive: true });
    writeFileSync(join(dir, 'options.json'), JSON.stringify({ root }));
    writeFileSync(join(dir, 'address'), `unix://${sock}`);
    if (dirty) {
      execFileSync('mount', ['-t', 'tmpfs', 'rootfs', rootfs]);
      cpSync('/bin/busybox', join(rootfs, 'busybox'));
      execFileSync('runc', ['spec'], { cwd: dir });
      const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      spec.process.terminal = false;
      spec.process.args = ['/busybox', 'sleep', '600'];
      writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
      mkdirSync(join(dir, 'tugboat-wasm'));
      execFileSync('runc', ['--root', join(root, NS), 'create', '--bundle', dir, '--pid-file', join(dir, 'init.pid'), id], { stdio: 'ignore' });
      execFileSync('runc', ['--root', join(root, NS), 'start', id], { stdio: 'ignore' });
    } else {
      writeFileSync(join(dir, 'config.json'), '{}');
      writeFileSync(join(dir, 'init.pid'), '4242');
    }
    out.push({ dir, id });
  }
  return out;
}

function deleteOne(t: { dir: string; id: string }, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((res, rej) => {
    const args = ['-namespace', NS, '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', t.id, '-bundle', t.dir, 'delete'];
    const child = spawn(SHIM, args, { cwd: t.dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let n = 0;
    child.stdout.on('data', (d: Buffer) => (n += d.length));
    child.once('error', rej);
    child.once('close', (code) => (code === 0 && n > 0 ? res() : rej(new Error(`shim delete ${t.id}: status ${code}`))));
  });
}

async function all(dirty: boolean, env: NodeJS.ProcessEnv): Promise<number> {
  const ts = tasks(dirty);
  const t0 = process.hrtime.bigint();
  await Promise.all(ts.map((t) => deleteOne(t, env)));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const left = execFileSync('runc', ['--root', join(root, NS), 'list', '-q'], { encoding: 'utf8' }).trim();
  if (left) throw new Error(`runc state left: ${left}`);
  for (const t of ts) rmSync(t.dir, { recursive: true, force: true });
  return ms;
}

const cases: Record<string, [boolean, NodeJS.ProcessEnv]> = {
  [`${N} deletes after a SIGKILLed shim, Node (baseline)`]: [true, { TUGBOAT_SHIM_FAST: 'off' }],
  [`${N} deletes after a SIGKILLed shim, sh`]: [true, {}],
  [`${N} deletes of cleanly deleted tasks, Node (baseline)`]: [false, { TUGBOAT_SHIM_FAST: 'off' }],
  [`${N} deletes of cleanly deleted tasks, sh`]: [false, {}],
};
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
try {
  for (let i = 0; i < runs; i++) {
    for (const [name, [dirty, env]] of Object.entries(cases)) samples[name]!.push(await all(dirty, env));
  }
  console.log(`\nshim delete, ${N} at once, median of ${runs} interleaved runs`);
  const names = Object.keys(cases);
  for (let i = 0; i < names.length; i++) {
    const base = median(samples[names[i - (i % 2)]!]!);
    const m = median(samples[names[i]!]!);
    console.log(`  ${names[i]!.padEnd(56)} ${m.toFixed(0).padStart(7)} ms  ${(m / base).toFixed(3)}x`);
  }
} finally {
  try {
    for (const id of execFileSync('runc', ['--root', join(root, NS), 'list', '-q'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
      execFileSync('runc', ['--root', join(root, NS), 'delete', '--force', id], { stdio: 'ignore' });
    }
  } catch {
    // no runc state at all
  }
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const p = line.split(' ')[4];
    if (p?.startsWith(`${work}/`)) execFileSync('umount', ['-l', p]);
  }
  rmSync(work, { recursive: true, force: true });
  rmSync(sock, { force: true });
}
