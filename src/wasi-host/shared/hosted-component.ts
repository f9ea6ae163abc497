// One component guest of a shared host, started when the container is
// created. The component was transpiled by jco before (its cache entry
// arrives as a directory descriptor); its core modules are instrumented and
// compiled here through the host's cache, so two containers of one component
// compile once, and posted to the guest's threads compiled.
//
// A command runs on a thread of its own (hosted-component-worker.ts): kill
// ends the thread (Worker.terminate works while the guest spins), with
// 128+N; pause sets a flag the guest's yield points wait on. An HTTP
// component is served by handler threads (hosted-http-component.ts), under
// the same control array.
import { closeSync, readFileSync } from 'node:fs';
// worker_threads loads with the first component: the CLI names this engine for every command.
import type { Worker } from 'node:worker_threads';
import type { Preopen } from '../guest-config.js';
import { GLUE_CODE_CACHE, GLUE_SCRIPT } from './component-glue.js';
import { CTL, type GlueCode, type HostedComponentCode, type HostedComponentInput, type HostedComponentMessage, type HostedGuestView } from './component-protocol.js';
import { ending, type GuestOutcome } from '../outcome.js';
import { FdLedger } from '../p2/fd-ledger.js';
import { listDirectory } from '../preview1/fd-ops.js';
import type { HostDir } from '../preview1/preopen-dirs.js';
import { E } from '../preview1/abi.js';
import { WasiError } from '../preview1/errno.js';
import { openAt } from '../preview1/resolve.js';
import { O, sys } from '../preview1/sys.js';
import type { HostContext, Hosted, HostedEnding, HostedStats } from './hosted-guest.js';
import type { CompiledModule } from './module-cache.js';
import { signalEndsGuest } from './signals.js';
import { endThread, startThread } from '../../thread-gate.js';

const PAGE = 65536;

export interface HostedComponentSpec {
  args: string[];
  env: string[];
  rootFd: number;
  cwd: string;
  preopens: Preopen[];
  hostDirs?: HostDir[];
  stdio: [number, number, number];
  memoryLimit?: number;
  /** The transpiled component: a directory descriptor of its cache entry (read-only). */
  componentFd: number;
  /** The glue's file in it. */
  entry: string;
  world: 'command' | 'http' | 'unknown';
  /** HTTP components: the public port. */
  port?: number;
  /** HTTP components: instances alive at once per handler thread (io.tugboat.http.pool). */
  pool?: number;
  /** HTTP components: handler threads (io.tugboat.http.threads); else the CPUs the host's cgroup allows. */
  threads?: number;
  /** HTTP components: an instance may serve many requests (the component declares it). */
  reuse?: boolean;
  /** HTTP components: a one-request instance may be put back to its state when made (the transpile allows it). */
  reset?: boolean;
}

/** Where the guests' thread bundles are (beside the host's bundle in the kit). */
export interface ComponentContext extends HostContext {
  /** A command component's thread (hosted-component.mjs). */
  componentWorker: URL | string;
  /** An HTTP component's handler threads (http-worker.mjs). */
  httpWorker?: URL | string;
}

function closeQuietly(fd: number): void {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // closed
  }
}

/** A line of the host's on the guest's stderr. */
export function say(fd: number, message: string): void {
  if (fd < 0) return;
  try {
    process.getBuiltinModule('node:fs').writeSync(fd, `tugboat: ${message}\n`);
  } catch {
    // the guest's stderr is gone
  }
}

/** Reads a file of the cache entry through its descriptor (names are jco's, never a guest's). */
function readEntryFile(dirFd: number, name: string): Buffer {
  const fd = openAt({ fd: dirFd, mode: 'beneath' }, Buffer.from(name), O.RDONLY, 0, false);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The entry's glue script and its code cache (component-glue.ts), or nothing when it has not both (an entry of an older transpile). */
function readGlueScript(dirFd: number): { script: string; cache: Uint8Array } | undefined {
  try {
    return { script: readEntryFile(dirFd, GLUE_SCRIPT).toString('utf8'), cache: readEntryFile(dirFd, GLUE_CODE_CACHE) };
  } catch (err) {
    if (err instanceof WasiError && err.errno === E.NOENT) return undefined;
    throw err;
  }
}

/** A component guest's own descriptors (duplicates of the caller's), its glue and compiled core modules. */
export interface OpenedComponent {
  spec: HostedComponentSpec;
  code: HostedComponentCode;
  view: HostedGuestView;
  /** Lets go of the modules and closes the descriptors. */
  release(): void;
}

export async function openComponent(given: HostedComponentSpec, ctx: HostContext): Promise<OpenedComponent> {
  const dup = (fd: number) => (fd < 0 ? -1 : sys().dup(fd));
  const spec: HostedComponentSpec = {
    ...given,
    rootFd: dup(given.rootFd),
    componentFd: dup(given.componentFd),
    stdio: given.stdio.map(dup) as [number, number, number],
    ...(given.hostDirs ? { hostDirs: given.hostDirs.map((d) => ({ ...d, fd: dup(d.fd) })) } : {}),
  };
  const compiled: CompiledModule[] = [];
  const ledger = new FdLedger();
  const release = () => {
    // The guest's threads have ended (the ending halts them first): what they still held is closed here.
    ledger.closeAll((fd) => sys().close(fd));
    for (const c of compiled.splice(0)) c.release();
    for (const fd of [...spec.stdio, spec.rootFd, spec.componentFd, ...(spec.hostDirs ?? []).map((d) => d.fd)]) closeQuietly(fd);
  };
  try {
    // The script and its cache where the entry has them; the module's text only where it has not.
    const glue: GlueCode = readGlueScript(spec.componentFd) ?? { module: readEntryFile(spec.componentFd, spec.entry).toString('utf8') };
    const modules: Record<string, WebAssembly.Module> = {};
    for (const e of listDirectory(spec.componentFd)) {
      const file = e.name.toString('utf8');
      if (!file.endsWith('.wasm')) continue;
      const c = await ctx.modules.acquire(readEntryFile(spec.componentFd, file));
      compiled.push(c);
      modules[file] = c.module;
    }
    const view: HostedGuestView = {
      args: spec.args,
      env: spec.env,
      cwd: spec.cwd,
      rootFd: spec.rootFd,
      preopens: spec.preopens,
      hostDirs: spec.hostDirs ?? [],
      stdio: spec.stdio,
      fdLedger: ledger.buffer,
      ...(ctx.userfaultfd ? { userfaultfd: true } : {}),
    };
    return { spec, code: { glue, modules }, view, release };
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * What every component guest has: its control array (pause, memory limit,
 * stats; component-protocol.ts CTL), and one ending: its threads stopped,
 * its line written on its stderr, everything released.
 */
export abstract class ComponentGuest implements Hosted {
  readonly ended: Promise<HostedEnding>;
  private finish!: (e: HostedEnding) => void;
  protected readonly ctl = new Int32Array(new SharedArrayBuffer(CTL.LENGTH * 4));
  protected over = false;
  private limit: number | undefined;

  protected constructor(
    protected readonly opened: OpenedComponent,
    protected readonly name: string,
  ) {
    this.ended = new Promise((r) => (this.finish = r));
    this.setMemoryLimit(opened.spec.memoryLimit);
  }

  abstract start(): void;
  abstract kill(signal: number): void;
  /** Ends the guest's threads (bounded). */
  protected abstract halt(): Promise<void>;

  /** The guest's fate: its threads are stopped, its line written, everything released. */
  protected async end(outcome: GuestOutcome): Promise<void> {
    if (this.over) return;
    this.over = true;
    await this.halt();
    const e = ending(outcome, this.name);
    if (e.message !== undefined) say(this.opened.spec.stdio[2], e.message);
    this.opened.release();
    this.finish({ status: e.status, oom: outcome.kind === 'oom', at: Date.now() });
  }

  pause(): void {
    Atomics.store(this.ctl, CTL.PAUSE, 1);
  }

  resume(): void {
    Atomics.store(this.ctl, CTL.PAUSE, 0);
    Atomics.notify(this.ctl, CTL.PAUSE);
  }

  stats(): HostedStats {
    return { memoryBytes: Atomics.load(this.ctl, CTL.PAGES) * PAGE, memoryLimit: this.limit, cpuMs: Atomics.load(this.ctl, CTL.CPU_MS) };
  }

  setMemoryLimit(bytes: number | undefined): void {
    this.limit = bytes;
    Atomics.store(this.ctl, CTL.LIMIT_PAGES, bytes === undefined ? 0 : Math.max(1, Math.floor(bytes / PAGE)));
  }

  async dispose(): Promise<void> {
    await this.end({ kind: 'signal', signal: 9 });
  }
}

/** A command component guest: wasi:cli/run on its own thread. */
export class HostedComponent extends ComponentGuest {
  private started = false;

  private constructor(
    opened: OpenedComponent,
    private readonly worker: Worker,
    private readonly input: HostedComponentInput,
  ) {
    super(opened, opened.spec.args[0] ?? 'component');
    worker.on('message', (m: HostedComponentMessage) => void this.end(m));
    worker.once('error', (err) => void this.end({ kind: 'error', message: `host failure: ${(err as Error)?.message ?? String(err)}` }));
    worker.once('exit', (code) => void this.end({ kind: 'error', message: `component thread ended unexpectedly with code ${code}` }));
  }

  static async prepare(given: HostedComponentSpec, ctx: ComponentContext): Promise<HostedComponent> {
    const opened = await openComponent(given, ctx);
    try {
      const input: HostedComponentInput = { ...opened.code, ...opened.view, world: opened.spec.world, ctl: new SharedArrayBuffer(0) /* replaced below */ };
      // Nothing of the host's environment reaches the thread, but the trace switch.
      const trace = process.env.TUGBOAT_WASI_TRACE;
      const worker = startThread(ctx.componentWorker, { stdout: false, stderr: false, env: trace ? { TUGBOAT_WASI_TRACE: trace } : {} });
      const h = new HostedComponent(opened, worker, input);
      input.ctl = h.ctl.buffer as SharedArrayBuffer;
      return h;
    } catch (err) {
      opened.release();
      throw err;
    }
  }

  start(): void {
    if (this.started || this.over) return;
    this.started = true;
    this.worker.postMessage(this.input);
  }

  protected async halt(): Promise<void> {
    this.worker.removeAllListeners('exit');
    this.worker.removeAllListeners('error');
    await endThread(this.worker);
  }

  kill(signal: number): void {
    if (!signalEndsGuest(signal) || this.over) return;
    void this.end({ kind: 'signal', signal });
  }
}
