// bench/http: requests/s, p99 latency and server CPU per request of wasi:http
// components in Wasm containers against a native Node `http` server in a
// Linux container built from the same runtime kit, doing the same work as the
// hand-written handler (examples/components/http-bench.wat): read the request
// body, echo the x-echo header, answer a fixed body. All run under `tugboat
// run --network host` on a loopback port; the same load generator (wrk, a
// separate C process: a JavaScript one in this process took a core of the
// two and decided the result) drives each in turn, at 32 and 256 connections.
// The README's "wasi:http served in-thread" gives a run's numbers.
//
//   native      Node http in a Linux container (the baseline of each row)
//   wat         http-bench.wasm: the host's own cost (instances reused, as it declares)
//   wat-1       the same on one handler thread (the default is one per CPU; here wrk takes part of one)
//   wat-fresh   http-bench.wasm with io.tugboat.http.reuse=false: a fresh instance per request,
//               one put back as it was made after each (src/wasi-host/http/reset.ts)
//   wat-remake  the same with io.tugboat.http.reset=false: a new instance made for each request
//   js          http-hello.wasm (componentize-js, StarlingMonkey): a fresh instance per request (reset)
//   js-remake   the same, a new instance made for each request
//   js-before / wat-before  the same, served by another build's `bin/tugboat` (BENCH_BEFORE, a
//               checkout's root)
//
// "CPU/req" is the container's CPU time (its cgroup's cpu.stat: every
// thread, the GC's too) over the requests answered: it depends less on what
// else the machine does than req/s.
//
// How it is measured, and why:
// - First of all, each server's start: from `tugboat run` to its first answer
//   (BENCH_START_RUNS times each, default 5, interleaved), then it is stopped.
// - Then every server is started and stays up; each is warmed up alone
//   (BENCH_WARMUP s, default 12) at each connection count. V8 goes on
//   optimizing the request path for seconds: measured here, a two-thread
//   Wasm server's req/s rises for ~8 s (two isolates to optimize, and the
//   guest's host functions), native Node's for ~2 s. The first 3 s of the
//   first warm-up are kept and shown as "cold", the cost of that warm-up.
// - Then BENCH_ROUNDS rounds (default 3): in each, every server in turn, for
//   BENCH_SECONDS s (default 5). This shared VM's speed drifts by 10-20%
//   within a minute, so a ratio is taken within a round (a server against
//   the native server of the same round) and the median of the rounds'
//   ratios is shown, with their range. After each run the bench waits for
//   the server to fall idle (requests wrk gave up on, a pool refilling), so
//   that no server's leftovers land in the next one's run.
//
// "memory" is the PSS (/proc/<pid>/smaps_rollup) of every process of the
// container (its init and all below it): once it has answered and sat idle
// for 2 s (a pool has made its instances by then), and after all the rounds.
// PSS, as bench/idle-pss and bench/density: a page shared with another
// process counts in part.
//
// BENCH_CONNECTIONS (default "32,256") and BENCH_ONLY (comma-separated names;
// native is always run) narrow it down.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../src/oci/image-build.js';
import { hostPlatform } from '../src/oci/platform.js';
import { loadKit } from '../src/linux-runtime/kit.js';
import { median, treePss } from './lib.mjs';

const REPO = join(import.meta.dirname, '..', '..');
const TUGBOAT = join(REPO, 'bin', 'tugboat');
const FIXTURES = join(REPO, 'test', 'fixtures', 'out');
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const warmSeconds = Number(process.env.BENCH_WARMUP ?? 12);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const COLD_SECONDS = 3;
const startRuns = Number(process.env.BENCH_START_RUNS ?? 5);
const connectionCounts = (process.env.BENCH_CONNECTIONS ?? '32,256').split(',').map(Number);
const only = process.env.BENCH_ONLY?.split(',');
const before = process.env.BENCH_BEFORE;

const work = mkdtempSync(join(tmpdir(), 'tugboat-bench-http-'));
const root = join(work, 'store');
const kit = loadKit(join(REPO, 'build', 'kit'));
writeFileSync(
  join(work, 'server.mjs'),
  `import http from 'node:http';
   let served = 0;
   http.createServer((req, res) => {
     served++;
     let n = 0;
     req.on('data', (d) => (n += d.length));
     req.on('end', () => {
       const h = { 'x-instance-requests': String(served), 'x-body-bytes': String(n) };
       if (req.headers['x-echo'] !== undefined) h['x-echo'] = req.headers['x-echo'];
       res.writeHead(200, h);
       res.end('hello from a wasm component\\n');
     });
   }).listen(Number(process.env.PORT));
   process.on('SIGTERM', () => process.exit(143));`,
);
await buildImage({
  files: [
    { hostPath: join(kit.dir, 'node'), containerPath: '/node' },
    { hostPath: join(kit.dir, 'lib'), containerPath: '/lib' },
    { hostPath: join(work, 'server.mjs'), containerPath: '/server.mjs' },
  ],
  platform: hostPlatform(),
  config: { Entrypoint: [`/${kit.loader}`, '--library-path', '/lib', '/node', '/server.mjs'] },
  format: 'oci',
  output: join(work, 'native'),
  tag: 'latest',
});

interface Target {
  name: string;
  what: string;
  image: string;
  annotations?: Record<string, string>;
  /** Another checkout whose bin/tugboat serves it (with its own store). */
  checkout?: string;
}
const targets: Target[] = [
  { name: 'native', what: 'Node http in a Linux container (baseline)', image: `oci:${join(work, 'native')}:latest` },
  { name: 'wat', what: 'http-bench.wasm, instances reused (declared)', image: `oci:${join(FIXTURES, 'wasm')}:component-http-bench` },
  { name: 'wat-1', what: 'http-bench.wasm, reused, one handler thread', image: `oci:${join(FIXTURES, 'wasm')}:component-http-bench`, annotations: { 'io.tugboat.http.threads': '1' } },
  { name: 'wat-fresh', what: 'http-bench.wasm, a fresh instance per request (reset)', image: `oci:${join(FIXTURES, 'wasm')}:component-http-bench`, annotations: { 'io.tugboat.http.reuse': 'false' } },
  {
    name: 'wat-remake',
    what: 'http-bench.wasm, a new instance made per request',
    image: `oci:${join(FIXTURES, 'wasm')}:component-http-bench`,
    annotations: { 'io.tugboat.http.reuse': 'false', 'io.tugboat.http.reset': 'false' },
  },
  { name: 'js', what: 'http-hello.wasm (componentize-js), fresh instances (reset)', image: `oci:${join(FIXTURES, 'wasm')}:component-http` },
  { name: 'js-remake', what: 'http-hello.wasm, a new instance made per request', image: `oci:${join(FIXTURES, 'wasm')}:component-http`, annotations: { 'io.tugboat.http.reset': 'false' } },
  ...(before
    ? [
        { name: 'wat-before', what: 'http-bench.wasm, reused, served by BENCH_BEFORE', image: `oci:${join(FIXTURES, 'wasm')}:component-http-bench`, checkout: before },
        { name: 'js-before', what: 'http-hello.wasm, served by BENCH_BEFORE', image: `oci:${join(FIXTURES, 'wasm')}:component-http`, checkout: before },
      ]
    : []),
].filter((t) => !only || t.name === 'native' || only.includes(t.name));

const storeOf = (t: Target) => (t.checkout ? `${root}-${t.name}` : root);
const containerName = (t: Target) => `bench-http-${t.name}`;

function start(t: Target, port: number): ChildProcess {
  const args = ['--root', storeOf(t), 'run', '--rm', '--name', containerName(t), '--network', 'host', '-e', `PORT=${port}`];
  for (const [k, v] of Object.entries(t.annotations ?? {})) args.push('--annotation', `${k}=${v}`);
  return spawn(t.checkout ? join(t.checkout, 'bin', 'tugboat') : TUGBOAT, [...args, t.image], { stdio: 'ignore' });
}

async function ready(port: number, everyMs = 100): Promise<void> {
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/ready`);
      await r.arrayBuffer();
      if (r.ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`port ${port} never answered`);
}

/** From `tugboat run` to the first answer, ms; the container is stopped again. */
async function firstResponse(t: Target, port: number): Promise<number> {
  const t0 = performance.now();
  const child = start(t, port);
  try {
    await ready(port, 5);
    return performance.now() - t0;
  } finally {
    await stop(child);
  }
}

/** Stops a `tugboat run` (SIGTERM) and waits for it to be gone. */
async function stop(child: ChildProcess): Promise<void> {
  child.kill('SIGTERM');
  if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** The container's CPU time per request answered, µs. */
  cpuUs: number;
}

/** A wrk duration ("870.00us", "1.23ms", "2.01s") in ms. */
function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
}

/** How to read the CPU time (µs) of the runc container `name` that `tugboat run` started under `store`. */
function containerCpu(store: string, name: string): () => number {
  const lines = readFileSync(`/proc/${containerInit(store, name)}/cgroup`, 'utf8').trim().split('\n').map((l) => l.split(':'));
  // cgroup v1: the cpuacct controller's usage (ns); v2: cpu.stat's usage_usec.
  const v1 = lines.find(([, controllers]) => controllers!.split(',').includes('cpuacct'));
  if (v1) {
    const dir = [v1[1]!, 'cpuacct', 'cpu,cpuacct'].map((m) => join('/sys/fs/cgroup', m, v1[2]!)).find((d) => existsSync(join(d, 'cpuacct.usage')));
    if (!dir) throw new Error(`cannot find the cpuacct cgroup ${v1[2]}`);
    return () => Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8')) / 1000;
  }
  const v2 = lines.find(([id]) => id === '0');
  const file = join('/sys/fs/cgroup', v2![2]!, 'cpu.stat');
  return () => Number(/usage_usec (\d+)/.exec(readFileSync(file, 'utf8'))![1]);
}

/** The container's init: its process as runc lists it. */
function containerInit(store: string, name: string): number {
  const list = JSON.parse(execFileSync('runc', ['--root', join(store, 'runc'), 'list', '--format', 'json'], { encoding: 'utf8' }) || '[]') as { id: string; pid: number; status: string }[];
  const running = list.find((c) => c.id === name && c.status === 'running');
  if (!running) throw new Error(`container ${name} is not running under ${store}`);
  return running.pid;
}

async function load(port: number, connections: number, duration: number, cpuUsec: () => number): Promise<Load> {
  const threads = connections >= 128 ? 2 : 1;
  const cpu0 = cpuUsec();
  const child = spawn('wrk', [`-t${threads}`, `-c${connections}`, `-d${duration}s`, '--latency', '-H', 'x-echo: bench', `http://127.0.0.1:${port}/bench`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const status = await new Promise<number | null>((r) => child.once('exit', r));
  const cpu1 = cpuUsec();
  if (status !== 0) throw new Error(`wrk failed (${status}): ${out}`);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p50: ms(/ 50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99: ms(/ 99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    errors: non2xx + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
    cpuUs: requests > 0 ? (cpu1 - cpu0) / requests : NaN,
  };
}

interface Server {
  t: Target;
  port: number;
  child: ChildProcess;
  cpu: () => number;
  cold?: Load;
  /** PSS (KiB) of the container's processes: idle after its first answers, and after all the rounds. */
  pssIdle?: number;
  pssLoaded?: number;
  /** Per connection count, one Load per round. */
  runs: Map<number, Load[]>;
}

/**
 * Waits until the server has stopped working: a slow one still answers
 * requests wrk gave up on (at 256 connections, a componentize-js server has
 * seconds of them queued), and a pool refills after a load, which would take
 * the CPU from the server measured next.
 */
async function settle(s: Server): Promise<void> {
  const QUIET_US = 10_000;
  for (let i = 0; i < 240; i++) {
    const before = s.cpu();
    await new Promise((r) => setTimeout(r, 250));
    if (s.cpu() - before < QUIET_US) return;
  }
}

const servers: Server[] = [];
const startTimes = new Map<string, number[]>();
const load0 = loadavg();
try {
  // Time to a first answer, each target in turn, START_RUNS times; before any
  // server stays up. The first start of each imports the image and
  // transpiles the component into the store, and is not counted.
  for (const [i, t] of targets.entries()) await firstResponse(t, 18290 + i);
  for (let r = 0; r < startRuns; r++) {
    for (const [i, t] of targets.entries()) {
      const times = startTimes.get(t.name) ?? [];
      times.push(await firstResponse(t, 18290 + i));
      startTimes.set(t.name, times);
    }
  }
  let port = 18190;
  // One at a time: each start may import the image and transpile the component into the store.
  for (const t of targets) {
    const p = ++port;
    const child = start(t, p);
    const server: Server = { t, port: p, child, cpu: () => NaN, runs: new Map() };
    servers.push(server);
    await ready(p);
    server.cpu = containerCpu(storeOf(t), containerName(t));
    await new Promise((r) => setTimeout(r, 2000));
    server.pssIdle = treePss([containerInit(storeOf(t), containerName(t))]).pss;
  }
  for (const s of servers) {
    s.cold = await load(s.port, connectionCounts[0]!, COLD_SECONDS, s.cpu);
    for (const [i, c] of connectionCounts.entries()) await load(s.port, c, i === 0 ? Math.max(1, warmSeconds - COLD_SECONDS) : Math.max(3, warmSeconds / 3), s.cpu);
    await settle(s);
  }
  for (let r = 0; r < rounds; r++) {
    for (const c of connectionCounts) {
      for (const s of servers) {
        const runs = s.runs.get(c) ?? [];
        runs.push(await load(s.port, c, seconds, s.cpu));
        s.runs.set(c, runs);
        await settle(s);
      }
    }
  }
  for (const s of servers) s.pssLoaded = treePss([containerInit(storeOf(s.t), containerName(s.t))]).pss;
  const load1 = loadavg();
  console.log(
    `\nhttp: wrk, loopback; every server warmed up ${warmSeconds} s, then ${rounds} rounds of ${seconds} s each; medians of the rounds, ratios taken within a round (range in brackets); ${cpus().length} CPUs, load average ${load0[0]!.toFixed(1)} at the start, ${load1[0]!.toFixed(1)} at the end`,
  );
  const native = servers.find((s) => s.t.name === 'native')!;
  const range = (xs: number[], digits: number) => `${median(xs).toFixed(digits)}x [${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}]`;
  for (const c of connectionCounts) {
    const base = native.runs.get(c)!;
    console.log(`  ${c} connections`);
    for (const s of servers) {
      const runs = s.runs.get(c)!;
      const rps = runs.map((r, i) => r.rps / base[i]!.rps);
      const p99 = runs.map((r, i) => r.p99 / base[i]!.p99);
      const cpu = runs.map((r, i) => r.cpuUs / base[i]!.cpuUs);
      const errors = runs.reduce((a, r) => a + r.errors, 0);
      console.log(
        `    ${s.t.what.padEnd(52)} ${median(runs.map((r) => r.rps)).toFixed(0).padStart(7)} req/s  p50 ${median(runs.map((r) => r.p50)).toFixed(2).padStart(7)} ms  p99 ${median(runs.map((r) => r.p99)).toFixed(2).padStart(8)} ms  CPU/req ${median(runs.map((r) => r.cpuUs)).toFixed(0).padStart(5)} µs  errors ${errors}` +
          (s === native ? '' : `  req/s ${range(rps, 3)}, p99 ${range(p99, 2)}, CPU/req ${range(cpu, 2)}`),
      );
    }
  }
  const nativeStart = median(startTimes.get('native')!);
  console.log(`  start: from \`tugboat run\` to the first answer, median of ${startRuns}`);
  for (const t of targets) {
    const times = startTimes.get(t.name)!;
    console.log(`    ${t.what.padEnd(52)} ${median(times).toFixed(0).padStart(7)} ms  (${Math.min(...times).toFixed(0)}-${Math.max(...times).toFixed(0)})  ${(median(times) / nativeStart).toFixed(2)}x native's`);
  }
  console.log(`  cold: the first ${COLD_SECONDS} s after the server answered, ${connectionCounts[0]} connections`);
  for (const s of servers) {
    const cold = s.cold!;
    console.log(`    ${s.t.what.padEnd(52)} ${cold.rps.toFixed(0).padStart(7)} req/s  p99 ${cold.p99.toFixed(2).padStart(8)} ms  ${(cold.rps / native.cold!.rps).toFixed(3)}x native's cold req/s`);
  }
  console.log('  memory: PSS of the container\'s processes, idle after its first answers / after all the rounds');
  const mib = (kib: number) => `${(kib / 1024).toFixed(0).padStart(5)} MiB`;
  for (const s of servers) {
    console.log(`    ${s.t.what.padEnd(52)} ${mib(s.pssIdle!)} / ${mib(s.pssLoaded!)}  ${(s.pssLoaded! / native.pssLoaded!).toFixed(2)}x native's after the rounds`);
  }
} finally {
  for (const s of servers) await stop(s.child);
  rmSync(work, { recursive: true, force: true });
}
