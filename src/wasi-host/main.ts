// The Tugboat WASI host: the init process of every Wasm container (started by
// tini, PID 1 of the container, which forwards signals and reports 128+N), and
// the runner of a guest directly on a root directory (GuestConfig.root).
//
// A core module runs on this, the main thread, with Tugboat's own preview1
// host (./preview1): blocking calls suspend the guest through JSPI, so there is
// no worker thread. No signal handler is installed: a signal ends the process
// by its default action and tini reports exactly 128+N. Command components
// run with preview2-shim on a worker (component-run.ts); an HTTP component is
// served by handler threads (./http) and keeps a handler for SIGTERM/SIGINT
// so that requests in flight can drain.
import { closeSync, openSync, writeSync, constants as fsc } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { wasmKind } from '../oci/wasm-kind.js';
import { EXIT_HOST_FAILURE, EXIT_NOT_RUNNABLE, signalExitStatus } from './exit-status.js';
import { decodeGuestConfig, GUEST_ENV_VAR, type GuestConfig } from './guest-config.js';
import { hardExit } from './hard-exit.js';
import { endThread, startThread } from '../thread-gate.js';
import { loadModule } from './module-load.js';
import { ending, type GuestOutcome } from './outcome.js';
import { defaultPreopens, Guest } from './preview1/guest.js';
import { sys } from './preview1/sys.js';

const SIGUSR1 = 10;

function say(message: string): void {
  try {
    writeSync(2, `tugboat: ${message}\n`);
  } catch {
    // stderr is gone; the status still tells.
  }
}

/** Ends a core-module run: nothing else runs on this process, so a plain exit is enough. */
function end(status: number, message?: string): never {
  if (message !== undefined) say(message);
  process.exit(status);
}

async function main(): Promise<void> {
  let config: GuestConfig;
  try {
    config = decodeGuestConfig(process.env[GUEST_ENV_VAR]);
  } catch (err) {
    end(EXIT_HOST_FAILURE, (err as Error).message);
  }
  if (config.component) return runComponent(config);
  return runModule(config);
}

async function runModule(config: GuestConfig): Promise<void> {
  // Node runs with --disable-sigusr1 (it never opens an inspector), which
  // blocks SIGUSR1; unblocked, it ends the process (138) like other signals.
  sys().unblockSignal(SIGUSR1);
  const root = config.root ?? '/';
  const cwd = config.cwd ?? (config.root ? '/' : process.cwd());
  // The root is the configuration's, never the guest's: the one path opened by name.
  const rootFd = openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY);
  const loaded = loadModule({ fd: rootFd, mode: 'in-root' }, config.module ?? config.args[0] ?? '', config.env, cwd);
  closeSync(rootFd);
  if ('status' in loaded) end(loaded.status, loaded.message);
  const { path, bytes } = loaded;
  const kind = wasmKind(bytes);
  if (kind === null) end(EXIT_NOT_RUNNABLE, `${path}: not a WebAssembly binary (bad magic or header)`);
  if (kind === 'component') {
    // Components are transpiled before the container starts (config.component);
    // one reaching here was not the container's entrypoint (e.g. exec'd).
    end(EXIT_NOT_RUNNABLE, `${path}: is a Wasm component; components run only as a container's entrypoint`);
  }
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(bytes);
  } catch (err) {
    end(EXIT_NOT_RUNNABLE, `${path}: invalid wasm module: ${(err as Error).message}`);
  }
  const preopens = config.preopens ?? defaultPreopens(cwd);
  let outcome: GuestOutcome;
  if (config.backend === 'uvwasi') {
    // node:wasi is no sandbox: only where runc confines it (container level, root "/").
    if (root !== '/') end(EXIT_HOST_FAILURE, 'the uvwasi backend runs only inside a container (root "/")');
    const { runUvwasi } = await import('./uvwasi.js');
    outcome = runUvwasi(module, config.args, config.env, preopens);
  } else {
    const guest = new Guest({ args: config.args, env: config.env, root, cwd, preopens });
    outcome = await guest.run(module);
    await guest.close();
  }
  const e = ending(outcome, path);
  end(e.status, e.message);
}

// ---- Components ----

/** What runs the component (a worker, or an HTTP component's threads): stopped (bounded) before the process ends. */
let stopComponent: (() => Promise<void>) | undefined;

/**
 * C exit() while a worker is booting or running JavaScript can crash in V8's
 * teardown (observed: SIGSEGV), and process.exit() would wait for a worker
 * blocked in a call: stop it first (bounded), then exit at once.
 */
async function finishComponent(status: number, message?: string): Promise<never> {
  if (message !== undefined) say(message);
  await stopComponent?.();
  hardExit(status);
}

async function stopWorker(worker: Worker, graceMs = 1000): Promise<void> {
  worker.removeAllListeners('exit');
  await endThread(worker, graceMs);
}

/** The worker's single report, or a host failure if it dies without one. */
async function outcomeOf(worker: Worker): Promise<GuestOutcome> {
  return new Promise<GuestOutcome>((resolve) => {
    worker.once('message', (msg: GuestOutcome) => resolve(msg));
    worker.once('error', (err) => resolve({ kind: 'error', message: `host failure: ${err.message}` }));
    worker.once('exit', (code) => resolve({ kind: 'error', message: `component worker ended unexpectedly with code ${code}` }));
  });
}

/**
 * A Wasm component, transpiled outside the container (config.component): a
 * command runs on its own worker (dist/host/component.mjs, beside this file)
 * with preview2-shim; its fate maps to the same statuses as a module's.
 */
async function runComponent(config: GuestConfig): Promise<void> {
  const path = config.args[0] ?? 'component';
  if (config.component?.world === 'http') return serveComponent(config, path);
  const worker = startThread(new URL('./component.mjs', import.meta.url), { stdout: false, stderr: false, env: {} });
  stopComponent = () => stopWorker(worker);
  const result = outcomeOf(worker);
  worker.postMessage({ modulePath: path, config });
  // stdout and stderr were written synchronously by the worker: nothing is lost.
  const e = ending(await result, path);
  return finishComponent(e.status, e.message);
}

/**
 * An HTTP component: served until a signal. SIGTERM/SIGINT stop accepting,
 * let the requests in flight finish, then end with 128+N (a signal while it
 * starts ends it once it has).
 */
async function serveComponent(config: GuestConfig, path: string): Promise<void> {
  // Loaded only here: a preview1 start must not pay for the HTTP server.
  const { HttpStartError, serveHttpComponent } = await import('./http/serve.js');
  const { httpServeSettings } = await import('./http/settings.js');
  let drain: (() => Promise<void>) | undefined;
  let signalled: number | undefined;
  const stopOn = (status: number) => void (drain ?? (() => Promise.resolve()))().then(() => finishComponent(status));
  for (const name of ['SIGTERM', 'SIGINT'] as const) {
    process.once(name, () => {
      signalled = signalExitStatus(osConstants.signals[name]);
      if (drain) stopOn(signalled);
    });
  }
  const settings = httpServeSettings(config);
  try {
    const service = await serveHttpComponent({ kind: 'container', config }, {
      ...settings,
      onRequestFailed: (message) => say(`${path}: request failed (answered 500): ${message}`),
    });
    stopComponent = () => service.stop();
    drain = () => service.drain();
    void service.failed.then((outcome) => {
      const e = ending(outcome, path);
      return finishComponent(e.status, e.message);
    });
  } catch (err) {
    if (err instanceof HttpStartError) {
      const e = ending(err.outcome, path);
      return finishComponent(e.status, e.message);
    }
    return finishComponent(EXIT_HOST_FAILURE, `${path}: cannot serve HTTP on port ${settings.port}: ${(err as Error).message}`);
  }
  if (signalled !== undefined) stopOn(signalled);
}

void main();
