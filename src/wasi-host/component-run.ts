// The guest's thread for a Wasm component (bundled on its own as
// dist/host/component.mjs, so that preview1 starts never load the shim, which
// starts its IO worker as soon as it is imported).
//
// The component was transpiled by jco outside the container (see
// src/linux-runtime/component-cache.ts) and its cache entry is mounted
// read-only at config.component.dir. Its files are Tugboat's own
// wasi:filesystem on the kernel-resolved host (./p2/), the rest is
// @bytecodealliance/preview2-shim's (never its filesystem); args and env are
// per-instance; exit is ours, never process.exit(); stdout/stderr are
// written synchronously to the container's descriptors, so nothing is left in
// a worker's message queue when the host ends the process.
import { openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parentPort } from 'node:worker_threads';
import { componentExit, componentOutcome } from './component-outcome.js';
import { envListToObject, type GuestConfig } from './guest-config.js';
import type { GuestOutcome } from './outcome.js';
import { createFilesystem, guestCwd, hostOutputStream, wasiImports, type OutputStream } from './p2/index.js';
import * as p2 from './p2/shim.js';

export interface ComponentWorkerInput {
  modulePath: string;
  config: GuestConfig;
}

/** A fresh open file description of stdio fd `fd` (as worker.ts does for preview1), else the fd itself. */
function ownFd(fd: number): number {
  try {
    return openSync(`/proc/self/fd/${fd}`, 'a');
  } catch {
    return fd;
  }
}

/**
 * A failed write is the stream's error, not the host's: the glue hands a
 * thrown non-Error value to the guest as stream-error (`closed` for a reader
 * that went away, so the guest sees EPIPE as a native program would).
 */
function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      throw { tag: 'closed' };
    }
  }
}

/** A wasi:io/streams output-stream that writes straight to `fd`. */
export function fdOutputStream(fd: number): OutputStream {
  return hostOutputStream({ write: (buf) => writeAll(fd, buf) });
}

type InputStream = typeof p2.io.streams.InputStream.prototype;

/**
 * preview2-shim's stdin, made on first use. jco's glue asks for stdin while
 * it instantiates, and the shim's stdin starts the shim's IO worker (a thread
 * booting Node, tens of ms on the start path): a component that never reads
 * its stdin should not pay for it. `instanceof InputStream` holds, as for
 * fdOutputStream.
 */
export function lazyStdin(make: () => InputStream = () => p2.cli.stdin.getStdin()): InputStream {
  let real: InputStream | undefined;
  const get = () => (real ??= make()) as unknown as Record<string, (...args: unknown[]) => unknown>;
  const stream = Object.create(p2.io.streams.InputStream.prototype) as Record<string | symbol, unknown>;
  for (const m of ['read', 'blockingRead', 'skip', 'blockingSkip', 'subscribe']) stream[m] = (...args: unknown[]) => get()[m]!(...args);
  stream[Symbol.dispose] = () => (real as unknown as { [Symbol.dispose]?: () => void } | undefined)?.[Symbol.dispose]?.();
  return stream as unknown as InputStream;
}

/** The import object's maker (the shape of preview2-shim's WASIShim, which the component worker used before). */
export interface ComponentImports {
  getImportObject(): Record<string, unknown>;
}

export function componentShim(config: GuestConfig): ComponentImports {
  const stdout = fdOutputStream(ownFd(1));
  const stderr = fdOutputStream(ownFd(2));
  const stdin = lazyStdin();
  const env = Object.entries(envListToObject(config.env));
  const cli = {
    ...p2.cli,
    environment: { getEnvironment: () => env, getArguments: () => config.args, initialCwd: () => guestCwd(config) },
    stdin: { getStdin: () => stdin },
    exit: componentExit,
    stdout: { getStdout: () => stdout },
    stderr: { getStderr: () => stderr },
  };
  const filesystem = createFilesystem(config);
  return { getImportObject: () => wasiImports({ cli, filesystem }) };
}

type Instantiate = (
  getCoreModule: (name: string) => Promise<WebAssembly.Module>,
  imports: object,
) => Promise<Record<string, unknown>>;

export async function loadComponent(config: GuestConfig, imports: object): Promise<Record<string, unknown>> {
  const component = config.component!;
  const mod = (await import(pathToFileURL(join(component.dir, component.entry)).href)) as { instantiate: Instantiate };
  const cache = new Map<string, Promise<WebAssembly.Module>>();
  const getCoreModule = (name: string) => {
    let m = cache.get(name);
    if (!m) cache.set(name, (m = WebAssembly.compile(readFileSync(join(component.dir, name)))));
    return m;
  };
  return mod.instantiate(getCoreModule, imports);
}

/** The `run` function of an instance's wasi:cli/run export. */
function runExport(instance: Record<string, unknown>): (() => unknown) | undefined {
  for (const [name, value] of Object.entries(instance)) {
    if (!/^(wasi:cli\/)?run(@|$)/.test(name) || typeof value !== 'object' || value === null) continue;
    const run = (value as { run?: unknown }).run;
    if (typeof run === 'function') return run as () => unknown;
  }
  return undefined;
}

async function runCommand(input: ComponentWorkerInput): Promise<GuestOutcome> {
  let imports: Record<string, unknown>;
  try {
    imports = componentShim(input.config).getImportObject();
  } catch (err) {
    // As for a core module: the guest's directories (or stdio) cannot be set up.
    return { kind: 'error', message: `cannot set up the guest: ${(err as Error).message ?? String(err)}` };
  }
  let instance: Record<string, unknown>;
  try {
    instance = await loadComponent(input.config, imports);
  } catch (err) {
    return { kind: 'link', message: `cannot instantiate component: ${(err as Error).message ?? String(err)}` };
  }
  return runCommandInstance(instance);
}

/** Runs an instance's wasi:cli/run; the guest's fate. */
export async function runCommandInstance(instance: Record<string, unknown>): Promise<GuestOutcome> {
  const run = runExport(instance);
  if (!run) return { kind: 'link', message: 'component exports no wasi:cli/run (not a command component)' };
  try {
    await run();
    return componentOutcome(undefined, true);
  } catch (err) {
    return componentOutcome(err, false);
  }
}

/** Messages of an HTTP component's worker to the main thread. */
export type HttpWorkerMessage = { kind: 'listening'; port: number } | { kind: 'request-failed'; message: string };

interface HttpTypes {
  Fields: new () => unknown;
  OutgoingResponse: new (headers: unknown) => { setStatusCode(code: number): void; body(): { write(): { blockingWriteAndFlush(b: Uint8Array): void; [Symbol.dispose]?(): void } } };
  OutgoingBody: { finish(body: unknown, trailers: undefined): void };
  ResponseOutparam: { set(param: unknown, response: { tag: 'ok' | 'err'; val: unknown }): void };
}

const INTERNAL_ERROR = new TextEncoder().encode('internal server error\n');

/**
 * Makes every request end with a response: a guest that traps, throws,
 * answers with an error (the shim would process.exit() on that) or never
 * answers gets a 500, and the server goes on. Returns the per-request
 * wrapper around a handler.
 */
export function guardedHandler(types: HttpTypes, handle: (request: unknown, out: unknown) => void, onError: (message: string) => void) {
  const set = types.ResponseOutparam.set.bind(types.ResponseOutparam);
  const answered = new WeakSet<object>();
  const respond500 = (out: unknown) => {
    const response = new types.OutgoingResponse(new types.Fields());
    response.setStatusCode(500);
    const body = response.body();
    set(out, { tag: 'ok', val: response });
    const stream = body.write();
    stream.blockingWriteAndFlush(INTERNAL_ERROR);
    stream[Symbol.dispose]?.();
    types.OutgoingBody.finish(body, undefined);
  };
  types.ResponseOutparam.set = (param, response) => {
    answered.add(param as object);
    if (response.tag === 'err') {
      onError(`guest answered with an error: ${JSON.stringify(response.val)}`);
      respond500(param);
      return;
    }
    set(param, response);
  };
  return (request: unknown, out: unknown) => {
    try {
      handle(request, out);
    } catch (err) {
      onError(err instanceof Error ? err.message : String(err));
    }
    if (!answered.has(out as object)) {
      try {
        respond500(out);
      } catch (err) {
        onError(`cannot send a 500: ${(err as Error).message}`);
      }
    }
  };
}

/**
 * wasi:http/incoming-handler, served like `wasmtime serve`: preview2-shim's
 * HTTP server (in its IO worker) on an internal loopback port, a fresh
 * instance per request (components built by componentize-js answer one
 * request per instance). The main thread proxies the public port to it.
 */
async function serveHttp(input: ComponentWorkerInput): Promise<GuestOutcome | undefined> {
  const component = input.config.component!;
  const imports = componentShim(input.config).getImportObject() as unknown as Record<string, unknown>;
  const types = imports['wasi:http/types'] as HttpTypes;
  let instantiate: (get: (n: string) => WebAssembly.Module, imports: object, core: (m: WebAssembly.Module, i: WebAssembly.Imports) => WebAssembly.Instance) => Record<string, unknown>;
  try {
    ({ instantiate } = (await import(pathToFileURL(join(component.dir, component.entry)).href)) as { instantiate: typeof instantiate });
  } catch (err) {
    return { kind: 'link', message: `cannot load component: ${(err as Error).message}` };
  }
  const modules = new Map<string, WebAssembly.Module>();
  const getCoreModule = (name: string) => {
    let m = modules.get(name);
    if (!m) modules.set(name, (m = new WebAssembly.Module(readFileSync(join(component.dir, name)))));
    return m;
  };
  // Synchronous instantiation: jco's async glue returns at once when nothing it awaits is a promise.
  const fresh = () => instantiate(getCoreModule, imports, (m, i) => new WebAssembly.Instance(m, i));
  const handlerOf: (inst: Record<string, unknown>) => ((req: unknown, out: unknown) => void) | undefined = (inst) => {
    for (const [name, value] of Object.entries(inst)) {
      if (/^(wasi:http\/)?incoming-?[hH]andler(@|$)/.test(name) && typeof (value as { handle?: unknown })?.handle === 'function') {
        return (value as { handle: (req: unknown, out: unknown) => void }).handle;
      }
    }
    return undefined;
  };
  try {
    if (!handlerOf(fresh())) return { kind: 'link', message: 'component exports no wasi:http/incoming-handler' };
  } catch (err) {
    return { kind: 'link', message: `cannot instantiate component: ${(err as Error).message}` };
  }
  const report = (message: string) => parentPort?.postMessage({ kind: 'request-failed', message } satisfies HttpWorkerMessage);
  const handle = guardedHandler(types, (request, out) => handlerOf(fresh())!(request, out), report);
  // (The package's types are the browser build's, which has no server.)
  const { HTTPServer } = p2.http as unknown as { HTTPServer: new (h: { handle: typeof handle }) => { listen(port: number, host: string): void; address(): unknown } };
  const server = new HTTPServer({ handle });
  server.listen(0, '127.0.0.1');
  const address = server.address() as { port: number };
  parentPort?.postMessage({ kind: 'listening', port: address.port } satisfies HttpWorkerMessage);
  return undefined;
}

export function runComponentWorker(): void {
  parentPort?.once('message', (input: ComponentWorkerInput) => {
    const run = input.config.component?.world === 'http' ? serveHttp(input) : runCommand(input);
    void run.then(
      (result) => result && parentPort?.postMessage(result),
      (err: unknown) => parentPort?.postMessage({ kind: 'error', message: (err as Error).message ?? String(err) } satisfies GuestOutcome),
    );
  });
}

runComponentWorker();
