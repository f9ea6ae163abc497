// Shared benchmark plumbing: private roots, bundles for plain runc, timing of
// whole commands, medians. Benchmarks print ratios against a baseline run in
// the same process, interleaved, so machine noise hits both sides alike.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURES = join(REPO, 'test', 'fixtures', 'out');
export const EXAMPLES = join(REPO, 'examples', 'rust-wasm', 'out');
export const TUGBOAT = join(REPO, 'bin', 'tugboat');

export function workspace(name) {
  const dir = mkdtempSync(join(tmpdir(), `tugboat-bench-${name}-`));
  const runcRoot = join(dir, 'runc');
  const cleanup = () => {
    try {
      const list = JSON.parse(execFileSync('runc', ['--root', runcRoot, 'list', '--format', 'json'], { encoding: 'utf8' }) || 'null') ?? [];
      for (const c of list) spawnSync('runc', ['--root', runcRoot, 'delete', '--force', c.id]);
    } catch {}
    for (const line of execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }).split('\n')) {
      const m = line.split(' ')[4];
      if (m?.startsWith(dir)) spawnSync('umount', ['-l', m]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  return { dir, runcRoot };
}

/** A bundle for plain `runc run` from an unpacked rootfs, with runc's default spec. */
export function runcBundle(dir, rootfsSource, args) {
  const bundle = join(dir, `bundle-${args[0].replace(/\W/g, '')}`);
  mkdirSync(bundle, { recursive: true });
  cpSync(rootfsSource, join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  execFileSync('runc', ['spec'], { cwd: bundle });
  const spec = JSON.parse(execFileSync('cat', [join(bundle, 'config.json')], { encoding: 'utf8' }));
  spec.process.terminal = false;
  spec.process.args = args;
  spec.root.readonly = false;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

export function timeCommand(cmd, args, expectStatus = 0, env = undefined) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env: { ...process.env, ...env } } : {}) });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== expectStatus) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  }
  return ms;
}

/**
 * Like timeCommand, and also the CPU time (user + system) the command and its
 * children used, from bash's `times`: on a loaded machine wall time mostly
 * measures the wait for a core, CPU time much less so. stdin, stdout and
 * stderr are /dev/null (a container made by `create` keeps them open).
 */
export function timeCommandCpu(cmd, args, { expectStatus = 0, env } = {}) {
  const script = 's=$EPOCHREALTIME; "$@" </dev/null >/dev/null 2>/dev/null; st=$?; e=$EPOCHREALTIME; { times; echo "$s $e $st"; } >&3';
  const r = spawnSync('bash', ['-c', script, 'bash', cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'], ...(env ? { env } : {}) });
  const lines = String(r.output[3]).trim().split('\n');
  const [start, end, status] = lines[2].split(' ').map(Number);
  if (status !== expectStatus) throw new Error(`${cmd} ${args.join(' ')} exited ${status}`);
  const seconds = (t) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(t);
    return Number(m[1]) * 60 + Number(m[2]);
  };
  const [user, sys] = lines[1].split(' ').map(seconds);
  return { wall: (end - start) * 1000, cpu: (user + sys) * 1000 };
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Runs each case `runs` times, interleaved round-robin; returns every sample. */
export function interleaveSamples(cases, runs) {
  const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < runs; i++) for (const [name, fn] of Object.entries(cases)) samples[name].push(fn(i));
  return samples;
}

/** Runs each case `runs` times, interleaved round-robin; returns medians in ms. */
export function interleave(cases, runs) {
  return Object.fromEntries(Object.entries(interleaveSamples(cases, runs)).map(([k, v]) => [k, median(v)]));
}

/** Prints medians and their ratios to the baseline; `cpu`, when given, adds median CPU times and their ratios. */
export function report(title, medians, baseline, cpu) {
  console.log(`\n${title}`);
  const base = medians[baseline];
  for (const [name, ms] of Object.entries(medians)) {
    const cpuText = cpu ? `   cpu ${cpu[name].toFixed(1).padStart(7)} ms ${(cpu[name] / cpu[baseline]).toFixed(2).padStart(6)}x` : '';
    console.log(`  ${name.padEnd(44)} ${ms.toFixed(1).padStart(8)} ms ${(ms / base).toFixed(2).padStart(6)}x${cpuText} ${name === baseline ? '(baseline)' : ''}`);
  }
}

/** Unpacks an image's rootfs once through Tugboat's own store and returns its path. */
export function unpackedRootfs(root, image) {
  execFileSync(TUGBOAT, ['--root', root, 'run', '--rm', '--entrypoint', '/bin/true', image], { stdio: 'ignore' });
  const dir = join(root, 'rootfs');
  const [hex] = execFileSync('ls', [dir], { encoding: 'utf8' }).split('\n').filter((n) => !n.includes('.tmp'));
  return join(dir, hex);
}

/** Every process's children, by its parent's pid (one walk of /proc). */
function children() {
  const kids = new Map();
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

/** PSS (KiB) of one process, 0 when it is gone. */
function pssKiB(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** PSS (KiB) of `roots` and every process below them, and how many processes that is (bench/density, bench/http). */
export function treePss(roots) {
  const kids = children();
  const seen = new Set();
  const stack = [...roots];
  while (stack.length) {
    const p = stack.pop();
    if (seen.has(p)) continue;
    seen.add(p);
    stack.push(...(kids.get(p) ?? []));
  }
  let pss = 0;
  for (const p of seen) pss += pssKiB(p);
  return { pss, procs: seen.size };
}
