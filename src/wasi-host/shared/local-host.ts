// The guests of one process, by key (a container id, or "<container>/<exec>"):
// what the `process` level runs inside the shim or `tugboat run`, and what
// the pod host (pod-host.ts) runs for its shim. One module cache and one
// scheduler for all of them.
import { AlreadyExistsError, NotFoundError } from '../../errors.js';
import { HostedComponent, type HostedComponentSpec } from './hosted-component.js';
import { HostedHttpComponent } from './hosted-http-component.js';
import { HostedGuest, type Hosted, type HostedEnding, type HostedGuestSpec, type HostedStats } from './hosted-guest.js';
import { ModuleCache } from './module-cache.js';
import { TurnScheduler } from './scheduler.js';

/** A guest to host: a preview1 module, or a component (its transpiled cache entry as a descriptor). */
export type GuestSpec = HostedGuestSpec | HostedComponentSpec;

export function isComponentSpec(spec: GuestSpec): spec is HostedComponentSpec {
  return 'componentFd' in spec;
}

/** What a host tells about itself, to share its own memory among its guests. */
export interface HostUsage {
  pid: number;
  /** Resident memory of the whole host process. */
  rssBytes: number;
  guests: number;
  /** Linear memory of every guest together. */
  guestMemoryBytes: number;
}

/** A place guests run: this process (LocalHost) or a pod host reached over a socket (pod-client.ts). */
export interface GuestHost {
  readonly pid: number;
  /** Prepares a guest (module found and compiled); its descriptors are duplicated, the caller keeps its own. */
  create(key: string, spec: GuestSpec): Promise<void>;
  start(key: string): Promise<void>;
  kill(key: string, signal: number): Promise<void>;
  pause(key: string): Promise<void>;
  resume(key: string): Promise<void>;
  stats(key: string): Promise<HostedStats>;
  setMemoryLimit(key: string, bytes: number | undefined): Promise<void>;
  /** Settles when the guest has ended (or the host died: 137). */
  ended(key: string): Promise<HostedEnding>;
  /** Ends the guest if it runs and forgets it; an unknown key is fine. */
  delete(key: string): Promise<void>;
  usage(): Promise<HostUsage>;
  /** A container that used this host is gone (a pod host stops with its last one). */
  release?(): void;
}

export class LocalHost implements GuestHost {
  readonly pid = process.pid;
  private readonly guests = new Map<string, Hosted>();
  private readonly creating = new Set<string>();
  readonly modules: ModuleCache;
  private readonly scheduler = new TurnScheduler();

  private readonly componentWorker: URL | string | undefined;
  private readonly httpWorker: URL | string | undefined;
  private readonly userfaultfd: boolean;

  /**
   * `componentWorker`: a command component's thread bundle (hosted-component.mjs);
   * `httpWorker`: an HTTP component's handler thread bundle (http-worker.mjs);
   * `userfaultfd`: the host runs under a seccomp filter that allows it (HostContext).
   */
  constructor(options: { yieldInterval?: number; componentWorker?: URL | string; httpWorker?: URL | string; userfaultfd?: boolean } = {}) {
    this.modules = new ModuleCache(options.yieldInterval);
    this.componentWorker = options.componentWorker;
    this.httpWorker = options.httpWorker;
    this.userfaultfd = options.userfaultfd === true;
  }

  private get(key: string): Hosted {
    const g = this.guests.get(key);
    if (!g) throw new NotFoundError(`no guest ${key}`);
    return g;
  }

  async create(key: string, spec: GuestSpec): Promise<void> {
    const ctx = { modules: this.modules, scheduler: this.scheduler, userfaultfd: this.userfaultfd };
    if (!isComponentSpec(spec)) return this.add(key, () => HostedGuest.prepare(spec, ctx));
    const componentWorker = this.componentWorker;
    if (componentWorker === undefined) throw new Error('this host cannot run components (no component thread bundle)');
    const cctx = { ...ctx, componentWorker, ...(this.httpWorker !== undefined ? { httpWorker: this.httpWorker } : {}) };
    if (spec.world === 'http') return this.add(key, () => HostedHttpComponent.prepare(spec, cctx));
    return this.add(key, () => HostedComponent.prepare(spec, cctx));
  }

  /** Registers a guest made by `make` (a module, or a component: hosted-component.ts). */
  async add(key: string, make: () => Promise<Hosted>): Promise<void> {
    if (this.guests.has(key) || this.creating.has(key)) throw new AlreadyExistsError(`guest ${key} already exists`);
    this.creating.add(key);
    try {
      this.guests.set(key, await make());
    } finally {
      this.creating.delete(key);
    }
  }

  async start(key: string): Promise<void> {
    this.get(key).start();
  }

  async kill(key: string, signal: number): Promise<void> {
    this.get(key).kill(signal);
  }

  async pause(key: string): Promise<void> {
    this.get(key).pause();
  }

  async resume(key: string): Promise<void> {
    this.get(key).resume();
  }

  async stats(key: string): Promise<HostedStats> {
    return this.get(key).stats();
  }

  async setMemoryLimit(key: string, bytes: number | undefined): Promise<void> {
    this.get(key).setMemoryLimit(bytes);
  }

  ended(key: string): Promise<HostedEnding> {
    try {
      return this.get(key).ended;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async delete(key: string): Promise<void> {
    const g = this.guests.get(key);
    if (!g) return;
    await g.dispose();
    this.guests.delete(key);
  }

  async usage(): Promise<HostUsage> {
    let guestMemoryBytes = 0;
    for (const g of this.guests.values()) guestMemoryBytes += g.stats().memoryBytes;
    return { pid: this.pid, rssBytes: process.memoryUsage.rss(), guests: this.guests.size, guestMemoryBytes };
  }

  /** Guests held (created and not deleted). */
  get size(): number {
    return this.guests.size;
  }
}
