// The opt-in node:wasi (uvwasi) backend (annotation io.tugboat.wasi=uvwasi),
// for container level only, where runc confines it: uvwasi follows symlinks
// anywhere and blocks its thread on every call. It runs on the main thread
// like Tugboat's own host; a signal ends the process by its default action.
import { openSync } from 'node:fs';
import { envListToObject, preopenRecord, type Preopen } from './guest-config.js';
import { isTrap, type GuestOutcome } from './outcome.js';

const WASI_ENOSYS = 52;

/** A fresh open file description of stdio fd `fd`, so a guest fd_close cannot close the host's own. */
function guestFd(fd: number, mode: 'r' | 'a'): number {
  try {
    return openSync(`/proc/self/fd/${fd}`, mode);
  } catch {
    return fd;
  }
}

export function runUvwasi(module: WebAssembly.Module, args: readonly string[], env: readonly string[], preopens: readonly Preopen[]): GuestOutcome {
  // Loaded here, not at the top: bundled, a static import would load node:wasi on every start.
  const { WASI } = process.getBuiltinModule('node:wasi');
  const wasi = new WASI({
    version: 'preview1',
    args: [...args],
    env: envListToObject(env),
    preopens: preopenRecord(preopens),
    returnOnExit: true,
    stdin: guestFd(0, 'r'),
    stdout: guestFd(1, 'a'),
    stderr: guestFd(2, 'a'),
  });
  // uvwasi's proc_raise signals the host process itself.
  const imports = { wasi_snapshot_preview1: { ...wasi.wasiImport, proc_raise: () => WASI_ENOSYS } };
  let instance: WebAssembly.Instance;
  try {
    instance = new WebAssembly.Instance(module, imports);
  } catch (err) {
    return { kind: 'link', message: `cannot instantiate module: ${(err as Error).message}` };
  }
  if (!('_start' in instance.exports)) return { kind: 'link', message: 'module exports no _start function (not a WASI command)' };
  try {
    return { kind: 'exit', code: wasi.start(instance) };
  } catch (err) {
    if (isTrap(err)) return { kind: 'trap', message: err.message };
    return { kind: 'error', message: (err as Error).message ?? String(err) };
  }
}
