// bench/http: requests/s and p99 latency of wasi:http components in Wasm
// containers against a native Node `http` server in a Linux container built
// from the same runtime kit, doing the same work as the hand-written handler
// (examples/components/http-bench.wat): read the request body, echo the
// x-echo header, answer a fixed body. All run under `tugboat run --network
// host` on a loopback port; the same load generator (autocannon, in this
// process) drives each in turn, at 32 and 256 connections.
//
//   native      Node http in a Linux container (the baseline of each row)
//   wat         http-bench.wasm: the host's own cost (instances reused, as it declares)
//   wat-fresh   http-bench.wasm with io.tugboat.http.reuse=false: a fresh instance per request
//   js          http-hello.wasm (componentize-js, StarlingMonkey): a fresh instance per request
//   js-before   the same, served by another build's `bin/tugboat` (BENCH_BEFORE, a
//               checkout's root): e.g. the one before wasi:http was served in-thread
//
// BENCH_SECONDS (default 8), BENCH_CONNECTIONS (default "32,256"), BENCH_ONLY
// (comma-separated names) narrow it down.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
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
  { name: 'wat-fresh', what: 'http-bench.wasm, a fresh instance per request', image: `oci:${join(FIXTURES, 'wasm')}:component-http-bench`, annotations: { 'io.tugboat.http.reuse': 'false' } },
  { name: 'js', what: 'http-hello.wasm (componentize-js), fresh instances', image: `oci:${join(FIXTURES, 'wasm')}:component-http` },
  ...(before ? [{ name: 'js-before', what: 'http-hello.wasm, served by BENCH_BEFORE', image: `oci:${join(FIXTURES, 'wasm')}:component-http`, checkout: before }] : []),
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
}

async function load(port: number, connections: number, duration: number): Promise<Load> {
  const r = await autocannon({ url: `http://127.0.0.1:${port}/bench`, connections, duration, headers: { 'x-echo': 'bench' } });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

const results = new Map<string, Map<number, Load>>();
const load0 = loadavg();
try {
  let port = 18190;
  for (const t of targets) {
    const child = start(t, ++port);
    try {
      await ready(port);
      const byConn = new Map<number, Load>();
      for (const c of connectionCounts) {
        await load(port, c, Math.max(2, seconds / 4)); // warm-up, discarded
        byConn.set(c, await load(port, c, seconds));
      }
      results.set(t.name, byConn);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }
  const load1 = loadavg();
  console.log(`\nhttp: autocannon in the bench process, ${seconds} s per run, loopback; ${cpus().length} CPUs, load average ${load0[0]!.toFixed(1)} at the start, ${load1[0]!.toFixed(1)} at the end`);
  for (const c of connectionCounts) {
    const base = results.get('native')?.get(c);
    console.log(`  ${c} connections`);
    for (const t of targets) {
      const r = results.get(t.name)?.get(c);
      if (!r) continue;
      const ratio = base ? `${(r.rps / base.rps).toFixed(3)}x req/s, p99 ${(r.p99 / Math.max(1, base.p99)).toFixed(2)}x` : '';
      console.log(`    ${t.what.padEnd(52)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${String(r.p50).padStart(4)} ms  p99 ${String(r.p99).padStart(5)} ms  errors ${r.errors}  ${ratio}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
