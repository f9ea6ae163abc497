// One component guest of a shared host: its own thread
// (hosted-component-worker.ts), started when the container is created. The
// component was transpiled by jco before (its cache entry arrives as a
// directory descriptor); its core modules are instrumented and compiled here
// through the host's cache, so two containers of one component compile once,
// and posted to the thread compiled.
//
// kill ends the thread (Worker.terminate works while the guest spins), with
// 128+N; pause sets a flag the guest's yield points wait on. An HTTP component
// is served like at `container` level: the thread serves it on an internal
// loopback port and this side owns the public one (http-proxy.ts),
// draining the requests in flight on SIGTERM before it ends with 143.
import { closeSync, readFileSync } from 'node:fs';
// worker_threads loads with the first component: the CLI names this engine for every command.
import type { Worker } from 'node:worker_threads';
import type { Preopen } from '../guest-config.js';
import type { HttpProxy } from './http-proxy.js';
import { CTL, type HostedComponentInput, type HostedComponentMessage } from './component-protocol.js';
import { ending, type GuestOutcome } from '../outcome.js';
import { listDirectory } from '../preview1/fd-ops.js';
import type { HostDir } from '../preview1/preopen-dirs.js';
import { openAt } from '../preview1/resolve.js';
import { O, sys } from '../preview1/sys.js';
import type { HostContext, Hosted, HostedEnding, HostedStats } from './hosted-guest.js';
import type { CompiledModule } from './module-cache.js';
import { signalEndsGuest } from './signals.js';

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
}

/** Where the component thread's bundle is (beside the host's bundle in the kit). */
export interface ComponentContext extends HostContext {
  componentWorker: URL | string;
}

function closeQuietly(fd: number): void {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // closed
  }
}

function say(fd: number, message: string): void {
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

export class HostedComponent implements Hosted {
  readonly ended: Promise<HostedEnding>;
  private finish!: (e: HostedEnding) => void;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(CTL.LENGTH * 4));
  private started = false;
  private over = false;
  private proxy: HttpProxy | undefined;
  private limit: number | undefined;

  private constructor(
    private readonly spec: HostedComponentSpec,
    private readonly worker: Worker,
    private readonly input: HostedComponentInput,
    private readonly compiled: CompiledModule[],
    private readonly name: string,
  ) {
    this.ended = new Promise((r) => (this.finish = r));
    this.setMemoryLimit(spec.memoryLimit);
    worker.on('message', (m: HostedComponentMessage) => this.onMessage(m));
    worker.once('error', (err) => void this.end({ kind: 'error', message: `host failure: ${(err as Error)?.message ?? String(err)}` }));
    worker.once('exit', (code) => void this.end({ kind: 'error', message: `component thread ended unexpectedly with code ${code}` }));
  }

  static async prepare(given: HostedComponentSpec, ctx: ComponentContext): Promise<HostedComponent> {
    const dup = (fd: number) => (fd < 0 ? -1 : sys().dup(fd));
    const spec: HostedComponentSpec = {
      ...given,
      rootFd: dup(given.rootFd),
      componentFd: dup(given.componentFd),
      stdio: given.stdio.map(dup) as [number, number, number],
      ...(given.hostDirs ? { hostDirs: given.hostDirs.map((d) => ({ ...d, fd: dup(d.fd) })) } : {}),
    };
    const compiled: CompiledModule[] = [];
    try {
      const glue = readEntryFile(spec.componentFd, spec.entry).toString('utf8');
      const modules: Record<string, WebAssembly.Module> = {};
      for (const e of listDirectory(spec.componentFd)) {
        const file = e.name.toString('utf8');
        if (!file.endsWith('.wasm')) continue;
        const c = await ctx.modules.acquire(readEntryFile(spec.componentFd, file));
        compiled.push(c);
        modules[file] = c.module;
      }
      const input: HostedComponentInput = {
        glue,
        modules,
        world: spec.world,
        args: spec.args,
        env: spec.env,
        cwd: spec.cwd,
        rootFd: spec.rootFd,
        preopens: spec.preopens,
        hostDirs: spec.hostDirs ?? [],
        stdio: spec.stdio,
        ctl: new SharedArrayBuffer(0), // replaced below
      };
      // Nothing of the host's environment reaches the thread, but the trace switch.
      const trace = process.env.TUGBOAT_WASI_TRACE;
      const worker = new (process.getBuiltinModule('node:worker_threads').Worker)(ctx.componentWorker, { stdout: false, stderr: false, env: trace ? { TUGBOAT_WASI_TRACE: trace } : {} });
      const h = new HostedComponent(spec, worker, input, compiled, spec.args[0] ?? 'component');
      input.ctl = h.ctl.buffer as SharedArrayBuffer;
      return h;
    } catch (err) {
      for (const c of compiled) c.release();
      HostedComponent.closeAll(spec);
      throw err;
    }
  }

  private static closeAll(spec: HostedComponentSpec): void {
    for (const fd of [...spec.stdio, spec.rootFd, spec.componentFd, ...(spec.hostDirs ?? []).map((d) => d.fd)]) closeQuietly(fd);
  }

  start(): void {
    if (this.started || this.over) return;
    this.started = true;
    this.worker.postMessage(this.input);
  }

  private onMessage(m: HostedComponentMessage): void {
    if (m.kind === 'listening') {
      void this.serve(m.port);
      return;
    }
    if (m.kind === 'request-failed') {
      say(this.spec.stdio[2], `${this.name}: request failed (answered 500): ${m.message}`);
      return;
    }
    void this.end(m);
  }

  private async serve(internalPort: number): Promise<void> {
    const [{ startHttpProxy }, { DEFAULT_HTTP_PORT }] = await Promise.all([import('./http-proxy.js'), import('../http/settings.js')]);
    const port = this.spec.port ?? DEFAULT_HTTP_PORT;
    this.proxy = await startHttpProxy(port, internalPort, () => undefined, (err) => void this.end({ kind: 'error', message: `cannot serve HTTP on port ${port}: ${err.message}` }));
  }

  /** The guest's fate: its thread is stopped, its line written, everything released. */
  private async end(outcome: GuestOutcome): Promise<void> {
    if (this.over) return;
    this.over = true;
    this.worker.removeAllListeners('exit');
    this.worker.removeAllListeners('error');
    this.proxy?.server.close();
    await this.worker.terminate().catch(() => undefined);
    const e = ending(outcome, this.name);
    if (e.message !== undefined) say(this.spec.stdio[2], e.message);
    for (const c of this.compiled) c.release();
    HostedComponent.closeAll(this.spec);
    this.finish({ status: e.status, oom: outcome.kind === 'oom', at: Date.now() });
  }

  kill(signal: number): void {
    if (!signalEndsGuest(signal) || this.over) return;
    const proxy = this.proxy;
    // An HTTP component drains its requests in flight on SIGTERM/SIGINT, as at `container` level.
    if (proxy && (signal === 15 || signal === 2)) {
      void proxy.drain().then(() => this.end({ kind: 'signal', signal }));
      return;
    }
    void this.end({ kind: 'signal', signal });
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
