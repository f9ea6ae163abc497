// bench/host-start: the WASI host alone, from exec to exit, running the Wasm
// hello on a root directory (no runc, no CLI): the part of a Wasm
// container's cold start that the host owns. Baseline: `node -e 0` (Node's
// own boot, the floor of any Node-based init). BENCH_OTHER=DIR adds another
// checkout's host bundle (before the root option existed: it runs with the
// directory as its cwd and "/" preopened there).
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { EXAMPLES, interleave, REPO, report } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 20);
const dir = mkdtempSync(join(tmpdir(), 'tugboat-bench-hoststart-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
copyFileSync(join(EXAMPLES, 'hello.wasm'), join(dir, 'hello.wasm'));
const node = process.execPath;

function time(args, env, cwd = dir) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(node, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const flags = ['--no-warnings', '--disable-sigusr1'];
const cases = {
  'node -e 0 (baseline)': () => time([...flags, '-e', '0'], {}),
  "Tugboat's host, hello": () => time([...flags, join(REPO, 'dist', 'host', 'host.mjs')], { TUGBOAT_GUEST: JSON.stringify({ args: ['/hello.wasm'], env: [], root: dir }) }),
  'node:wasi backend, hello': () => time([...flags, join(REPO, 'dist', 'host', 'host.mjs')], { TUGBOAT_GUEST: JSON.stringify({ args: ['/hello.wasm'], module: join(dir, 'hello.wasm'), env: [], backend: 'uvwasi', preopens: [{ guest: '/', path: dir }] }) }, '/'),
};
const other = process.env.BENCH_OTHER;
if (other) {
  cases[`host of ${other}, hello`] = () => time([...flags, join(other, 'dist', 'host', 'host.mjs')], { TUGBOAT_GUEST: JSON.stringify({ args: ['./hello.wasm'], env: [], preopens: { '/': dir } }) });
}
report(`WASI host start to exit, median of ${runs} interleaved runs`, interleave(cases, runs), 'node -e 0 (baseline)');
