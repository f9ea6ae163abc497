// Wasm fixtures for the instrumenter's tests: WAT assembled by jco's
// wasm-tools, the real modules that ship in node_modules, and a runner that
// enters a guest through JSPI the way the shared host does.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { WASI } from 'node:wasi';

/** The repository root: the nearest directory above this file with a package-lock.json (also when bundled into build/bench). */
function repoRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) if (existsSync(join(dir, 'package-lock.json'))) return dir;
  throw new Error(`no repository above ${from}`);
}

export const REPO = repoRoot(import.meta.dirname);
export const RUST_EXAMPLES = join(REPO, 'examples', 'rust-wasm', 'out');

/** Assembles WAT text (every proposal wasm-tools knows). */
export async function wat(text: string): Promise<Uint8Array> {
  const { parse } = await import('@bytecodealliance/jco');
  return parse(text);
}

/** The example modules built from Rust by `make build`. */
export function rustExamples(): { name: string; bytes: Uint8Array }[] {
  return readdirSync(RUST_EXAMPLES)
    .filter((f) => f.endsWith('.wasm'))
    .map((f) => ({ name: f, bytes: readFileSync(join(RUST_EXAMPLES, f)) }));
}

/** Core modules shipped in npm dependencies (jco, componentize-js): large, real toolchain output. */
export function dependencyModules(): { name: string; bytes: Uint8Array }[] {
  const root = join(REPO, 'node_modules', '@bytecodealliance');
  const files = execFileSync('find', [root, '-name', '*.wasm', '-type', 'f'], { encoding: 'utf8' }).trim().split('\n');
  return files
    .map((f) => ({ name: f.slice(root.length + 1), bytes: readFileSync(f) }))
    .filter(({ bytes }) => bytes[4] === 1 && bytes[6] === 0); // core modules, not components
}

export interface GuestRun {
  code: number;
  /** The trap's message, if the guest trapped. */
  trap?: string;
  stdout: string;
  stderr: string;
  yields: number;
}

/**
 * Runs a preview1 command with node:wasi, its `_start` entered through
 * WebAssembly.promising and `tugboat.yield` provided as a Suspending function
 * that hands the event loop back every `suspendEvery` calls (never if 0).
 */
export async function runWasi(
  bytes: Uint8Array,
  args: string[],
  options: { preopens?: Record<string, string>; suspendEvery?: number } = {},
): Promise<GuestRun> {
  const dir = mkdtempSync(join(tmpdir(), 'tugboat-wasi-'));
  const out = openSync(join(dir, 'out'), 'w');
  const err = openSync(join(dir, 'err'), 'w');
  try {
    let exitCode = 0;
    const wasi = new WASI({ version: 'preview1', args, env: { GREETING: 'hi' }, preopens: options.preopens ?? {}, returnOnExit: true, stdout: out, stderr: err });
    const wasiImport = wasi.getImportObject().wasi_snapshot_preview1 as Record<string, (...a: number[]) => unknown>;
    let yields = 0;
    const every = options.suspendEvery ?? 0;
    const imports = {
      wasi_snapshot_preview1: {
        ...wasiImport,
        // node:wasi's own exit throws a private symbol; keep the code to report it.
        proc_exit: (code: number) => {
          exitCode = code;
          return wasiImport.proc_exit!(code);
        },
      },
      tugboat: {
        yield: new WebAssembly.Suspending(() => {
          yields++;
          return every > 0 && yields % every === 0 ? new Promise<void>((resolve) => setImmediate(resolve)) : undefined;
        }),
      },
    };
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), imports);
    const start = WebAssembly.promising(instance.exports._start as () => void);
    let finished: Promise<unknown> | undefined;
    wasi.start({ exports: { memory: instance.exports.memory, _start: () => void (finished = start()) } });
    let trap: string | undefined;
    try {
      await finished;
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) trap = e.message;
      else if (typeof e !== 'symbol') throw e; // a symbol: proc_exit unwinding
    }
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    return { code: exitCode, ...(trap === undefined ? {} : { trap }), stdout: read('out'), stderr: read('err'), yields };
  } finally {
    closeSync(out);
    closeSync(err);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The core modules a component embeds (section 1), nested components (section 4) included. */
export function coreModules(component: Uint8Array, start = 8, end = component.length, out: Uint8Array[] = []): Uint8Array[] {
  let p = start;
  while (p < end) {
    const id = component[p++]!;
    let size: number;
    [size, p] = leb128(component, p);
    if (id === 1) out.push(component.subarray(p, p + size));
    if (id === 4) coreModules(component, p + 8, p + size, out);
    p += size;
  }
  return out;
}

/** An unsigned LEB128 at `p` (a section's size): its value and the offset after it. */
export function leb128(bytes: Uint8Array, p: number): [number, number] {
  let value = 0;
  for (let shift = 0; ; shift += 7) {
    const b = bytes[p++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, p];
  }
}
