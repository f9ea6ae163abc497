// Compiled guests of one shared host, by the sha256 of their bytes: two
// containers running the same module instrument and compile it once. What is
// compiled is the instrumented module (yield points for fairness, pause and
// kill; the grow hook for memory limits), which is the same whatever a
// container's memory limit, since the limit is the host's to enforce at each
// grow. A module no guest uses any more stays for a while (the last
// IDLE_KEPT), so a container restarted in a loop does not recompile.
import { yieldInterval } from '../../defaults.js';
import { DEFAULT_YIELD_INTERVAL, instrument } from '../instrument/index.js';

const IDLE_KEPT = 16;

export interface CompiledModule {
  module: WebAssembly.Module;
  /** sha256 of the guest's own bytes. */
  sha256: string;
  /** Drop this guest's hold on the module. */
  release(): void;
}

interface Entry {
  compiled: Promise<WebAssembly.Module>;
  users: number;
}

export class ModuleCache {
  private readonly entries = new Map<string, Entry>();
  /** Keys of entries nobody uses, oldest first. */
  private readonly idle: string[] = [];
  compilations = 0;

  /** `interval` 0: no yield points (see TUGBOAT_YIELD_INTERVAL). */
  constructor(private readonly interval = yieldInterval() ?? DEFAULT_YIELD_INTERVAL) {}

  /**
   * The compiled, instrumented module for `bytes`. Throws what instrumenting
   * throws (WasmDecodeError, WasmUnsupportedError: not runnable) or a
   * WebAssembly.CompileError.
   */
  async acquire(bytes: Uint8Array): Promise<CompiledModule> {
    // crypto loads with the first module hashed: the CLI names this engine for every command.
    const sha256 = process.getBuiltinModule('node:crypto').createHash('sha256').update(bytes).digest('hex');
    let entry = this.entries.get(sha256);
    if (!entry) {
      this.compilations++;
      const compiled = (async () => WebAssembly.compile(instrument(bytes, { ...(this.interval > 0 ? { yieldPoints: { interval: this.interval } } : {}), growHook: true }).bytes as Uint8Array<ArrayBuffer>))();
      entry = { compiled, users: 0 };
      this.entries.set(sha256, entry);
      // A failure is not cached: the next container gets a fresh attempt (and the same error).
      compiled.catch(() => this.entries.get(sha256) === entry && this.entries.delete(sha256));
    }
    entry.users++;
    const i = this.idle.indexOf(sha256);
    if (i >= 0) this.idle.splice(i, 1);
    const e = entry;
    let held = true;
    try {
      const module = await e.compiled;
      return {
        module,
        sha256,
        release: () => {
          if (!held) return;
          held = false;
          this.unuse(sha256, e);
        },
      };
    } catch (err) {
      this.unuse(sha256, e);
      throw err;
    }
  }

  /** Modules compiled and held (in use or idle). */
  get size(): number {
    return this.entries.size;
  }

  private unuse(key: string, entry: Entry): void {
    if (--entry.users > 0 || this.entries.get(key) !== entry) return;
    this.idle.push(key);
    while (this.idle.length > IDLE_KEPT) this.entries.delete(this.idle.shift()!);
  }
}
