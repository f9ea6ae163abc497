// One handler thread of an HTTP component: its own HTTP server (wire/) on
// the shared port (SO_REUSEPORT: the kernel spreads connections over the
// threads), its own pool of instances, and the guest's handler called right
// here, on the thread that owns the instance: no proxy, no other thread on a
// request's path.
import * as p2 from '../p2/shim.js';
import { trapMessage } from '../component-outcome.js';
import { isTrap } from '../outcome.js';
import { TableRoles } from './abi.js';
import { directHandle, type DirectHandle } from './direct-handle.js';
import type { CallDone } from './handler-loop.js';
import { InstanceDrops } from './drops.js';
import { disposer, wasiIo, type ShimIo } from './io.js';
import { InstancePool, type PoolStats } from './pool.js';
import { Reps, SlotList, type RepScope } from './reps.js';
import { componentMaker, type ComponentMaker, type HttpComponentSource } from './source.js';
import { openPageTrackers, type PageTrackers } from './page-trackers.js';
import { InstanceWatch, MemoryCopies, type InstanceState, type PageTracker } from './reset.js';
import { FdLedger } from '../p2/fd-ledger.js';
import { ResponseEvents, wasiHttp, type Exchange } from './types.js';
import type { WireRequest } from './wire/request.js';
import type { WireResponse } from './wire/response.js';
import { WireServer } from './wire/server.js';

export interface ThreadServeOptions {
  /** The component, and the guest whose imports it gets (source.ts). */
  component: HttpComponentSource;
  port: number;
  /** Address to listen on (default: every address, as Node's listen). */
  host?: string;
  /** Instances alive at once on this thread. */
  pool: number;
  /** May an instance serve more than one request (the component declares it)? */
  reuse: boolean;
  /**
   * Instances that serve one request each are put back to their state when
   * made instead of made again (reset.ts), where the transpile found the
   * component allows it.
   */
  reset?: boolean;
  /** A request the guest failed (answered 500, or cut once its answer had started). */
  onRequestFailed(message: string): void;
}

export interface ThreadServer {
  /** The port listened on (the one asked for, or the kernel's choice for 0). */
  port: number;
  inFlight(): number;
  /** The pool, the resources guests hold (handles of ours not yet dropped), the requests whose handler was called without jco's glue, and why instances are not reset (when allowed but refused). */
  stats(): PoolStats & { resources: number; directCalls: number; resetRefused?: string; resetCopies?: string };
  /** Stops accepting, lets requests in flight finish (new ones on open connections are served with Connection: close); resolves when none is left. */
  drain(): Promise<void>;
}

/** The component cannot be served at all (the container's 126). */
export class ComponentLinkError extends Error {}

type Handle = (request: object, outparam: object) => Promise<unknown> | unknown;

/** The incoming-handler's handle function of an instance (the glue names it with or without the interface). */
function handlerOf(instance: Record<string, unknown>): Handle | undefined {
  for (const [name, value] of Object.entries(instance)) {
    if (!/^(wasi:http\/)?incoming-?[hH]andler(@|$)/.test(name)) continue;
    const handle = (value as { handle?: unknown } | null)?.handle;
    if (typeof handle === 'function') return handle as Handle;
  }
  return undefined;
}

const SHIM_IO: ShimIo = {
  InputStream: p2.io.streams.InputStream as unknown as ShimIo['InputStream'],
  OutputStream: p2.io.streams.OutputStream as unknown as ShimIo['OutputStream'],
  Pollable: p2.io.poll.Pollable as unknown as ShimIo['Pollable'],
  IoError: p2.io.error.Error as unknown as ShimIo['IoError'],
};

/** An instance: its handler, and the resources it holds (let go with it). */
interface Instance {
  handle: Handle;
  /** The same handler without jco's glue, where the instance allows it. */
  direct: DirectHandle | undefined;
  scope: RepScope;
  /**
   * Its state when made, to put it back after a request (reset.ts), and
   * what the guest may keep a handle to: the host's resources made for this
   * instance, let go with the request (made once, not per request).
   */
  reset: { state: InstanceState; owned(rep: number): boolean; release(): void } | undefined;
  /** Its memory no longer counts as the guest's. */
  release(): void;
}

/** Makes instances of the component: its glue, its core modules, our imports. */
async function instanceFactory(options: ThreadServeOptions, onError: (message: string) => void) {
  let maker: ComponentMaker;
  try {
    maker = await componentMaker(options.component);
  } catch (err) {
    throw new ComponentLinkError(`cannot load component: ${(err as Error).message}`);
  }
  const reps = new Reps();
  const roles = new TableRoles(reps);
  const low = { host: reps, roles };
  const io = wasiIo(low, SHIM_IO);
  const http = wasiHttp(low, { onError });
  const imports = maker.imports({
    io: { error: io.error, poll: io.poll, streams: io.streams } as never,
    clocks: { ...p2.clocks, monotonicClock: io.monotonicClock } as never,
    http: { types: http.types, outgoingHandler: http.outgoingHandler } as never,
  });
  const dispose = disposer(reps);
  const resettable = options.reset === true && !options.reuse;
  /** Why instances are made afresh although the transpile allowed a reset (the first reason met). */
  let resetRefused: string | undefined;
  const copies = new MemoryCopies();
  /** The thread's trackers of written pages (opened when a first memory is large enough to want them), or why there are none. */
  let pages: PageTrackers | string | undefined;
  const pageTracker = (): PageTracker | undefined => {
    if (pages === undefined) {
      // A shared host's guest: its ledger, so that a thread ended by a kill leaks none of the descriptors.
      const c = options.component;
      pages = openPageTrackers(
        c.kind === 'hosted'
          ? { ledger: new FdLedger(c.guest.fdLedger), filterLetsItRun: c.guest.userfaultfd === true }
          : { filterLetsItRun: c.config.component?.userfaultfd === true },
      );
    }
    return typeof pages === 'string' ? undefined : pages;
  };
  const stateOf = (watch: InstanceWatch): InstanceState | undefined => {
    const state = watch.capture(copies, pageTracker);
    if (typeof state !== 'string') return state;
    resetRefused ??= state;
    return undefined;
  };
  const create = (): Instance => {
    const scope: RepScope = {};
    reps.scope = scope;
    roles.collect();
    try {
      // Synchronous: the glue returns at once when nothing it is given is a promise.
      const drops = new InstanceDrops(dispose);
      const watch = new InstanceWatch();
      const { instance, cores, enter, release } = maker.instantiate(imports, watch, (i) => drops.adjust(i));
      drops.resolve(roles);
      const handle = handlerOf(instance);
      if (!handle) {
        release();
        throw new ComponentLinkError('component exports no wasi:http/incoming-handler');
      }
      // A shared host's guest is entered through its yield point, as its glue's exports are (source.ts).
      // An instance that is reset serves many requests too, one loop for all of them (handler-loop.ts).
      const direct = directHandle(cores, roles, { reuse: options.reuse || resettable, ...(enter ? { enter } : {}) });
      const state = resettable ? stateOf(watch) : undefined;
      const reset = state && { state, owned: (rep: number) => reps.scopeOf(rep) === scope, release: () => reps.releaseScope(scope) };
      return { handle, direct, scope, reset, release };
    } finally {
      roles.endCollect();
      reps.scope = undefined;
    }
  };
  /** An instance is let go: whatever its guest still holds goes with it. */
  const discard = (instance: Instance) => {
    instance.direct?.close();
    reps.releaseScope(instance.scope);
    instance.release();
  };
  /** After a request that went well: the instance as it was made, or false (it must go). */
  const recycle = (instance: Instance): boolean => {
    const reset = instance.reset;
    if (!reset) return false;
    try {
      return reset.state.restore(reset.owned, reset.release);
    } catch {
      // Put back halfway (a disposal threw): it goes, as if it had not been tried.
      return false;
    }
  };
  return {
    create,
    discard,
    recycle,
    exchange: http.exchange,
    reps,
    resetRefused: () => resetRefused,
    /** How resets copy memory back: only written pages (as the kernel tells them), or whole (and why), once a memory large enough asked. */
    resetCopies: (): string | undefined =>
      pages === undefined ? undefined : typeof pages === 'string' ? `whole memory: ${pages}` : pages.how,
    close: () => {
      if (typeof pages === 'object') pages.close();
    },
  };
}

function failureMessage(err: unknown): string {
  if (isTrap(err)) return `wasm trap: ${trapMessage(err)}`;
  return err instanceof Error ? err.message : String(err);
}

const UNAVAILABLE = Buffer.from('service unavailable\n');

/** How long the rest of a thread's pool waits at most for the first request to be over. */
const FIRST_FILL_HOLD_MS = 100;

/** Serves the component on this thread until drained. Rejects with ComponentLinkError when it cannot be instantiated. */
export async function serveOnThread(options: ThreadServeOptions): Promise<ThreadServer> {
  const factory = await instanceFactory(options, options.onRequestFailed);
  const pool = new InstancePool<Instance>({ size: options.pool, reuse: options.reuse, create: factory.create, discard: factory.discard, recycle: factory.recycle });
  try {
    // The first instance serves the first request before the rest are made (pool.ts).
    pool.start(FIRST_FILL_HOLD_MS);
  } catch (err) {
    if (err instanceof ComponentLinkError) throw err;
    throw new ComponentLinkError(`cannot instantiate component: ${(err as Error).message ?? String(err)}`);
  }

  let inFlight = 0;
  let directCalls = 0;
  let draining = false;
  let drained: (() => void) | undefined;
  // The responses in flight (slots, not a Set: see SlotList).
  const open = new SlotList<WireResponse>();

  /**
   * One request, from its arrival to its response's close: its response's
   * events (ResponseEvents), and the end of the guest's handle (CallDone).
   * One object per request, with methods, in place of an async function, a
   * promise per call and the closures of each.
   */
  class Served extends ResponseEvents implements CallDone {
    readonly #req: WireRequest;
    readonly #res: WireResponse;
    readonly #slot: number;
    #instance: Instance | undefined;
    #exchange: Exchange | undefined;
    constructor(req: WireRequest, res: WireResponse) {
      super(res);
      this.#req = req;
      this.#res = res;
      this.#slot = open.add(res);
      inFlight++;
      if (draining) res.shouldKeepAlive = false;
    }
    override closed(): void {
      open.remove(this.#slot);
      if (--inFlight === 0 && drained) drained();
    }
    /** The guest's handle is called with this request, on `instance`. */
    serve(instance: Instance): void {
      this.#instance = instance;
      try {
        const ex = (this.#exchange = factory.exchange(this.#req, this.#res, this, instance.scope));
        if (instance.direct) {
          directCalls++;
          instance.direct.call(ex.request.rep, ex.outparam.rep, this);
        } else {
          Promise.resolve(instance.handle(ex.request, ex.outparam)).then(
            () => this.done(),
            (err: unknown) => this.fail(err),
          );
        }
      } catch (err) {
        this.fail(err);
      }
    }
    /** No instance could be had. */
    unserved(err: unknown): void {
      options.onRequestFailed(`no instance to serve the request: ${failureMessage(err)}`);
      const res = this.#res;
      if (!res.headersSent) res.writeHead(503, ['content-type', 'text/plain']).end(UNAVAILABLE);
    }
    // Called from the guest's stack (the handler loop's next import), so never throws there.
    done(): void {
      this.#finish(undefined, false);
    }
    fail(err: unknown): void {
      this.#finish(err, true);
    }
    #finish(err: unknown, failed: boolean): void {
      const instance = this.#instance;
      if (!instance) return;
      this.#instance = undefined;
      if (failed) options.onRequestFailed(failureMessage(err));
      const ex = this.#exchange;
      try {
        // No exchange: it could not be made (the failure is said above), nothing to answer with.
        if (!ex) this.#res.destroy();
        else if (failed) ex.settle(err);
        else ex.settle();
      } catch (e) {
        options.onRequestFailed(`cannot finish the response: ${failureMessage(e)}`);
        this.#res.destroy();
      }
      pool.release(instance, failed);
    }
  }

  const onRequest = (req: WireRequest, res: WireResponse) => {
    const served = new Served(req, res);
    const instance = pool.take();
    if (instance) served.serve(instance);
    else
      pool.next().then(
        (h) => served.serve(h),
        (err: unknown) => served.unserved(err),
      );
  };

  const server = new WireServer(onRequest);
  await server.listen({ port: options.port, ...(options.host ? { host: options.host } : {}) });
  return {
    port: server.port,
    inFlight: () => inFlight,
    stats: () => {
      const refused = factory.resetRefused();
      const copies = factory.resetCopies();
      return {
        ...pool.stats(),
        resources: factory.reps.live,
        directCalls,
        ...(refused !== undefined ? { resetRefused: refused } : {}),
        ...(copies !== undefined ? { resetCopies: copies } : {}),
      };
    },
    drain: () =>
      new Promise<void>((resolve) => {
        draining = true;
        open.forEach((res) => {
          if (!res.headersSent) res.shouldKeepAlive = false;
        });
        server.drain();
        const done = () => {
          pool.close();
          factory.close();
          server.close();
          resolve();
        };
        if (inFlight === 0) done();
        else drained = done;
      }),
  };
}
