// The server of an HTTP component: N handler threads, each with its own
// HTTP server (wire/) on the same port (SO_REUSEPORT, the kernel spreads the
// connections) and its own pool of instances (thread.ts). The component's
// core modules are compiled once, here, and shared by every thread (a
// WebAssembly.Module posted to a worker shares its compiled code).
//
// One small API for whoever hosts the guest: the container-level host
// (main.ts), and the shared hosts (pod, process:
// shared/hosted-http-component.ts), which give the component as a source
// (source.ts) of their own.
//
// node:worker_threads is loaded when a server starts (thread-gate.ts):
// esbuild hoists static imports of Node modules to the top of host.mjs, and a
// preview1 start must not load more than it needs.
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { endThread, startThread } from '../../thread-gate.js';
import type { GuestOutcome } from '../outcome.js';
import type { PoolStats } from './pool.js';
import type { HttpComponentSource } from './source.js';

export interface HttpServeOptions {
  port: number;
  /** Address to listen on (default: every address of the network namespace). */
  host?: string;
  /** Handler threads (each with its own server and pool). */
  threads: number;
  /** Instances alive at once per thread. */
  pool: number;
  /** May an instance serve many requests, one after another (the component declares it)? */
  reuse: boolean;
  /** Put a one-request instance back to its state when made instead of making another (the transpile allows it: reset.ts). */
  reset?: boolean;
  /** A request the guest failed (answered 500, or cut once its answer had started). */
  onRequestFailed(message: string): void;
  /** The handler thread's script, a URL or a path (default: http-worker.mjs beside the bundled host). */
  workerUrl?: URL | string;
}

export interface HttpService {
  /** The port listened on (the kernel's choice when 0 was asked for). */
  readonly port: number;
  readonly threads: number;
  /** Settles if a handler thread dies: the server cannot go on (a host failure). */
  readonly failed: Promise<GuestOutcome>;
  /** Stops accepting, lets the requests in flight finish on every thread; resolves when none is left. */
  drain(): Promise<void>;
  /** Ends the threads now (bounded). */
  stop(): Promise<void>;
  /** Each thread's pool and requests in flight. */
  stats(): Promise<{ pool: ThreadStats; inFlight: number }[]>;
}

/** A handler thread's pool, the resources its guests hold, and why its instances are not reset (when refused). */
export type ThreadStats = PoolStats & { resources: number; resetRefused?: string; resetCopies?: string };

/** What a handler thread is started with. */
export interface HandlerStart {
  component: HttpComponentSource;
  port: number;
  host?: string;
  pool: number;
  reuse: boolean;
  reset?: boolean;
}
export type HandlerCommand = { kind: 'drain' } | { kind: 'stats' };
export type HandlerMessage =
  | { kind: 'listening'; port: number }
  | { kind: 'failed'; outcome: GuestOutcome }
  | { kind: 'request-failed'; message: string }
  | { kind: 'drained' }
  | { kind: 'stats'; stats: ThreadStats; inFlight: number };

/** The handler thread's script: beside this file in the bundles, else the build's. */
function defaultWorkerUrl(): URL {
  for (const rel of ['./http-worker.mjs', '../../../dist/host/http-worker.mjs']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url;
  }
  throw new Error('cannot find the HTTP handler thread (http-worker.mjs); is Tugboat built?');
}

/** Every core module of the component's transpiled entry, compiled once (off this thread's hot path: compile is async). */
async function compileModules(dir: string): Promise<Map<string, WebAssembly.Module>> {
  const names = readdirSync(dir).filter((n) => n.endsWith('.wasm'));
  const compiled = await Promise.all(names.map(async (n) => [n, await WebAssembly.compile(await readFile(join(dir, n)))] as const));
  return new Map(compiled);
}

class HandlerThread {
  readonly worker: Worker;
  readonly #waiters = new Map<string, ((m: HandlerMessage) => void)[]>();
  constructor(worker: Worker, onRequestFailed: (m: string) => void) {
    this.worker = worker;
    worker.on('message', (m: HandlerMessage) => {
      if (m.kind === 'request-failed') onRequestFailed(m.message);
      const ws = this.#waiters.get(m.kind);
      if (ws?.length) ws.shift()!(m);
    });
  }
  next<K extends HandlerMessage['kind']>(kind: K): Promise<Extract<HandlerMessage, { kind: K }>> {
    return new Promise((resolve) => {
      const ws = this.#waiters.get(kind) ?? [];
      ws.push(resolve as (m: HandlerMessage) => void);
      this.#waiters.set(kind, ws);
    });
  }
  /** Listening, or the reason it never will. */
  started(): Promise<{ port: number } | { outcome: GuestOutcome }> {
    return Promise.race([
      this.next('listening').then((m) => ({ port: m.port })),
      this.next('failed').then((m) => ({ outcome: m.outcome })),
      new Promise<{ outcome: GuestOutcome }>((resolve) => {
        this.worker.once('error', (err) => resolve({ outcome: { kind: 'error', message: `handler thread failed: ${err.message}` } }));
        this.worker.once('exit', (code) => resolve({ outcome: { kind: 'error', message: `handler thread ended with code ${code} while starting` } }));
      }),
    ]);
  }
  async stop(graceMs = 1000): Promise<void> {
    this.worker.removeAllListeners('exit');
    await endThread(this.worker, graceMs);
  }
}

/** Thrown when the component cannot be served: `outcome` says why (a link error is the container's 126). */
export class HttpStartError extends Error {
  constructor(readonly outcome: GuestOutcome) {
    super('message' in outcome ? outcome.message : outcome.kind);
  }
}

/** The source with every core module compiled: a container's are compiled here, a shared host's were by its cache. */
async function compiled(source: HttpComponentSource): Promise<HttpComponentSource> {
  if (source.kind === 'hosted') return source;
  const component = source.config.component;
  if (!component) throw new HttpStartError({ kind: 'link', message: 'not a component' });
  const modules = await compileModules(component.dir).catch((err: Error) => {
    throw new HttpStartError({ kind: 'link', message: `cannot compile component: ${err.message}` });
  });
  return { ...source, modules };
}

/**
 * Serves the HTTP component of `source` until drained. Rejects with an
 * HttpStartError when it cannot be instantiated or the port not listened on.
 */
export async function serveHttpComponent(source: HttpComponentSource, options: HttpServeOptions): Promise<HttpService> {
  const url = options.workerUrl ?? defaultWorkerUrl();
  const threads: HandlerThread[] = [];
  // Watched from the moment it exists: a thread that dies while booting must not be an unheard 'error'.
  const newThread = () => {
    const thread = new HandlerThread(startThread(url, { stdout: false, stderr: false }), options.onRequestFailed);
    threads.push(thread);
    return { thread, started: thread.started() };
  };
  // The first thread boots and loads its bundle (~50 ms) while the core
  // modules compile (a componentize-js component's 14 MB: ~90 ms with the
  // read); it gets its start once they are compiled.
  const first = newThread();
  const startHandler = async (t: ReturnType<typeof newThread>, component: HttpComponentSource, port: number): Promise<number> => {
    const start: HandlerStart = { component, port, pool: options.pool, reuse: options.reuse, ...(options.reset ? { reset: true } : {}), ...(options.host ? { host: options.host } : {}) };
    t.thread.worker.postMessage(start);
    const r = await t.started;
    if ('outcome' in r) throw new HttpStartError(r.outcome);
    return r.port;
  };
  let port: number;
  try {
    const component = await compiled(source);
    // The first thread learns the port (0: the kernel's choice), the others
    // share it. They start after it listens even when the port is given: the
    // first answer comes once one thread listens (SO_REUSEPORT), and starting
    // all at once made it no sooner (measured: they only competed for the
    // cores with the compile).
    port = await startHandler(first, component, options.port);
    await Promise.all(Array.from({ length: Math.max(0, options.threads - 1) }, () => startHandler(newThread(), component, port)));
  } catch (err) {
    await Promise.all(threads.map((t) => t.stop()));
    throw err;
  }
  const failed = new Promise<GuestOutcome>((resolve) => {
    threads.forEach((t, i) => {
      t.worker.once('error', (err) => resolve({ kind: 'error', message: `handler thread ${i} failed: ${err.message}` }));
      t.worker.once('exit', (code) => resolve({ kind: 'error', message: `handler thread ${i} ended unexpectedly with code ${code}` }));
    });
  });
  return {
    port,
    threads: threads.length,
    failed,
    async drain() {
      await Promise.all(
        threads.map((t) => {
          const drained = Promise.race([t.next('drained'), new Promise<void>((r) => t.worker.once('exit', () => r()))]);
          t.worker.postMessage({ kind: 'drain' } satisfies HandlerCommand);
          return drained;
        }),
      );
      await Promise.all(threads.map((t) => t.stop()));
    },
    async stop() {
      await Promise.all(threads.map((t) => t.stop()));
    },
    async stats() {
      return Promise.all(
        threads.map(async (t) => {
          const reply = t.next('stats');
          t.worker.postMessage({ kind: 'stats' } satisfies HandlerCommand);
          const m = await reply;
          return { pool: m.stats, inFlight: m.inFlight };
        }),
      );
    },
  };
}
