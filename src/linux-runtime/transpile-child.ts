// The child process that transpiles one Wasm component with jco, so that a
// hostile or huge component costs this process's memory, which the parent
// bounds (component-cache.ts), and never the CLI's or the shim's.
//
//   node transpile-child.js COMPONENT OUT_DIR    (stdin: a pipe from the parent)
//
// Writes the generated files (the .mjs glue and core modules) into OUT_DIR,
// which must exist and be empty, and one JSON line on stdout:
// {"sha256": hex of the bytes transpiled, "wit": the component's WIT} or
// {"error": message}. Node can run this file as TypeScript too (tests run
// from source), so it only imports Node built-ins and jco.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The glue is ESM; .mjs makes Node load it as such without a package.json. */
const ENTRY = 'component.mjs';

/**
 * An HTTP handler runs on the thread that serves its requests (the host's
 * http/): its handler export and the wasi:io calls that may wait are made
 * JSPI-async, so a guest waiting for a body suspends instead of blocking the
 * thread; and imports the host lowers itself (wasi:io, wasi:http) go
 * straight to it ('hybrid' bindings: jco's glue uses a host function's
 * cabiLower when it has one). (The same test as worldOf in
 * component-cache.ts, which this file cannot import.)
 */
function transpileOptions(wit: string): Record<string, unknown> {
  if (!/^\s*export wasi:http\/incoming-handler@/m.test(wit)) return {};
  return {
    importBindings: 'hybrid',
    asyncMode: 'jspi',
    asyncImports: [
      'wasi:io/poll#poll',
      'wasi:io/poll#[method]pollable.block',
      'wasi:io/streams#[method]input-stream.blocking-read',
      'wasi:io/streams#[method]input-stream.blocking-skip',
      'wasi:io/streams#[method]output-stream.blocking-flush',
      'wasi:io/streams#[method]output-stream.blocking-write-and-flush',
      'wasi:io/streams#[method]output-stream.blocking-write-zeroes-and-flush',
      'wasi:io/streams#[method]output-stream.blocking-splice',
    ],
    asyncExports: ['wasi:http/incoming-handler#handle'],
  };
}

async function main(component: string, out: string): Promise<void> {
  const bytes = readFileSync(component);
  const api = await import('@bytecodealliance/jco');
  let wit: string;
  let files: Record<string, Uint8Array>;
  try {
    wit = await api.componentWit(bytes);
    ({ files } = await api.transpile(bytes, { name: 'component', instantiation: 'async', noTypescript: true, quiet: true, ...transpileOptions(wit) }));
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`);
    process.exitCode = 1;
    return;
  }
  for (const [name, data] of Object.entries(files)) {
    if (name.endsWith('.d.ts')) continue;
    const file = name === 'component.js' ? ENTRY : name;
    if (file.includes('/') || file.startsWith('.')) continue;
    writeFileSync(join(out, file), data, { mode: 0o444 });
  }
  process.stdout.write(`${JSON.stringify({ sha256: createHash('sha256').update(bytes).digest('hex'), wit })}\n`);
}

const [component, out] = process.argv.slice(2);
// The parent holds the write end of our stdin and never writes: its end (even
// a SIGKILL) is our end-of-file, and nothing of ours should outlive it.
// Unreferenced: it never keeps us alive once the work is done.
process.stdin.on('end', () => process.exit(1)).resume().unref();
if (component === undefined || out === undefined) {
  process.stderr.write('usage: transpile-child COMPONENT OUT_DIR\n');
  process.exitCode = 2;
} else {
  await main(component, out);
}
