// The thread of one component guest in a shared host (bundled as
// dist/host/hosted-component.mjs; the host's side is shared/hosted-component.ts).
//
// jco's glue enters the guest's core modules from JavaScript, and a core
// module calls another through JavaScript frames: JSPI cannot suspend there,
// so a component cannot share a thread with other guests the way a preview1
// module does. Each component guest gets this thread: the kernel schedules
// it beside the host's, `worker.terminate()` ends it even while it spins, and
// pause waits here, at the yield points of its core modules
// (Atomics.wait on a flag the host sets). Its core modules were instrumented
// and compiled by the host's cache (shared by every guest with the same
// component) and arrive here compiled.
//
// What the guest sees: its args, env and working directory; its stdio
// descriptors; its root, preopens and host directories through Tugboat's
// own wasi:filesystem (./p2/, the same as at `container` level: descriptors
// and kernel-resolved paths, never a host path); the host's network.
import { readSync } from 'node:fs';
import { threadCpuUsage } from 'node:process';
import { parentPort } from 'node:worker_threads';
import { componentExit, componentOutcome } from './component-outcome.js';
import { runExport } from './component-run.js';
import { fdOutputStream } from './component-shim.js';
import { serveIncomingHandler, type HttpTypes } from './shared/hosted-http.js';
import { envListToObject } from './guest-config.js';
import { START_EXPORT } from './instrument/names.js';
import type { GuestOutcome } from './outcome.js';
import { createFilesystem, hostInputStream, wasiImports } from './p2/index.js';
import * as p2 from './p2/shim.js';
import { CTL, type HostedComponentInput } from './shared/component-protocol.js';

const PAGE = 65536;

type Instantiate = (
  getCoreModule: (name: string) => WebAssembly.Module,
  imports: object,
  instantiateCore: (m: WebAssembly.Module, i?: WebAssembly.Imports) => WebAssembly.Instance,
) => Record<string, unknown>;

/** The guest's stdin: a descriptor the host handed over (a FIFO, a pipe, /dev/null), read on this thread. */
function stdinStream(fd: number) {
  return hostInputStream({
    read(max) {
      const buf = Buffer.allocUnsafe(max);
      let n: number;
      try {
        n = readSync(fd, buf, 0, max, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return new Uint8Array(0);
        throw err;
      }
      return n === 0 ? null : buf.subarray(0, n);
    },
  });
}

function imports(input: HostedComponentInput): Record<string, unknown> {
  const stdout = fdOutputStream(input.stdio[1]);
  const stderr = fdOutputStream(input.stdio[2]);
  const stdin = stdinStream(input.stdio[0]);
  const env = Object.entries(envListToObject(input.env));
  const cli = {
    ...p2.cli,
    environment: { getArguments: () => input.args, getEnvironment: () => env, initialCwd: () => input.cwd },
    stdin: { getStdin: () => stdin },
    stdout: { getStdout: () => stdout },
    stderr: { getStderr: () => stderr },
    exit: componentExit,
  };
  const filesystem = createFilesystem({ args: input.args, env: input.env, cwd: input.cwd, preopens: input.preopens }, { rootFd: input.rootFd, hostDirs: input.hostDirs });
  return wasiImports({ cli, filesystem });
}

/** The guest's core instances: yield points that wait while paused, and memory grows within the limit. */
class Cores {
  private readonly memories: WebAssembly.Memory[] = [];
  private counter = 0;
  growRefused = false;

  constructor(private readonly ctl: Int32Array) {}

  private publish(): void {
    let pages = 0;
    for (const m of this.memories) pages += m.buffer.byteLength / PAGE;
    Atomics.store(this.ctl, CTL.PAGES, pages);
    const cpu = threadCpuUsage();
    Atomics.store(this.ctl, CTL.CPU_MS, Math.round((cpu.user + cpu.system) / 1000));
  }

  private readonly yieldPoint = (): void => {
    if (Atomics.load(this.ctl, CTL.PAUSE) === 1) {
      this.publish();
      while (Atomics.load(this.ctl, CTL.PAUSE) === 1) Atomics.wait(this.ctl, CTL.PAUSE, 1);
    }
    if ((++this.counter & 63) === 0) this.publish();
  };

  private grow(memory: WebAssembly.Memory | undefined, delta: number): number {
    if (!memory) return -1;
    const limit = Atomics.load(this.ctl, CTL.LIMIT_PAGES);
    let pages = 0;
    for (const m of this.memories) pages += m.buffer.byteLength / PAGE;
    if (limit > 0 && pages + delta > limit) {
      this.growRefused = true;
      return -1;
    }
    try {
      const old = memory.grow(delta);
      this.publish();
      return old;
    } catch {
      this.growRefused = true;
      return -1;
    }
  }

  /** jco's instantiateCore: instantiate with our imports, then run the start function the instrumenter moved out. */
  readonly instantiate = (module: WebAssembly.Module, given: WebAssembly.Imports = {}): WebAssembly.Instance => {
    let memory: WebAssembly.Memory | undefined;
    const tugboat = { yield: this.yieldPoint, memory_grow: (delta: number) => this.grow(memory, delta >>> 0) };
    const instance = new WebAssembly.Instance(module, { ...given, tugboat });
    const exported = Object.values(instance.exports).find((v): v is WebAssembly.Memory => v instanceof WebAssembly.Memory);
    const imported = WebAssembly.Module.imports(module).find((i) => i.kind === 'memory');
    memory = exported ?? (imported ? (given[imported.module]?.[imported.name] as WebAssembly.Memory | undefined) : undefined);
    if (exported && !this.memories.includes(exported)) this.memories.push(exported);
    this.publish();
    const start = instance.exports[START_EXPORT];
    if (typeof start === 'function') (start as () => void)();
    return instance;
  };
}

/** The guest's ending, with a trap after a refused grow counted as running out of memory. */
function outcome(cores: Cores, thrown: unknown, returned: boolean): GuestOutcome {
  const o = componentOutcome(thrown, returned);
  return o.kind === 'trap' && cores.growRefused ? { kind: 'oom' } : o;
}

async function loadGlue(glue: string): Promise<Instantiate> {
  const url = `data:text/javascript;base64,${Buffer.from(glue).toString('base64')}`;
  return ((await import(url)) as { instantiate: Instantiate }).instantiate;
}

async function runCommand(input: HostedComponentInput, cores: Cores): Promise<GuestOutcome> {
  let instance: Record<string, unknown>;
  try {
    const instantiate = await loadGlue(input.glue);
    instance = await instantiate((name) => module(input, name), imports(input), cores.instantiate);
  } catch (err) {
    if (cores.growRefused) return { kind: 'oom' };
    return { kind: 'link', message: `cannot instantiate component: ${(err as Error).message ?? String(err)}` };
  }
  const run = runExport(instance);
  if (!run) return { kind: 'link', message: 'component exports no wasi:cli/run (not a command component)' };
  try {
    await run();
    return outcome(cores, undefined, true);
  } catch (err) {
    return outcome(cores, err, false);
  }
}

function module(input: HostedComponentInput, name: string): WebAssembly.Module {
  const m = input.modules[name];
  if (!m) throw new Error(`the component has no core module ${name}`);
  return m;
}

/** wasi:http/incoming-handler: a fresh instance per request, as at `container` level (component-run.ts serveHttp). */
async function serveHttp(input: HostedComponentInput, cores: Cores): Promise<GuestOutcome | undefined> {
  const imp = imports(input);
  const types = imp['wasi:http/types'] as HttpTypes;
  let instantiate: Instantiate;
  try {
    instantiate = await loadGlue(input.glue);
  } catch (err) {
    return { kind: 'link', message: `cannot load component: ${(err as Error).message}` };
  }
  const fresh = () => instantiate((name) => module(input, name), imp, cores.instantiate);
  return serveIncomingHandler(types, fresh);
}

// A warning Node prints from this thread (an experimental API, a descriptor
// closed behind its back) would land on the stderr of whoever hosts us,
// which may be the guest's own (`tugboat run --isolation process`).
process.removeAllListeners('warning');

parentPort?.once('message', (input: HostedComponentInput) => {
  const cores = new Cores(new Int32Array(input.ctl));
  const run = input.world === 'http' ? serveHttp(input, cores) : runCommand(input, cores);
  void run.then(
    (result) => result && parentPort?.postMessage(result),
    (err: unknown) => parentPort?.postMessage({ kind: 'error', message: (err as Error).message ?? String(err) } satisfies GuestOutcome),
  );
});
