// bench/docker-start: `docker run --rm --runtime tugboat` of the Wasm hello vs
// `docker run --rm` of busybox echo with Docker's default runc, and busybox
// through tugboat, on a private dockerd started for the run. Interleaved,
// medians, ratios to the runc baseline.
import { join } from 'node:path';
import { startDockerd } from '../test/integration/daemons/dockerd.js';

const REPO = join(import.meta.dirname, '..', '..');
const FIXTURES = join(REPO, 'test', 'fixtures', 'out');
const runs = Number(process.env.BENCH_RUNS ?? 10);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const d = await startDockerd({ runtimes: { tugboat: { path: join(REPO, 'bin', 'tugboat') } } });
try {
  for (const f of ['hello-wasm.docker.tar', 'busybox.docker.tar']) await d.docker(['load', '-i', join(FIXTURES, f)]);
  const cases: Record<string, string[]> = {
    'docker run --rm busybox echo (runc, baseline)': ['run', '--rm', 'tugboat.local/busybox:latest', 'echo', 'hi'],
    'docker run --rm --runtime tugboat wasm hello': ['run', '--rm', '--runtime', 'tugboat', 'tugboat.local/hello-wasm:latest'],
    'docker run --rm --runtime tugboat busybox echo': ['run', '--rm', '--runtime', 'tugboat', 'tugboat.local/busybox:latest', 'echo', 'hi'],
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (const args of Object.values(cases)) await d.docker(args); // warm-up
  for (let i = 0; i < runs; i++) {
    for (const [name, args] of Object.entries(cases)) {
      const t0 = process.hrtime.bigint();
      const r = await d.docker(args);
      if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
      samples[name]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  const base = median(samples['docker run --rm busybox echo (runc, baseline)']!);
  console.log(`\ndocker start, median of ${runs} interleaved runs`);
  for (const [name, xs] of Object.entries(samples)) {
    const m = median(xs);
    console.log(`  ${name.padEnd(50)} ${m.toFixed(1).padStart(8)} ms   ${(m / base).toFixed(2)}x`);
  }
} finally {
  await d.stop();
}
