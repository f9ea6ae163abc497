// One guest of a shared host (the `process` and `pod` isolation levels): a
// preview1 module run by Tugboat's own host beside other guests, with its own
// root, stdio, env, args, memory limit and fate. Its module is found in its
// root (kernel-resolved, like at container level), instrumented and compiled
// through the host's cache when it is prepared (the container's Create), so
// Start only instantiates. A failure found while preparing (no module, not a
// runnable one) becomes the guest's ending at Start, with its message on the
// guest's stderr, as it does when the host is a container's init.
import { closeSync, write } from 'node:fs';
import { posix } from 'node:path';
import { wasmKind } from '../../oci/wasm-kind.js';
import { EXIT_NOT_RUNNABLE } from '../exit-status.js';
import { defaultPreopens, type Preopen } from '../guest-config.js';
import { loadModule, loadModuleAt, type LoadedModule } from '../module-load.js';
import { ending, type GuestOutcome } from '../outcome.js';
import { Guest, type Scheduler } from '../preview1/guest.js';
import type { HostDir } from '../preview1/preopen-dirs.js';
import { sys } from '../preview1/sys.js';
import type { CompiledModule, ModuleCache } from './module-cache.js';
import { signalEndsGuest } from './signals.js';

export interface HostedGuestSpec {
  args: string[];
  /** KEY=VALUE, exactly as the guest sees them. */
  env: string[];
  /** The guest's root directory; the guest keeps a duplicate, the caller may close its own. */
  rootFd: number;
  /** Working directory inside the root. */
  cwd: string;
  /** The module inside the root, as detection found it; else args[0] is looked up like execvp. */
  module?: string;
  /** Directories inside the root (default: "/", then "." for the working directory). */
  preopens?: Preopen[];
  /** Host directories preopened beneath themselves (`tugboat run -v` at `process` level). */
  hostDirs?: HostDir[];
  /** Host descriptors for the guest's stdin, stdout, stderr (-1: closed); duplicated, so the caller may close its own. */
  stdio: [number, number, number];
  /** Bytes of linear memory the guest may hold; absent: unlimited. */
  memoryLimit?: number;
}

export interface HostedEnding {
  /** The container's exit status (README, Exit statuses). */
  status: number;
  /** The guest hit its memory limit (status 137): an OOM event. */
  oom: boolean;
  at: number;
}

export interface HostedStats {
  /** Linear memory the guest holds (0 for a component: see its own). */
  memoryBytes: number;
  memoryLimit: number | undefined;
  /** Time the guest has run. */
  cpuMs: number;
}

/** What a shared host runs: a module guest (this file) or a component guest (hosted-component.ts). */
export interface Hosted {
  start(): void;
  /** Signal semantics as for a process without handlers (signals.ts). */
  kill(signal: number): void;
  /** At the guest's next suspension point: a blocking call or a yield point. */
  pause(): void;
  resume(): void;
  stats(): HostedStats;
  setMemoryLimit(bytes: number | undefined): void;
  /** Settles once the guest has ended and its output is flushed and closed. */
  readonly ended: Promise<HostedEnding>;
  /** Ends the guest if it still runs and releases everything it holds; safe to call twice. */
  dispose(): Promise<void>;
}

export interface HostContext {
  modules: ModuleCache;
  scheduler: Scheduler;
  /** This host's seccomp filter lets it call userfaultfd in user mode (a pod host: WASM_HOST_SECCOMP); see http/written-pages.ts. */
  userfaultfd?: boolean;
}

type Prepared = { compiled: CompiledModule; path: string } | { status: number; message: string };

function dupOrClosed(fd: number): number {
  return fd < 0 ? -1 : sys().dup(fd);
}

function closeQuietly(fd: number): void {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** The host's line for the guest's stderr, written without blocking the host on a full pipe. */
function say(fd: number, message: string): Promise<void> {
  if (fd < 0) return Promise.resolve();
  const line = Buffer.from(`tugboat: ${message}\n`);
  return new Promise((resolve) => write(fd, line, () => resolve()));
}

export class HostedGuest implements Hosted {
  readonly ended: Promise<HostedEnding>;
  private finish!: (e: HostedEnding) => void;
  private guest: Guest | undefined;
  private started = false;
  private killedBeforeStart: number | undefined;
  private disposed = false;
  private over = false;
  private released = false;
  private currentLimit: number | undefined;

  private constructor(
    private readonly spec: HostedGuestSpec,
    private readonly stdio: [number, number, number],
    private readonly prepared: Prepared,
    private readonly ctx: HostContext,
  ) {
    this.ended = new Promise((r) => (this.finish = r));
    this.currentLimit = spec.memoryLimit;
  }

  /** Finds, reads, instruments and compiles the guest's module; a failure is kept for Start. */
  static async prepare(given: HostedGuestSpec, ctx: HostContext): Promise<HostedGuest> {
    // The guest's own duplicates of every descriptor: the caller may close its copies at once.
    const stdio = given.stdio.map(dupOrClosed) as [number, number, number];
    const spec: HostedGuestSpec = {
      ...given,
      rootFd: sys().dup(given.rootFd),
      ...(given.hostDirs ? { hostDirs: given.hostDirs.map((d) => ({ ...d, fd: sys().dup(d.fd) })) } : {}),
      stdio,
    };
    let prepared: Prepared;
    try {
      prepared = await HostedGuest.load(spec, ctx);
    } catch (err) {
      HostedGuest.closeAll(spec);
      throw err;
    }
    return new HostedGuest(spec, stdio, prepared, ctx);
  }

  private static closeAll(spec: HostedGuestSpec): void {
    for (const fd of [...spec.stdio, spec.rootFd, ...(spec.hostDirs ?? []).map((d) => d.fd)]) closeQuietly(fd);
  }

  /** The module as a path on one of the guest's host directories (a `-v` volume at `process` level), if it names one. */
  private static onHostDir(spec: HostedGuestSpec, name: string): LoadedModule | undefined {
    if (!name.includes('/')) return undefined;
    const full = posix.resolve(spec.cwd, name);
    const dir = (spec.hostDirs ?? []).find((d) => full.startsWith(`${d.guest.replace(/\/$/, '')}/`));
    if (!dir) return undefined;
    return loadModuleAt({ fd: dir.fd, mode: 'beneath' }, posix.relative(dir.guest, full), full);
  }

  private static async load(spec: HostedGuestSpec, ctx: HostContext): Promise<Prepared> {
    const name = spec.module ?? spec.args[0] ?? '';
    const loaded = HostedGuest.onHostDir(spec, name) ?? loadModule({ fd: spec.rootFd, mode: 'in-root' }, name, spec.env, spec.cwd);
    if ('status' in loaded) return loaded;
    const { path, bytes } = loaded;
    const kind = wasmKind(bytes);
    if (kind === null) return { status: EXIT_NOT_RUNNABLE, message: `${path}: not a WebAssembly binary (bad magic or header)` };
    if (kind === 'component') return { status: EXIT_NOT_RUNNABLE, message: `${path}: is a Wasm component; components run only as a container's entrypoint` };
    try {
      return { compiled: await ctx.modules.acquire(bytes), path };
    } catch (err) {
      return { status: EXIT_NOT_RUNNABLE, message: `${path}: invalid wasm module: ${(err as Error).message}` };
    }
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.killedBeforeStart !== undefined) return;
    const p = this.prepared;
    if ('status' in p) {
      void this.end({ status: p.status, message: p.message }, false);
      return;
    }
    const guest = new Guest({
      args: this.spec.args,
      env: this.spec.env,
      rootFd: this.spec.rootFd,
      cwd: this.spec.cwd,
      preopens: this.spec.preopens ?? defaultPreopens(this.spec.cwd),
      ...(this.spec.hostDirs ? { hostDirs: this.spec.hostDirs } : {}),
      stdio: this.stdio,
      scheduler: this.ctx.scheduler,
      ...(this.spec.memoryLimit !== undefined ? { memoryLimit: this.spec.memoryLimit } : {}),
    });
    this.guest = guest;
    void guest.run(p.compiled.module).then(async (outcome: GuestOutcome) => {
      await guest.close();
      await this.end(ending(outcome, p.path), outcome.kind === 'oom');
    });
  }

  private async end(e: { status: number; message?: string }, oom: boolean): Promise<void> {
    if (this.over) return;
    this.over = true;
    if (e.message !== undefined) await say(this.stdio[2], e.message);
    this.release();
    this.finish({ status: e.status, oom, at: Date.now() });
  }

  /** Everything but the Guest's own descriptors (it closes those). */
  private release(): void {
    if (this.released) return;
    this.released = true;
    HostedGuest.closeAll(this.spec);
    this.stdio.fill(-1);
    if ('compiled' in this.prepared) this.prepared.compiled.release();
  }

  kill(signal: number): void {
    if (!signalEndsGuest(signal)) return;
    if (this.guest) {
      this.guest.kill(signal);
      return;
    }
    if (this.killedBeforeStart !== undefined) return;
    this.killedBeforeStart = signal;
    void this.end({ status: 128 + signal }, false);
  }

  pause(): void {
    this.guest?.pause();
  }

  resume(): void {
    this.guest?.resume();
  }

  stats(): HostedStats {
    return { memoryBytes: this.guest?.memoryBytes() ?? 0, memoryLimit: this.currentLimit, cpuMs: this.guest?.cpuMs() ?? 0 };
  }

  setMemoryLimit(bytes: number | undefined): void {
    this.currentLimit = bytes;
    this.guest?.setMemoryLimit(bytes);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (this.guest) this.guest.kill(9);
    else this.kill(9);
    await this.ended;
  }
}
