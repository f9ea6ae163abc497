// The guest's thread: one node:wasi preview1 instance.
import { openSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { WASI } from 'node:wasi';
import { defaultPreopens, envListToObject, preopenRecord, type GuestConfig } from './guest-config.js';

export interface WorkerInput {
  module: WebAssembly.Module;
  modulePath: string;
  config: GuestConfig;
}

export type WorkerResult =
  | { kind: 'exit'; code: number }
  | { kind: 'trap'; message: string }
  | { kind: 'link'; message: string }
  | { kind: 'error'; message: string };

const WASI_ENOSYS = 52;

/**
 * A guest may fd_close its stdio, and uvwasi would then close the host's own
 * descriptors. Give it fresh open file descriptions of the same files instead
 * (reopening /proc/self/fd/N also drops an inherited O_NONBLOCK, which guests
 * treat as fatal EAGAIN). Sockets cannot be reopened that way; they are passed
 * through as they are.
 */
function guestFd(fd: number, mode: 'r' | 'a'): number {
  try {
    return openSync(`/proc/self/fd/${fd}`, mode);
  } catch {
    return fd;
  }
}

function isTrap(err: unknown): err is Error {
  return err instanceof WebAssembly.RuntimeError || (err instanceof RangeError && /call stack/i.test(err.message));
}

function run(input: WorkerInput): WorkerResult {
  const { module, config } = input;
  const wasi = new WASI({
    version: 'preview1',
    args: config.args,
    env: envListToObject(config.env),
    // node:wasi cannot enforce `readonly`; at container level a read-only
    // bind mount does (see the container engine).
    preopens: preopenRecord(config.preopens ?? defaultPreopens(process.cwd())),
    returnOnExit: true,
    stdin: guestFd(0, 'r'),
    stdout: guestFd(1, 'a'),
    stderr: guestFd(2, 'a'),
  });
  // proc_raise would signal the host process itself (uvwasi calls kill on its
  // own pid); a guest must never do that.
  const imports = { wasi_snapshot_preview1: { ...wasi.wasiImport, proc_raise: () => WASI_ENOSYS } };
  let instance: WebAssembly.Instance;
  try {
    instance = new WebAssembly.Instance(module, imports);
  } catch (err) {
    return { kind: 'link', message: `cannot instantiate module: ${(err as Error).message}` };
  }
  if (!('_start' in instance.exports)) {
    return { kind: 'link', message: 'module exports no _start function (not a WASI command)' };
  }
  try {
    return { kind: 'exit', code: wasi.start(instance) };
  } catch (err) {
    if (isTrap(err)) return { kind: 'trap', message: err.message };
    return { kind: 'error', message: (err as Error).message ?? String(err) };
  }
}

export function runWorker(): void {
  parentPort?.once('message', (input: WorkerInput) => {
    parentPort?.postMessage(run(input));
  });
}
