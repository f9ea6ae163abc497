// An HTTP component guest in a shared host (pod and process isolation):
// its incoming-handler served by preview2-shim's HTTP server on an internal
// loopback port of the guest's thread, one fresh instance per request; the
// host side proxies the public port to it (http-proxy.ts). A
// `container`-level component is served by ../http/ (no proxy, pooled
// instances); moving shared hosts onto that server is the next step (it
// needs descriptors instead of paths for the component's files, and the
// host's instrumented module cache).
import { parentPort } from 'node:worker_threads';
import type { GuestOutcome } from '../outcome.js';
import * as p2 from '../p2/shim.js';

/** Messages of an HTTP component's worker to the main thread. */
export type HttpWorkerMessage = { kind: 'listening'; port: number } | { kind: 'request-failed'; message: string };

export interface HttpTypes {
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
export function guardedHandler(types: HttpTypes, handle: (request: unknown, out: unknown) => unknown, onError: (message: string) => void) {
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
  const settle = (out: unknown) => {
    if (answered.has(out as object)) return;
    try {
      respond500(out);
    } catch (err) {
      onError(`cannot send a 500: ${(err as Error).message}`);
    }
  };
  const failed = (err: unknown) => onError(err instanceof Error ? err.message : String(err));
  // An HTTP component is transpiled with a JSPI-async handle (so that the
  // container level's server can suspend it): its result is then a promise.
  return (request: unknown, out: unknown) => {
    let result: unknown;
    try {
      result = handle(request, out);
    } catch (err) {
      failed(err);
    }
    if (result instanceof Promise) {
      result.then(
        () => settle(out),
        (err: unknown) => {
          failed(err);
          settle(out);
        },
      );
    } else {
      settle(out);
    }
  };
}

/** The `handle` of an instance's wasi:http/incoming-handler export. */
function handlerOf(inst: Record<string, unknown>): ((req: unknown, out: unknown) => unknown) | undefined {
  for (const [name, value] of Object.entries(inst)) {
    if (/^(wasi:http\/)?incoming-?[hH]andler(@|$)/.test(name) && typeof (value as { handle?: unknown })?.handle === 'function') {
      return (value as { handle: (req: unknown, out: unknown) => unknown }).handle;
    }
  }
  return undefined;
}

/**
 * Serves `fresh()`'s incoming-handler, one fresh instance per request, on an
 * internal loopback port of preview2-shim's HTTP server, and tells the
 * thread's parent the port (`listening`) and every failed request; the
 * parent proxies the public port to it. Used by every level's component
 * thread (this file's and hosted-component-worker.ts).
 */
export function serveIncomingHandler(types: HttpTypes, fresh: () => Record<string, unknown>): GuestOutcome | undefined {
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
