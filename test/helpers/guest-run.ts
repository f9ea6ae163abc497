// Runs a preview1 module with Tugboat's host inside the test process
// (`process` level: no runc), with stdio in files the test reads back.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Guest, type GuestOptions, type GuestOutcome } from '../../src/wasi-host/preview1/index.js';

export const GUESTS = resolve(import.meta.dirname, '..', 'guests', 'out');
export const EXAMPLES = resolve(import.meta.dirname, '..', '..', 'examples', 'rust-wasm', 'out');

const modules = new Map<string, WebAssembly.Module>();
export function wasmModule(path: string): WebAssembly.Module {
  let m = modules.get(path);
  if (!m) modules.set(path, (m = new WebAssembly.Module(readFileSync(path))));
  return m;
}

export interface GuestRun {
  outcome: GuestOutcome;
  stdout: string;
  stderr: string;
}

export async function runGuest(module: string, args: string[], opts: Omit<GuestOptions, 'args' | 'env'> & { env?: string[]; stdin?: string } = {}): Promise<GuestRun> {
  const dir = mkdtempSync(join(tmpdir(), 'tugboat-guest-io-'));
  const out = openSync(join(dir, 'out'), 'w+');
  const err = openSync(join(dir, 'err'), 'w+');
  const inp = openSync('/dev/null', 'r');
  try {
    const g = new Guest({ ...opts, args: [module, ...args], env: opts.env ?? [], stdio: opts.stdio ?? [inp, out, err] });
    const outcome = await g.run(wasmModule(module));
    await g.close();
    return { outcome, stdout: readFileSync(join(dir, 'out'), 'utf8'), stderr: readFileSync(join(dir, 'err'), 'utf8') };
  } finally {
    for (const fd of [out, err, inp]) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** "name value" lines → object. */
export function lines(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of stdout.split('\n')) {
    const i = l.indexOf(' ');
    if (i > 0) out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}
