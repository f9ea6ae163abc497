// bench/http: requests/s, p99 latency and server CPU per request of wasi:http
// components in Wasm containers against a native Node `http` server in a
// Linux container built from the same runtime kit, doing the same work as the
// hand-written handler (examples/components/http-bench.wat): read the request
// body, echo the x-echo header, answer a fixed body. All run under `tugboat
// run --network host` on a loopback port; the same load generator (wrk, a
// separate C process: a JavaScript one in this process took a core of the
// two and decided the result) drives each in turn, at 32 and 256 connections.
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
// BENCH_SECONDS (default 8), BENCH_CONNECTIONS (default "32,256"), BENCH_ONLY
// (comma-separated names) narrow it down.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../src/oci/image-build.js';
import { hostPlatform } from '../src/oci/platform.js';
import { loadKit } from '../src/linux-runtime/kit.js';

const REPO = join(import.meta.dirname, '..', '..');
const TUGBOAT = join(REPO, 'bin', 'tugboat');
const FIXTURES = join(REPO, 'test', 'fixtures', 'out');
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
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
].filter((t) => !only || only.includes(t.name));

function start(t: Target, port: number): ChildProcess {
  const args = ['--root', t.checkout ? `${root}-${t.name}` : root, 'run', '--rm', '--network', 'host', '-e', `PORT=${port}`];
  for (const [k, v] of Object.entries(t.annotations ?? {})) args.push('--annotation', `${k}=${v}`);
  return spawn(t.checkout ? join(t.checkout, 'bin', 'tugboat') : TUGBOAT, [...args, t.image], { stdio: 'ignore' });
}

async function ready(port: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} never answered`);
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

/** How to read the CPU time (µs) of the runc container that `tugboat run` started under `store` (the only one running there). */
function containerCpu(store: string): () => number {
  const list = JSON.parse(execFileSync('runc', ['--root', join(store, 'runc'), 'list', '--format', 'json'], { encoding: 'utf8' }) || '[]') as { pid: number; status: string }[];
  const running = list.find((c) => c.status === 'running');
  if (!running) throw new Error(`no running container under ${store}`);
  const lines = readFileSync(`/proc/${running.pid}/cgroup`, 'utf8').trim().split('\n').map((l) => l.split(':'));
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

const results = new Map<string, Map<number, Load>>();
const load0 = loadavg();
try {
  let port = 18190;
  for (const t of targets) {
    const child = start(t, ++port);
    try {
      await ready(port);
      const cpu = containerCpu(t.checkout ? `${root}-${t.name}` : root);
      const byConn = new Map<number, Load>();
      for (const c of connectionCounts) {
        // Warm-up, discarded: V8 keeps optimizing the request path for seconds.
        await load(port, c, Math.max(3, seconds / 2), cpu);
        byConn.set(c, await load(port, c, seconds, cpu));
      }
      results.set(t.name, byConn);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }
  const load1 = loadavg();
  console.log(`\nhttp: wrk, ${seconds} s per run after a warm-up, loopback; ${cpus().length} CPUs, load average ${load0[0]!.toFixed(1)} at the start, ${load1[0]!.toFixed(1)} at the end`);
  for (const c of connectionCounts) {
    const base = results.get('native')?.get(c);
    console.log(`  ${c} connections`);
    for (const t of targets) {
      const r = results.get(t.name)?.get(c);
      if (!r) continue;
      const ratio = base ? `${(r.rps / base.rps).toFixed(3)}x req/s, p99 ${(r.p99 / base.p99).toFixed(2)}x, CPU/req ${(r.cpuUs / base.cpuUs).toFixed(2)}x` : '';
      console.log(
        `    ${t.what.padEnd(52)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(2).padStart(7)} ms  p99 ${r.p99.toFixed(2).padStart(8)} ms  CPU/req ${r.cpuUs.toFixed(0).padStart(5)} µs  errors ${r.errors}  ${ratio}`,
      );
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
