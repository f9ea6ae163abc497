// A Guest: one preview1 module instance with everything it owns (descriptor
// table, args, environment, stdio, preopens, memory). Nothing is global, so
// any number of guests can run in one process without seeing each other.
//
// Calls that may block are WebAssembly.Suspending imports: while one waits,
// the guest's stack is suspended (JSPI) and the event loop runs. Every
// resumption passes through one gate, which is where pause and kill take
// effect: a killed guest is never resumed (its suspended stack is dropped),
// and proc_exit suspends for ever after recording the code, so a guest can
// catch neither.
import { closeSync, openSync, constants as fsc } from 'node:fs';
import { E, FILETYPE, R } from './abi.js';
import type { Ctx, Entry, Handle, WasiFn } from './context.js';
import { errnoOf, WasiError } from './errno.js';
import { fdOps } from './fd-ops.js';
import { FdTable } from './fd-table.js';
import { GuestMemory } from './memory.js';
import { miscOps, Realtime } from './misc.js';
import { pathOps } from './path-ops.js';
import { pollOps } from './poll.js';
import { openGuestDirs, type HostDir } from './preopen-dirs.js';
import { LISTENER_RIGHTS, preopenRights, STREAM_RIGHTS } from './rights.js';
import { Listener, socketOps } from './sockets.js';
import { stdioStream } from './streams.js';
import { sys } from './sys.js';
import { defaultPreopens, type Preopen } from '../guest-config.js';
import { START_EXPORT } from '../instrument/names.js';
import { isTrap, type GuestOutcome } from '../outcome.js';

export type { GuestOutcome, Preopen };
export { defaultPreopens };

export interface GuestOptions {
  args: readonly string[];
  /** KEY=VALUE strings, exactly as the guest will see them. */
  env: readonly string[];
  /** Host path of the guest's root directory ("/" inside a container). */
  root?: string;
  /** The root as a directory descriptor the caller holds (a shared host's guests); the guest uses its own duplicate. Wins over `root`. */
  rootFd?: number;
  /**
   * Directories of the host (not inside the root) preopened beneath
   * themselves: descriptors the caller holds, duplicated by the guest,
   * registered after the root's own preopens and before ".".
   */
  hostDirs?: readonly HostDir[];
  /** The working directory, a path inside the root (default "/"). */
  cwd?: string;
  /** Default: the root as "/", then the working directory as "." when it is not "/". */
  preopens?: readonly Preopen[];
  /** Host descriptors behind the guest's fds 0, 1, 2 (default the host's own 0, 1, 2). */
  stdio?: readonly [number, number, number];
  /** Host descriptors of listening sockets, the guest's fds 3… before the preopens. */
  listeners?: readonly number[];
  /** Run this long (ms) between event-loop turns at tugboat.yield points (default 10). */
  timeSliceMs?: number;
  /** Where a guest whose time slice is up waits for its next one (default: the next event-loop turn). */
  scheduler?: Scheduler;
  /** Bytes of linear memory the guest may grow to (through the instrumenter's grow hook); absent: no limit but the module's. */
  memoryLimit?: number;
}

/** Hands time slices to guests that yield because theirs is up. */
export interface Scheduler {
  /** Resolves when the guest may run again. */
  next(): Promise<void>;
}

const nextTurn: Scheduler = { next: () => new Promise<void>((r) => setImmediate(r)) };

const PAGE = 65536;

const NEVER = new Promise<never>(() => undefined);

/** Monotonic milliseconds (the global `performance` would load perf_hooks on every start). */
function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export class Guest {
  private readonly fds = new FdTable<Handle>();
  private readonly abort = new AbortController();
  private readonly mem: GuestMemory;
  private memory: WebAssembly.Memory | undefined;
  private rootFd = -1;
  private settled: GuestOutcome | undefined;
  private resolveOutcome!: (o: GuestOutcome) => void;
  /** The guest's fate; settles once (exit, trap, kill, link failure, host error). */
  readonly outcome: Promise<GuestOutcome>;
  private paused: { promise: Promise<void>; resume: () => void } | undefined;
  private lastTurn = nowMs();
  private readonly timeSlice: number;
  private readonly scheduler: Scheduler;
  private closed = false;
  private memoryLimit: number | undefined;
  /** A grow refused by the memory limit: a trap after it is the guest's OOM. */
  private growRefused = false;
  /** Time the guest ran, ms, up to its last suspension. */
  private ranMs = 0;

  constructor(private readonly opts: GuestOptions) {
    this.outcome = new Promise((r) => (this.resolveOutcome = r));
    this.mem = new GuestMemory(() => {
      if (!this.memory) throw new WasiError(E.FAULT);
      return this.memory;
    });
    this.timeSlice = opts.timeSliceMs ?? 10;
    this.scheduler = opts.scheduler ?? nextTurn;
    this.memoryLimit = opts.memoryLimit;
  }

  /** Opens the guest's descriptors: stdio, preopened sockets, preopened directories. */
  private setup(): void {
    const [in0, out1, err2] = this.opts.stdio ?? [0, 1, 2];
    const dup = (fd: number) => sys().dup(fd);
    const stdio: Array<[number, 'read' | 'write']> = [[in0, 'read'], [out1, 'write'], [err2, 'write']];
    for (const [fd, dir] of stdio) {
      const stream = stdioStream(fd, dir, dup);
      const rights = STREAM_RIGHTS & ~(dir === 'read' ? R.FD_WRITE : R.FD_READ);
      this.fds.insert({ handle: { kind: 'stream', stream }, filetype: stream.filetype, rightsBase: rights, rightsInheriting: 0n, fdflags: 0 });
    }
    for (const fd of this.opts.listeners ?? []) {
      this.fds.insert({ handle: { kind: 'listener', listener: new Listener(fd) }, filetype: FILETYPE.SOCKET_STREAM, rightsBase: LISTENER_RIGHTS, rightsInheriting: 0n, fdflags: 0 });
    }
    // The root is the host's choice (config), never the guest's: the one path Node opens by name.
    this.rootFd = this.opts.rootFd !== undefined ? sys().dup(this.opts.rootFd) : openSync(this.opts.root ?? '/', fsc.O_RDONLY | fsc.O_DIRECTORY);
    const preopens = this.opts.preopens ?? defaultPreopens(this.opts.cwd ?? '/');
    for (const { preopen: p, fd, ref } of openGuestDirs(this.rootFd, preopens, this.opts.hostDirs)) {
      const rights = preopenRights(p.readonly === true);
      this.fds.insert({
        handle: { kind: 'dir', fd, ref, preopen: Buffer.from(p.guest) },
        filetype: FILETYPE.DIRECTORY,
        rightsBase: rights.base,
        rightsInheriting: rights.inheriting,
        fdflags: 0,
      });
    }
  }

  private settle(o: GuestOutcome): void {
    if (this.settled) return;
    this.settled = o;
    this.abort.abort();
    this.paused?.resume();
    this.resolveOutcome(o);
  }

  /** The one place a suspended guest resumes: never once it has ended, and only when not paused. */
  private async gate<T>(p: Promise<T> | T): Promise<T> {
    this.ranMs += nowMs() - this.lastTurn;
    const v = await p;
    while (this.paused && !this.settled) await this.paused.promise;
    if (this.settled) return NEVER;
    this.lastTurn = nowMs();
    return v;
  }

  private errno(err: unknown): number {
    try {
      return errnoOf(err);
    } catch {
      // A host bug, not the guest's: end the guest with it rather than invent an errno.
      this.settle({ kind: 'error', message: `host error: ${(err as Error)?.message ?? String(err)}` });
      throw err;
    }
  }

  private plain(fn: WasiFn): (...args: never[]) => number {
    return (...args) => {
      try {
        return fn(...args) as number;
      } catch (err) {
        return this.errno(err);
      }
    };
  }

  private suspending(fn: WasiFn): WebAssembly.Suspending {
    return new WebAssembly.Suspending((...args: never[]) => {
      if (this.settled) return NEVER;
      let r: number | Promise<number>;
      try {
        r = fn(...args);
      } catch (err) {
        return this.errno(err);
      }
      if (typeof r === 'number' && !this.paused) return r;
      return this.gate(Promise.resolve(r).catch((err: unknown) => this.errno(err)));
    });
  }

  private context(): Ctx {
    const guest = this;
    const toC = (s: string) => Buffer.from(`${s}\0`);
    return {
      mem: this.mem,
      fds: this.fds,
      args: this.opts.args.map(toC),
      env: this.opts.env.map(toC),
      signal: this.abort.signal,
      release: (e) => guest.release(e),
      exit(code) {
        guest.settle({ kind: 'exit', code });
        return NEVER;
      },
      sleep: (ms) =>
        new Promise((resolve) => {
          const t = setTimeout(resolve, ms);
          guest.abort.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
        }),
    };
  }

  /** The import object: wasi_snapshot_preview1, plus the tugboat namespace for instrumented modules. */
  imports(): WebAssembly.Imports {
    const ctx = this.context();
    const realtime = new Realtime();
    const groups = [fdOps(ctx), pathOps(ctx), miscOps(ctx, realtime), pollOps(ctx, realtime)];
    const wasi: Record<string, unknown> = {};
    groups.push(socketOps(ctx, groups[0]!.suspending));
    for (const g of groups) {
      for (const [name, fn] of Object.entries(g.sync)) wasi[name] = this.plain(traced(name, fn));
      for (const [name, fn] of Object.entries(g.suspending)) wasi[name] = this.suspending(traced(name, fn));
    }
    const tugboat = {
      // Inserted by the instrumenter at loop headers and function entries: lets the
      // event loop run after a time slice, and is where pause and kill reach a spinning guest.
      yield: new WebAssembly.Suspending(() => {
        if (this.settled) return NEVER;
        if (!this.paused && nowMs() - this.lastTurn < this.timeSlice) return undefined;
        return this.gate(this.scheduler.next().then(() => undefined));
      }),
      // The instrumenter's grow hook: every memory.grow of memory 0 asks here (the old size in pages, or -1).
      memory_grow: (delta: number) => this.grow(delta >>> 0),
      // Called by the instrumenter when memory.grow fails under the guest's memory cap.
      grow_failed: new WebAssembly.Suspending(() => {
        this.settle({ kind: 'oom' });
        return NEVER;
      }),
    };
    return { wasi_snapshot_preview1: wasi, tugboat };
  }

  private grow(delta: number): number {
    const memory = this.memory;
    if (!memory) return -1;
    const pages = memory.buffer.byteLength / PAGE;
    if (this.memoryLimit !== undefined && (pages + delta) * PAGE > this.memoryLimit) {
      this.growRefused = true;
      return -1;
    }
    try {
      return memory.grow(delta);
    } catch {
      // Past the module's own maximum, or the engine's.
      this.growRefused = true;
      return -1;
    }
  }

  /** Bytes of linear memory the guest holds now. */
  memoryBytes(): number {
    return this.memory?.buffer.byteLength ?? 0;
  }

  /** The limit for later grows (a guest already above it keeps what it has). */
  setMemoryLimit(bytes: number | undefined): void {
    this.memoryLimit = bytes;
  }

  /** Milliseconds the guest has run (up to its last suspension, or now while it runs). */
  cpuMs(): number {
    return this.ranMs;
  }

  /** A trap after a refused grow is the guest running out of memory. */
  private trapOutcome(err: Error): GuestOutcome {
    return this.growRefused ? { kind: 'oom' } : { kind: 'trap', message: err.message };
  }

  /** Instantiates and runs `_start`; resolves with the guest's outcome. */
  run(module: WebAssembly.Module): Promise<GuestOutcome> {
    try {
      this.setup();
    } catch (err) {
      this.settle({ kind: 'error', message: `cannot set up the guest: ${describe(err)}` });
      return this.outcome;
    }
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(module, this.imports());
    } catch (err) {
      this.settle({ kind: 'link', message: `cannot instantiate module: ${describe(err)}` });
      return this.outcome;
    }
    const memory = instance.exports.memory;
    const start = instance.exports._start;
    if (!(memory instanceof WebAssembly.Memory)) {
      this.settle({ kind: 'link', message: 'module exports no memory' });
      return this.outcome;
    }
    if (typeof start !== 'function') {
      this.settle({ kind: 'link', message: 'module exports no _start function (not a WASI command)' });
      return this.outcome;
    }
    this.memory = memory;
    if (this.memoryLimit !== undefined && memory.buffer.byteLength > this.memoryLimit) {
      this.settle({ kind: 'oom' });
      return this.outcome;
    }
    this.lastTurn = nowMs();
    // An instrumented module's start function: run through JSPI like every guest entry.
    const init = instance.exports[START_EXPORT];
    const enter = (f: unknown) => WebAssembly.promising(f as () => unknown)();
    (typeof init === 'function' ? enter(init).then(() => enter(start)) : enter(start)).then(
      () => this.settle({ kind: 'exit', code: 0 }),
      (err: unknown) => this.settle(isTrap(err) ? this.trapOutcome(err) : { kind: 'error', message: describe(err) }),
    );
    return this.outcome;
  }

  /** Ends the guest now with 128+signal semantics; it never runs again. */
  kill(signal: number): void {
    this.settle({ kind: 'signal', signal });
  }

  /** Takes effect at the guest's next suspension point (a blocking call or a tugboat.yield). */
  pause(): void {
    if (this.paused || this.settled) return;
    let resume!: () => void;
    const promise = new Promise<void>((r) => (resume = r));
    this.paused = { promise, resume };
  }

  resume(): void {
    const p = this.paused;
    this.paused = undefined;
    p?.resume();
  }

  private release(e: Entry): void {
    const h = e.handle;
    try {
      if (h.kind === 'stream') h.stream.close();
      else if (h.kind === 'listener') h.listener.close();
      else if (h.kind === 'dir' && h.fd !== this.rootFd) closeSync(h.fd);
      else if (h.kind === 'file') closeSync(h.fd);
    } catch {
      // Already gone: nothing of the host's is at stake (the guest only holds its own descriptors).
    }
  }

  /** Flushes what the guest wrote to its streams, then releases every host descriptor it holds. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.settled) this.settle({ kind: 'signal', signal: 9 });
    const entries = this.fds.clear();
    await Promise.all(entries.map((e) => (e.handle.kind === 'stream' ? e.handle.stream.flush() : undefined)));
    for (const e of entries) this.release(e);
    if (this.rootFd >= 0) closeSync(this.rootFd);
    this.rootFd = -1;
    this.memory = undefined;
  }
}

/** TUGBOAT_WASI_TRACE=1: every call and its result on stderr (debugging the host, never in production paths). */
function traced(name: string, fn: WasiFn): WasiFn {
  if (process.env.TUGBOAT_WASI_TRACE !== '1') return fn;
  return (...args: never[]) => {
    const show = (r: unknown) => process.stderr.write(`wasi ${name}(${args.map(String).join(', ')}) = ${String(r)}\n`);
    try {
      const r = fn(...args);
      if (r instanceof Promise) void r.then(show, show);
      else show(r);
      return r;
    } catch (err) {
      show(err instanceof WasiError ? `errno ${err.errno}` : err);
      throw err;
    }
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
