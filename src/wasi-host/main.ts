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
import type { HttpProxy } from './component-http.js';
import type { HttpWorkerMessage } from './component-run.js';
import { runWorker, type WorkerInput, type WorkerResult } from './worker.js';

const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/** Before the guest's thread exists: report and end at once. */
function fail(status: number, message: string): never {
  process.stderr.write(`tugboat: ${message}\n`);
  hardExit(status);
}

/**
 * Once the guest's thread exists: C exit() while that thread is booting or
 * running JavaScript can crash in V8's teardown (observed: SIGSEGV), so stop
 * it first (bounded: a thread blocked in a system call cannot be stopped).
 */
async function finish(status: number, message?: string): Promise<never> {
  if (message !== undefined) process.stderr.write(`tugboat: ${message}\n`);
  if (guestWorker) await stopWorker(guestWorker);
  hardExit(status);
}

/** The guest's thread, once started: stopped (briefly) before any exit. */
let guestWorker: Worker | undefined;

function installSignalHandlers(): void {
  // Preview1 has no way to deliver a signal to a guest, so a signal ends the
  // container with the status a killed process would have. A guest blocked in
  // a system call cannot be stopped; after a short grace C exit() ends the
  // process anyway (its thread is then in the kernel, not in V8).
  for (const name of FORWARDED_SIGNALS) {
    process.on(name, () => {
      const status = signalExitStatus(osConstants.signals[name]);
      void (guestWorker ? stopWorker(guestWorker, 100) : Promise.resolve()).then(() => hardExit(status));
    });
  }
}

type Loaded = { path: string; bytes: Buffer } | { status: number; message: string };

function loadModule(config: GuestConfig): Loaded {
  const first = config.args[0] ?? '';
  const path = config.module ?? resolveModulePath(first, config.env);
  if (path === undefined) return { status: EXIT_MODULE_NOT_FOUND, message: `${first}: wasm module not found` };
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    return { status: EXIT_MODULE_NOT_FOUND, message: `${path}: cannot read wasm module: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  }
  const kind = wasmKind(bytes);
  if (kind === null) return { status: EXIT_NOT_RUNNABLE, message: `${path}: not a WebAssembly binary (bad magic or header)` };
  if (kind === 'component') {
    // Components are transpiled before the container starts (config.component);
    // one reaching here was not the container's entrypoint (e.g. exec'd).
    return { status: EXIT_NOT_RUNNABLE, message: `${path}: is a Wasm component; components run only as a container's entrypoint` };
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
  if (config.component) return runComponent(config);
  // Booting a worker is the slowest step of a cold start (~25 ms): start it
  // first, then load and compile the module on this thread meanwhile. The
  // compiled module reaches the worker without copying code.
  const worker = new Worker(new URL(import.meta.url), { stdout: false, stderr: false, env: {} });
  guestWorker = worker;
  const loaded = loadModule(config);
  if ('status' in loaded) return finish(loaded.status, loaded.message);
  const { path, bytes } = loaded;
  const result = outcomeOf(worker, 'worker');
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(bytes);
  } catch (err) {
    return finish(EXIT_NOT_RUNNABLE, `${path}: invalid wasm module: ${(err as Error).message}`);
  }
  const input: WorkerInput = { module, modulePath: path, config };
  worker.postMessage(input);
  return finishWith(await result, path);
}

/** The guest's single report, or a host failure if its thread dies without one. */
async function outcomeOf(worker: Worker, what: string): Promise<WorkerResult | Error> {
  try {
    return await new Promise<WorkerResult>((resolve, reject) => {
      worker.once('message', (msg: WorkerResult) => resolve(msg));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`${what} ended unexpectedly with code ${code}`)));
    });
  } catch (err) {
    return err as Error;
  }
}

/** The guest's fate as the container's exit status (README, Exit statuses). */
function finishWith(outcome: WorkerResult | Error, path: string): Promise<never> {
  if (outcome instanceof Error) return finish(EXIT_HOST_FAILURE, `host failure: ${outcome.message}`);
  if (outcome.kind === 'exit') return finish(guestExitStatus(outcome.code));
  if (outcome.kind === 'trap') return finish(EXIT_TRAP, `wasm trap in ${path}: ${outcome.message}`);
  return finish(outcome.kind === 'link' ? EXIT_NOT_RUNNABLE : EXIT_HOST_FAILURE, `${path}: ${outcome.message}`);
}

/**
 * A Wasm component, transpiled outside the container (config.component):
 * it runs on its own worker (dist/host/component.mjs, beside this file)
 * with preview2-shim; its fate maps to the same statuses as a module's.
 */
async function runComponent(config: GuestConfig): Promise<void> {
  const path = config.args[0] ?? 'component';
  const worker = new Worker(new URL('./component.mjs', import.meta.url), { stdout: false, stderr: false, env: {} });
  guestWorker = worker;
  if (config.component?.world === 'http') return serveComponent(config, path, worker);
  const result = outcomeOf(worker, 'component worker');
  worker.postMessage({ modulePath: path, config });
  // preview2-shim's IO worker may still be busy (a finalizer closing a file);
  // finish() stops the workers before C exit(). stdout and stderr were
  // written synchronously, so nothing is lost.
  return finishWith(await result, path);
}

/** Stops the workers (bounded) before C exit(); see runComponent. */
async function stopWorker(worker: Worker, graceMs = 1000): Promise<void> {
  worker.removeAllListeners('exit');
  await Promise.race([worker.terminate(), new Promise((r) => setTimeout(r, graceMs).unref())]);
}

/**
 * An HTTP component: served until a signal. SIGTERM/SIGINT stop accepting,
 * let the requests in flight finish, then end with 128+N.
 */
async function serveComponent(config: GuestConfig, path: string, worker: Worker): Promise<void> {
  // Loaded only here: a preview1 start must not pay for node:http.
  const { httpPort, startHttpProxy } = await import('./component-http.js');
  let proxy: HttpProxy | undefined;
  worker.on('message', (msg: HttpWorkerMessage | WorkerResult) => {
    if (msg.kind === 'listening') {
      void startHttpProxy(httpPort(config), msg.port, () => undefined, (err) => void finish(EXIT_HOST_FAILURE, `cannot serve HTTP on port ${httpPort(config)}: ${err.message}`)).then((p) => (proxy = p));
    } else if (msg.kind === 'request-failed') {
      process.stderr.write(`tugboat: ${path}: request failed (answered 500): ${msg.message}\n`);
    } else if (msg.kind === 'link') {
      void finish(EXIT_NOT_RUNNABLE, `${path}: ${msg.message}`);
    } else if (msg.kind === 'error' || msg.kind === 'trap') {
      void finish(EXIT_HOST_FAILURE, `${path}: ${msg.message}`);
    }
  });
  worker.once('error', (err) => void finish(EXIT_HOST_FAILURE, `host failure: ${err.message}`));
  worker.once('exit', (code) => void finish(EXIT_HOST_FAILURE, `component worker ended unexpectedly with code ${code}`));
  worker.postMessage({ modulePath: path, config });
  for (const name of ['SIGTERM', 'SIGINT'] as const) {
    process.removeAllListeners(name);
    process.once(name, () => {
      const status = signalExitStatus(osConstants.signals[name]);
      void (proxy ? proxy.drain() : Promise.resolve()).then(() => stopWorker(worker)).then(() => hardExit(status));
    });
  }
}

if (isMainThread) {
  void main();
} else {
  runWorker();
}
