// Builds the example Wasm components into examples/components/out/:
//   hello.wasm, fileio.wasm, exitcode.wasm  the Rust preview1 examples
//       (examples/rust-wasm) wrapped into wasi:cli/command components with
//       jco's preview1 command adapter
//   exit-with-code.wasm                     from exit-with-code.wat
//   http-trap.wasm                          from http-trap.wat (an HTTP handler that traps)
//   http-bench.wasm                         from http-bench.wat (a core module) and the
//       world in http-bench.wit, embedded and wrapped with jco's wasm-tools
//   http-probe.wasm                         from http-probe.wat and http-probe.wit, the same
//       way (an HTTP handler that shows its environment and files)
//   grow.wasm                               from grow.wat (grows its memory 1 MiB per argument)
// Everything is offline: jco carries the adapter, wasm-tools and the WASI WIT.
//
// `make-components.mjs CORE.wasm OUT.wasm` wraps one preview1 module the same
// way (the tests' guests, test/guests/build.sh).
import { cpSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { componentEmbed, componentNew, parse, preview1AdapterCommandPath } from '@bytecodealliance/jco';

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, '..', 'rust-wasm', 'out');
const out = join(here, 'out');
mkdirSync(out, { recursive: true });

const newer = (target, ...sources) => {
  try {
    const t = statSync(target).mtimeMs;
    return sources.every((s) => statSync(s).mtimeMs < t);
  } catch {
    return false;
  }
};
const write = (name, bytes) => {
  const tmp = join(out, `.${name}.tmp`);
  writeFileSync(tmp, bytes);
  renameSync(tmp, join(out, name));
};

const adapterPath = fileURLToPath(preview1AdapterCommandPath());
const adapter = readFileSync(adapterPath);
const wrap = async (core) => componentNew(readFileSync(core), [['wasi_snapshot_preview1', adapter]]);

const [oneCore, oneTarget] = process.argv.slice(2);
if (oneCore !== undefined && oneTarget !== undefined) {
  writeFileSync(`${oneTarget}.tmp`, await wrap(oneCore));
  renameSync(`${oneTarget}.tmp`, oneTarget);
  process.exit(0);
}

for (const name of ['hello', 'fileio', 'exitcode']) {
  const core = join(modules, `${name}.wasm`);
  if (newer(join(out, `${name}.wasm`), core, adapterPath)) continue;
  write(`${name}.wasm`, await wrap(core));
}
for (const name of ['exit-with-code', 'http-trap', 'grow']) {
  const wat = join(here, `${name}.wat`);
  if (!newer(join(out, `${name}.wasm`), wat)) write(`${name}.wasm`, await parse(readFileSync(wat, 'utf8')));
}

// A core module and a world of ours: the world's WASI packages come from jco's
// own copy of the WIT (0.2.12), read through preview2-shim's filesystem.
const witVersion = '0.2.12';
for (const name of ['http-bench', 'http-probe']) {
  const wat = join(here, `${name}.wat`);
  const world = join(here, `${name}.wit`);
  if (newer(join(out, `${name}.wasm`), wat, world)) continue;
  const wit = join(out, `.${name}-wit`);
  rmSync(wit, { recursive: true, force: true });
  const builtin = fileURLToPath(new URL(`./wit/builtin/${witVersion}/`, preview1AdapterCommandPath()));
  for (const pkg of ['cli', 'clocks', 'filesystem', 'http', 'io', 'random', 'sockets']) {
    cpSync(join(builtin, `wasi-${pkg}`), join(wit, 'deps', pkg), { recursive: true });
  }
  cpSync(world, join(wit, 'world.wit'));
  const require = createRequire(import.meta.url);
  const shimFs = await import(require.resolve('@bytecodealliance/preview2-shim/filesystem'));
  shimFs._setPreopens({ '/': '/' });
  const core = await parse(readFileSync(wat, 'utf8'));
  write(`${name}.wasm`, await componentNew(await componentEmbed({ binary: core, witPath: wit, world: name })));
  rmSync(wit, { recursive: true, force: true });
}
