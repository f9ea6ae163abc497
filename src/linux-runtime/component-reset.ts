// At transpile time, readies an HTTP component's cache entry so that its
// handler threads may put a one-request instance back to its state when
// made instead of making a new one (src/wasi-host/http/reset.ts):
//   - every core module gets exports of the memories and mutable globals it
//     defines (instrument/state-exports.ts), which JavaScript can then copy
//     and set back; a module whose code may change what those cannot
//     restore (a table, a dropped segment) makes the whole entry refuse;
//   - jco's glue hands its per-instance list of handle tables to the
//     instantiateCore it is given (one line after its declaration), so the
//     host can see that the guest dropped every handle and empty them.
// Done once per component, in the cache entry (before its meta.json, which
// makes it complete), never per container or request.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WasmError } from '../errors.js';
import { exportState } from '../wasi-host/instrument/index.js';

/** Whether instances may be reset, and if not why (said in the log). */
export type ResetVerdict = { reset: true } | { reset: false; why: string };

// jco's glue (1.35): the instance's handle tables are collected in this
// array, declared once in instantiate() (indented or not, as jco laid out
// the intrinsics it needed), whose third parameter is the instantiateCore we
// pass (source.ts puts our hooks on it).
const SIGNATURE = 'export function instantiate(getCoreModule, imports, instantiateCore = WebAssembly.instantiate) {';
const TABLES_DECLARATION = /^[ ]*const HANDLE_TABLES= \[\];$/gm;
const TABLE_MADE = /^\s*const handleTable(\d+) = \[T_FLAG, 0\];$/gm;
const TABLE_LISTED = /^\s*HANDLE_TABLES\[(\d+)\] = handleTable\1;$/gm;
const HOOK = 'instantiateCore.tugboat?.handleTables(HANDLE_TABLES);';

/** The glue with the hook added, or why it cannot be (a jco whose output differs). */
export function patchGlue(glue: string): { glue: string } | { why: string } {
  const unlike = { why: "jco's glue is not laid out as this Tugboat expects (its handle tables cannot be reached)" };
  if (glue.split(SIGNATURE).length !== 2) return unlike;
  const declarations = [...glue.matchAll(TABLES_DECLARATION)];
  // Inside instantiate(), whose parameter the hook names.
  if (declarations.length !== 1 || declarations[0]!.index! < glue.indexOf(SIGNATURE)) return unlike;
  // Every table the glue makes is listed, or an unlisted one could keep a handle across a reset.
  const made = new Set([...glue.matchAll(TABLE_MADE)].map((m) => m[1]));
  const listed = new Set([...glue.matchAll(TABLE_LISTED)].map((m) => m[1]));
  if (made.size !== listed.size || [...made].some((t) => !listed.has(t))) return unlike;
  const at = declarations[0]!.index! + declarations[0]![0].length;
  return { glue: `${glue.slice(0, at)} ${HOOK}${glue.slice(at)}` };
}

async function replaceReadOnly(path: string, data: string | Uint8Array): Promise<void> {
  await rm(path, { force: true });
  await writeFile(path, data, { mode: 0o444 });
}

/** Readies the entry in `dir` (the glue `entry` and its core modules) for resets, or leaves it as jco made it and says why not. */
export async function prepareReset(dir: string, entry: string): Promise<ResetVerdict> {
  const patched = patchGlue(await readFile(join(dir, entry), 'utf8'));
  if ('why' in patched) return { reset: false, why: patched.why };
  const modules: [string, Uint8Array][] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.wasm')).sort()) {
    let result: ReturnType<typeof exportState>;
    try {
      result = exportState(await readFile(join(dir, name)));
    } catch (err) {
      if (err instanceof WasmError) return { reset: false, why: `${name}: ${err.message}` };
      throw err;
    }
    if (result.report.unresettable !== undefined) return { reset: false, why: `${name}: ${result.report.unresettable}` };
    modules.push([name, result.bytes]);
  }
  for (const [name, bytes] of modules) await replaceReadOnly(join(dir, name), bytes);
  await replaceReadOnly(join(dir, entry), patched.glue);
  return { reset: true };
}
