// node:wasi (uvwasi) on the main thread, as a baseline for bench/syscalls:
// `run-uvwasi.mjs ROOT MODULE ARGS...` runs ROOT/MODULE with ROOT preopened as "/".
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WASI } from 'node:wasi';

const [root, module, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [module, ...args], env: {}, preopens: { '/': root }, returnOnExit: true });
const instance = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(join(root, module))), wasi.getImportObject());
process.exitCode = wasi.start(instance);
