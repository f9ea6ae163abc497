// bench/ctr-start: `ctr run --rm` on a private containerd 1.6:
//   busybox echo via containerd-shim-runc-v2 (baseline)
//   busybox echo via containerd-shim-tugboat-v1
//   Wasm hello via containerd-shim-tugboat-v1
// Interleaved, medians, ratios to the runc-v2 baseline.
import { join } from 'node:path';
import { startContainerd } from '../test/integration/daemons/containerd.js';

const REPO = join(import.meta.dirname, '..', '..');
const FIXTURES = join(REPO, 'test', 'fixtures', 'out');
const runs = Number(process.env.BENCH_RUNS ?? 10);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const c = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
try {
  for (const f of ['busybox.docker.tar', 'hello-wasm.docker.tar']) {
    const r = await c.ctr(['images', 'import', join(FIXTURES, f)]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  const cases: Record<string, (id: string) => string[]> = {
    'ctr run --rm busybox echo (runc.v2, baseline)': (id) => ['run', '--rm', 'tugboat.local/busybox:latest', id, 'echo', 'hi'],
    'ctr run --rm busybox echo (tugboat.v1)': (id) => ['run', '--rm', '--runtime', 'io.containerd.tugboat.v1', 'tugboat.local/busybox:latest', id, 'echo', 'hi'],
    'ctr run --rm wasm hello (tugboat.v1)': (id) => ['run', '--rm', '--runtime', 'io.containerd.tugboat.v1', 'tugboat.local/hello-wasm:latest', id],
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  let n = 0;
  for (const make of Object.values(cases)) await c.ctr(make(`warm-${n++}`));
  for (let i = 0; i < runs; i++) {
    for (const [name, make] of Object.entries(cases)) {
      const t0 = process.hrtime.bigint();
      const r = await c.ctr(make(`b-${n++}`));
      if (r.code !== 0) throw new Error(`${name}: ${r.stderr}`);
      samples[name]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  const base = median(Object.values(samples)[0]!);
  console.log(`\nctr start, median of ${runs} interleaved runs`);
  for (const [name, xs] of Object.entries(samples)) {
    const m = median(xs);
    console.log(`  ${name.padEnd(48)} ${m.toFixed(1).padStart(8)} ms   ${(m / base).toFixed(2)}x`);
  }
} finally {
  await c.stop();
}
