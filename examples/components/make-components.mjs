// Builds the example Wasm components into examples/components/out/:
//   hello.wasm, fileio.wasm, exitcode.wasm  the Rust preview1 examples
//       (examples/rust-wasm) wrapped into wasi:cli/command components with
//       jco's preview1 command adapter
//   exit-with-code.wasm                     from exit-with-code.wat
//   http-trap.wasm                          from http-trap.wat (an HTTP handler that traps)
// Everything is offline: jco carries the adapter and wasm-tools.
//
// `make-components.mjs CORE.wasm OUT.wasm` wraps one preview1 module the same
// way (the tests' guests, test/guests/build.sh).
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { componentNew, parse, preview1AdapterCommandPath } from '@bytecodealliance/jco';

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
for (const name of ['exit-with-code', 'http-trap']) {
  const wat = join(here, `${name}.wat`);
  if (!newer(join(out, `${name}.wasm`), wat)) write(`${name}.wasm`, await parse(readFileSync(wat, 'utf8')));
}
