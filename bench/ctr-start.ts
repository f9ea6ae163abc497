// bench/ctr-start: `ctr run --rm` on a private containerd 1.6:
//   busybox echo via containerd-shim-runc-v2 (baseline)
//   busybox echo via containerd-shim-tugboat-v1
//   Wasm hello via containerd-shim-tugboat-v1 at `container` level, ungrouped
//   Wasm hello into a group whose pod host is live (`pod` level), the shim's
//     `start` answered from sh, and the same with `start` in Node (a runtime
//     whose binary sets TUGBOAT_SHIM_FAST=off)
// Interleaved, medians, ratios to the runc-v2 baseline.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

// The same shim under another runtime name, with the sh fast path off.
const slow = mkdtempSync(join(tmpdir(), 'tugboat-bench-shim-'));
writeFileSync(join(slow, 'containerd-shim-tugboatnode-v1'), `#!/bin/sh\nTUGBOAT_SHIM_FAST=off exec ${join(REPO, 'bin', 'containerd-shim-tugboat-v1')} "$@"\n`);
chmodSync(join(slow, 'containerd-shim-tugboatnode-v1'), 0o755);

const c = await startContainerd({ pathPrepend: [join(REPO, 'bin'), slow] });
const ctr = async (args: string[]) => {
  const r = await c.ctr(args);
  if (r.code !== 0) throw new Error(`ctr ${args.join(' ')}: ${r.stderr}`);
};
try {
  for (const f of ['busybox.docker.tar', 'hello-wasm.docker.tar', 'wasm-tools.docker.tar']) await ctr(['images', 'import', join(FIXTURES, f)]);
  const TB = 'io.containerd.tugboat.v1';
  const TBNODE = 'io.containerd.tugboatnode.v1';
  const group = (g: string) => ['--annotation', `io.containerd.runc.v2.group=${g}`];
  // Each group's pod host is kept alive by a sleeping guest.
  for (const [rt, g] of [[TB, 'live'], [TBNODE, 'livenode']] as const) {
    await ctr(['run', '-d', '--runtime', rt, ...group(g), 'tugboat.local/wasm-tools:latest', `keeper-${g}`, '/exitcode.wasm', 'sleep', '3600']);
  }
  const cases: Record<string, (id: string) => string[]> = {
    'ctr run --rm busybox echo (runc.v2, baseline)': (id) => ['run', '--rm', 'tugboat.local/busybox:latest', id, 'echo', 'hi'],
    'ctr run --rm busybox echo (tugboat.v1)': (id) => ['run', '--rm', '--runtime', TB, 'tugboat.local/busybox:latest', id, 'echo', 'hi'],
    'ctr run --rm wasm hello (tugboat.v1, container level)': (id) => ['run', '--rm', '--runtime', TB, 'tugboat.local/hello-wasm:latest', id],
    'ctr run --rm wasm hello into a live pod host': (id) => ['run', '--rm', '--runtime', TB, ...group('live'), 'tugboat.local/hello-wasm:latest', id],
    '  the same, shim start in Node (no sh fast path)': (id) => ['run', '--rm', '--runtime', TBNODE, ...group('livenode'), 'tugboat.local/hello-wasm:latest', id],
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  let n = 0;
  for (const make of Object.values(cases)) await ctr(make(`warm-${n++}`));
  for (let i = 0; i < runs; i++) {
    for (const [name, make] of Object.entries(cases)) {
      const t0 = process.hrtime.bigint();
      await ctr(make(`b-${n++}`));
      samples[name]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  const base = median(Object.values(samples)[0]!);
  console.log(`\nctr start, median of ${runs} interleaved runs`);
  for (const [name, xs] of Object.entries(samples)) {
    const m = median(xs);
    console.log(`  ${name.padEnd(52)} ${m.toFixed(1).padStart(8)} ms   ${(m / base).toFixed(2)}x`);
  }
  for (const g of ['live', 'livenode']) await c.ctr(['tasks', 'delete', '--force', `keeper-${g}`]).then(() => c.ctr(['containers', 'delete', `keeper-${g}`]));
} finally {
  await c.stop();
  rmSync(slow, { recursive: true, force: true });
}
