// The core instances of one component guest of a shared host, on one of its
// threads (its command thread, hosted-component-worker.ts, or each of its HTTP
// handler threads, ../http/). Its core modules were instrumented by the host's
// cache: they import `tugboat.yield` (a yield point: waits here while the
// host has paused the guest) and `tugboat.memory_grow` (every memory.grow:
// refused beyond the guest's limit), and their start function was moved out.
//
// Every thread of a guest shares its control array (component-protocol.ts
// CTL). PAGES and CPU_MS are sums over those threads: each adds what changed
// on its side. A grow reserves its pages in PAGES before it grows, so two
// threads growing at once cannot both pass the limit. An HTTP handler thread
// lets go of an instance after its request (track): its memories stop
// counting then.
import { threadCpuUsage } from 'node:process';
import { START_EXPORT } from '../instrument/names.js';
import { CTL } from './component-protocol.js';

const PAGE = 65536;

export class Cores {
  private readonly memories = new Set<WebAssembly.Memory>();
  /** Pages this thread has added to CTL.PAGES. */
  private pages = 0;
  /** Milliseconds of CPU this thread has added to CTL.CPU_MS. */
  private cpuMs = 0;
  private counter = 0;
  /** The memories instantiated since `track` began. */
  private tracking: WebAssembly.Memory[] | undefined;
  /** A grow was refused: a trap that follows is the guest running out of memory. */
  growRefused = false;

  constructor(private readonly ctl: Int32Array) {}

  private publish(): void {
    let pages = 0;
    for (const m of this.memories) pages += m.buffer.byteLength / PAGE;
    Atomics.add(this.ctl, CTL.PAGES, pages - this.pages);
    this.pages = pages;
    const cpu = threadCpuUsage();
    const ms = Math.round((cpu.user + cpu.system) / 1000);
    Atomics.add(this.ctl, CTL.CPU_MS, ms - this.cpuMs);
    this.cpuMs = ms;
  }

  /** A yield point: waits while the guest is paused (and tells the host what it holds now and then). */
  readonly yieldPoint = (): void => {
    if (Atomics.load(this.ctl, CTL.PAUSE) === 1) {
      this.publish();
      while (Atomics.load(this.ctl, CTL.PAUSE) === 1) Atomics.wait(this.ctl, CTL.PAUSE, 1);
    }
    if ((++this.counter & 63) === 0) this.publish();
  };

  private grow(memory: WebAssembly.Memory | undefined, delta: number): number {
    if (!memory) return -1;
    const limit = Atomics.load(this.ctl, CTL.LIMIT_PAGES);
    const before = Atomics.add(this.ctl, CTL.PAGES, delta);
    if (limit > 0 && before + delta > limit) {
      Atomics.sub(this.ctl, CTL.PAGES, delta);
      this.growRefused = true;
      return -1;
    }
    try {
      const old = memory.grow(delta);
      if (this.memories.has(memory)) this.pages += delta;
      else Atomics.sub(this.ctl, CTL.PAGES, delta);
      return old;
    } catch {
      Atomics.sub(this.ctl, CTL.PAGES, delta);
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
    if (exported && !this.memories.has(exported)) {
      this.memories.add(exported);
      this.tracking?.push(exported);
    }
    this.publish();
    const start = instance.exports[START_EXPORT];
    if (typeof start === 'function') (start as () => void)();
    return instance;
  };

  /**
   * Runs `make` (which instantiates one component instance) and returns what
   * it made with the release of the memories it instantiated: they stop
   * counting towards the guest's once the instance is let go.
   */
  track<T>(make: () => T): { value: T; release(): void } {
    const outer = this.tracking;
    const mine: WebAssembly.Memory[] = [];
    this.tracking = mine;
    let value: T;
    try {
      value = make();
    } catch (err) {
      this.forget(mine);
      throw err;
    } finally {
      this.tracking = outer;
    }
    return { value, release: () => this.forget(mine) };
  }

  private forget(memories: WebAssembly.Memory[]): void {
    for (const m of memories.splice(0)) this.memories.delete(m);
    this.publish();
  }
}
