// The Tugboat WASI host: the init process of every Wasm container.
//
// runc has already set up namespaces, cgroups, mounts and pivot_root; this
// process only loads the module named by the guest's argv[0] and runs it. The
// guest runs on a worker thread so that the main thread stays free to react to
// signals (PID 1 ignores any signal it has no handler for, and a handler on a
// thread busy in Wasm would never run).
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isMainThread, Worker } from 'node:worker_threads';
import { wasmKind } from '../oci/wasm-kind.js';
import { decodeGuestConfig, GUEST_ENV_VAR, type GuestConfig } from './guest-config.js';
import {
  EXIT_HOST_FAILURE,
  EXIT_MODULE_NOT_FOUND,
  EXIT_NOT_RUNNABLE,
  EXIT_TRAP,
  guestExitStatus,
  signalExitStatus,
} from './exit-status.js';
import { hardExit } from './hard-exit.js';
import { resolveModulePath } from './module-path.js';
import { runWorker, type WorkerInput, type WorkerResult } from './worker.js';

const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

function fail(status: number, message: string): never {
  process.stderr.write(`tugboat: ${message}\n`);
  hardExit(status);
}

function installSignalHandlers(): void {
  // Preview1 has no way to deliver a signal to a guest, so a signal ends the
  // container with the status a killed process would have.
  for (const name of FORWARDED_SIGNALS) {
    process.on(name, () => hardExit(signalExitStatus(osConstants.signals[name])));
  }
}

function loadModule(config: GuestConfig): { path: string; bytes: Buffer } {
  const first = config.args[0] ?? '';
  const path = resolveModulePath(first, config.env);
  if (path === undefined) fail(EXIT_MODULE_NOT_FOUND, `${first}: wasm module not found`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    fail(EXIT_MODULE_NOT_FOUND, `${path}: cannot read wasm module: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const kind = wasmKind(bytes);
  if (kind === null) fail(EXIT_NOT_RUNNABLE, `${path}: not a WebAssembly binary (bad magic or header)`);
  if (kind === 'component') {
    fail(EXIT_NOT_RUNNABLE, `${path}: is a Wasm component; components are not supported yet (core modules only)`);
  }
  return { path, bytes };
}

async function main(): Promise<void> {
  installSignalHandlers();
  let config: GuestConfig;
  try {
    config = decodeGuestConfig(process.env[GUEST_ENV_VAR]);
  } catch (err) {
    fail(EXIT_HOST_FAILURE, (err as Error).message);
  }
  // Booting a worker is the slowest step of a cold start (~25 ms): start it
  // first, then load and compile the module on this thread meanwhile. The
  // compiled module reaches the worker without copying code.
  const worker = new Worker(new URL(import.meta.url), { stdout: false, stderr: false, env: {} });
  const { path, bytes } = loadModule(config);
  const compiling = WebAssembly.compile(bytes).catch((err: unknown) =>
    fail(EXIT_NOT_RUNNABLE, `${path}: invalid wasm module: ${(err as Error).message}`),
  );
  const result = new Promise<WorkerResult>((resolve, reject) => {
    worker.once('message', (msg: WorkerResult) => resolve(msg));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`worker ended unexpectedly with code ${code}`)));
  });
  const input: WorkerInput = { module: await compiling, modulePath: path, config };
  worker.postMessage(input);
  let outcome: WorkerResult;
  try {
    outcome = await result;
  } catch (err) {
    fail(EXIT_HOST_FAILURE, `host failure: ${(err as Error).message}`);
  }
  if (outcome.kind === 'exit') hardExit(guestExitStatus(outcome.code));
  if (outcome.kind === 'trap') fail(EXIT_TRAP, `wasm trap in ${path}: ${outcome.message}`);
  fail(outcome.kind === 'link' ? EXIT_NOT_RUNNABLE : EXIT_HOST_FAILURE, `${path}: ${outcome.message}`);
}

if (isMainThread) {
  void main();
} else {
  runWorker();
}
