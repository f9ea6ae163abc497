// bench/http: requests/s and p99 latency of the wasi:http component (fresh
// instance per request, in a Wasm container) vs a native Node `http` server
// doing the same work (answer "hello … <path>") in a Linux container built
// from the same runtime kit. Both run under `tugboat run --network host` on a
// loopback port; the same load generator (autocannon) drives each in turn.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { buildImage } from '../src/oci/image-build.js';
import { hostPlatform } from '../src/oci/platform.js';
import { loadKit } from '../src/linux-runtime/kit.js';

const REPO = join(import.meta.dirname, '..', '..');
const TUGBOAT = join(REPO, 'bin', 'tugboat');
const FIXTURES = join(REPO, 'test', 'fixtures', 'out');
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);

const work = mkdtempSync(join(tmpdir(), 'tugboat-bench-http-'));
const root = join(work, 'store');
const kit = loadKit(join(REPO, 'build', 'kit'));
writeFileSync(
  join(work, 'server.mjs'),
  `import http from 'node:http';
   http.createServer((req, res) => { res.writeHead(200, {'content-type': 'text/plain'}); res.end('hello from a wasm component: ' + req.url + '\\n'); })
     .listen(Number(process.env.PORT), '127.0.0.1');
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

function start(image: string, port: number): ChildProcess {
  return spawn(TUGBOAT, ['--root', root, 'run', '--rm', '--network', 'host', '-e', `PORT=${port}`, image], { stdio: 'ignore' });
}

async function ready(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} never answered`);
}

async function load(port: number): Promise<{ rps: number; p99: number; errors: number }> {
  const r = await autocannon({ url: `http://127.0.0.1:${port}/bench`, connections, duration: seconds });
  return { rps: r.requests.average, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

const results: Record<string, { rps: number; p99: number; errors: number }> = {};
try {
  for (const [name, image, port] of [
    ['native Node http in a Linux container (baseline)', `oci:${join(work, 'native')}:latest`, 18191],
    ['wasi:http component in a Wasm container', `oci:${join(FIXTURES, 'wasm')}:component-http`, 18192],
  ] as const) {
    const child = start(image, port);
    try {
      await ready(port);
      await load(port); // warm-up run, discarded
      results[name] = await load(port);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }
  const base = Object.values(results)[0]!;
  console.log(`\nhttp: autocannon, ${connections} connections, ${seconds} s each, loopback`);
  for (const [name, r] of Object.entries(results)) {
    console.log(`  ${name.padEnd(50)} ${r.rps.toFixed(0).padStart(8)} req/s  p99 ${String(r.p99).padStart(5)} ms  errors ${r.errors}  ${(r.rps / base.rps).toFixed(3)}x throughput`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
