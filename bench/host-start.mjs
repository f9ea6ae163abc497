// bench/host-start: the WASI host alone, from exec to exit, running the Wasm
// hello on a root directory (no runc, no CLI): the part of a Wasm
// container's cold start that the host owns. Baseline: `node -e 0` (Node's
// own boot, the floor of any Node-based init). Also a component (the fileio
// example, transpiled once) printing a file it reads: components run on a
// worker, and their files go through Tugboat's own wasi:filesystem.
// BENCH_OTHER=DIR adds another checkout's host bundle (for hello, before the
// root option existed: it runs with the directory as its cwd and "/"
// preopened there; for the component, from the same root).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { EXAMPLES, interleave, REPO, report } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 20);
const dir = mkdtempSync(join(tmpdir(), 'tugboat-bench-hoststart-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
copyFileSync(join(EXAMPLES, 'hello.wasm'), join(dir, 'hello.wasm'));
const node = process.execPath;
// The fileio component, transpiled as the CLI does (tsc's build of the child).
const transpiled = join(dir, 'fileio-component');
mkdirSync(transpiled);
spawnSync(node, [join(REPO, 'dist', 'linux-runtime', 'transpile-child.js'), join(REPO, 'examples', 'components', 'out', 'fileio.wasm'), transpiled], { stdio: 'ignore' });
mkdirSync(join(dir, 'etc'));
writeFileSync(join(dir, 'etc', 'motd'), 'hello from a file\n');
const fileio = { args: ['/fileio.wasm', 'read', '/etc/motd'], env: [], root: dir, cwd: '/', component: { dir: transpiled, entry: 'component.mjs', world: 'command' } };

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
  "Tugboat's host, component reading a file": () => time([...flags, join(REPO, 'dist', 'host', 'host.mjs')], { TUGBOAT_GUEST: JSON.stringify(fileio) }),
};
const other = process.env.BENCH_OTHER;
if (other) {
  // A checkout from before Tugboat's own preview1 host takes preopens as an object and no root.
  const legacy = !existsSync(join(other, 'src', 'wasi-host', 'preview1'));
  const hello = legacy ? { args: ['./hello.wasm'], env: [], preopens: { '/': dir } } : { args: ['/hello.wasm'], env: [], root: dir };
  cases[`host of ${other}, hello`] = () => time([...flags, join(other, 'dist', 'host', 'host.mjs')], { TUGBOAT_GUEST: JSON.stringify(hello) });
  // Hosts before components honoured the root saw the host's "/": the guest reads from the root directory by its cwd instead.
  cases[`host of ${other}, component reading a file`] = () => time([...flags, join(other, 'dist', 'host', 'host.mjs')], { TUGBOAT_GUEST: JSON.stringify({ ...fileio, args: ['/fileio.wasm', 'read', 'etc/motd'] }) });
}
report(`WASI host start to exit, median of ${runs} interleaved runs`, interleave(cases, runs), 'node -e 0 (baseline)');
