// Puts an instance of an HTTP component back to its state when it was made,
// so that the next request meets what a fresh instance would give it,
// without making one. Making one costs ~1 ms for the hand-written handler
// (jco's glue runs its whole instantiate, V8 allocates the core instances in
// its old generation, and the major GCs that follow cost more than the
// rest) and ~20 ms for a componentize-js one.
//
// What an instance keeps from one call to the next, and how it goes back:
//   memories its core modules define  their bytes, copied back from a copy
//                                      taken when made (only the pages the
//                                      kernel saw written, where it can say:
//                                      written-pages.ts); a memory that grew
//                                      cannot shrink: the instance goes
//   mutable globals they define       set back (the transpile exported them:
//                                      instrument/state-exports.ts)
//   mutable globals the glue gave     set back (jco's instance flags)
//   tables, data and elem segments    unchanged: the transpile refuses a
//                                      component whose code may change them
//   jco's handle tables               emptied as jco makes them (they are
//                                      empty when made): a handle the guest
//                                      kept must be one of the host's
//                                      resources made for this instance,
//                                      which go with it; any other means
//                                      state outside the memory: the
//                                      instance goes
// Anything this cannot account for when the instance is made (a memory from
// outside its core modules) means no state: fresh instances, as before.
import { STATE_EXPORT_PREFIX } from '../instrument/names.js';
import { FLAG, type HandleTable } from './abi.js';

/** Tells which pages of a memory get written: userfaultfd (written-pages.ts), or the memory mapped on its image (image-pages.ts). */
export interface PageTracker {
  /** Watches `view`, which holds `saved` byte for byte now; undefined when it cannot. */
  watch(view: Uint8Array, saved: Uint8Array): WrittenRange | undefined;
  /** `saved`'s bytes read from the image a watched memory is mapped on (no copy of their own), where there is one. */
  image?(saved: Uint8Array): Uint8Array | undefined;
}

/** One memory watched. */
export interface WrittenRange {
  /** Is `view` the memory watched (same place, same length)? */
  at(view: Uint8Array): boolean;
  /** Copies `saved` back over `view` where pages were written; false when it did not (the caller copies all of it). */
  copyBack(view: Uint8Array, saved: Uint8Array): boolean;
}

const MEMORY_EXPORT = `${STATE_EXPORT_PREFIX}memory:`;
const GLOBAL_EXPORT = `${STATE_EXPORT_PREFIX}global:`;

/** What the glue hands the instantiateCore it is given (a line the transpile adds: linux-runtime/component-reset.ts). */
export interface GlueHooks {
  /** jco's HANDLE_TABLES of the instance being made (its handle tables, by index, filled as the glue runs). */
  handleTables(tables: HandleTable[]): void;
}

interface SavedMemory {
  memory: WebAssembly.Memory;
  bytes: Uint8Array;
  /** A view of the memory, kept while its buffer is: making one per reset cost more than the copy (measured: 12 of 17 µs for 128 KiB). */
  view: Uint8Array;
  /** The pages written since the last reset, where the kernel tells (large memories only). */
  written: WrittenRange | undefined;
}

/**
 * Memories smaller than this are copied back whole: asking the kernel which
 * pages were written costs more than copying 128 KiB (~4 µs).
 */
export const WATCHED_MIN_BYTES = 1 << 20;

interface SavedGlobal {
  global: WebAssembly.Global;
  value: WebAssembly.Global['value'];
}

/** Watches an instance being made: its core instances, what each was given, the glue's handle tables. */
export class InstanceWatch implements GlueHooks {
  readonly cores: WebAssembly.Instance[] = [];
  readonly #given: (WebAssembly.Imports | undefined)[] = [];
  #tables: HandleTable[] | undefined;

  handleTables(tables: HandleTable[]): void {
    this.#tables = tables;
  }

  made(core: WebAssembly.Instance, imports: WebAssembly.Imports | undefined): void {
    this.cores.push(core);
    this.#given.push(imports);
  }

  /**
   * The state of the instance just made, or why it cannot be put back.
   * `copies`: the copies other instances of the component took, shared
   * where this one's memory is byte for byte the same.
   */
  capture(copies?: MemoryCopies, pages?: () => PageTracker | undefined): InstanceState | string {
    if (!this.#tables) return "the glue did not hand over its handle tables (not patched by this Tugboat's transpile)";
    // A handle made while it was made would be in the copy of its memory, and gone from the emptied table.
    if (this.#tables.some((t) => t !== undefined && (t.length !== 2 || t[0] !== FLAG))) return 'its handle tables are not empty when it is made';
    const memories = new Map<WebAssembly.Memory, SavedMemory>();
    const globals = new Map<WebAssembly.Global, SavedGlobal>();
    let why: string | undefined;
    try {
      why = this.#collect(memories, globals, copies, pages);
    } catch (err) {
      // A v128 global: JavaScript can neither read nor set it (V8 throws a TypeError).
      if (err instanceof TypeError) return 'a mutable global JavaScript cannot read (v128)';
      // Anything else (a memory that could be mapped neither on its image nor back: image-pages.ts) leaves the instance unusable.
      throw err;
    }
    return why ?? new InstanceState([...memories.values()], [...globals.values()], this.#tables);
  }

  /** Fills `memories` and `globals`; why the instance cannot be put back, if a core module imports a memory that is not among them. */
  #collect(
    memories: Map<WebAssembly.Memory, SavedMemory>,
    globals: Map<WebAssembly.Global, SavedGlobal>,
    copies: MemoryCopies | undefined,
    pages: (() => PageTracker | undefined) | undefined,
  ): string | undefined {
    for (const [i, core] of this.cores.entries()) {
      for (const [name, value] of Object.entries(core.exports)) {
        if (name.startsWith(MEMORY_EXPORT) && value instanceof WebAssembly.Memory) {
          const view = new Uint8Array(value.buffer);
          const key = `${i} ${name}`;
          let bytes = copies ? copies.of(key, view) : view.slice();
          // Watched once copied: the copy and the memory are equal from here on, but for the pages the kernel will list.
          const tracker = pages && view.length >= WATCHED_MIN_BYTES ? pages() : undefined;
          const written = tracker?.watch(view, bytes);
          // Where the memory is mapped on an image, resets copy from the image's pages, and the copy goes.
          const image = written && tracker?.image?.(bytes);
          if (image) {
            copies?.adopt(key, bytes, image);
            bytes = image;
          }
          memories.set(value, { memory: value, bytes, view, written });
        }
        else if (name.startsWith(GLOBAL_EXPORT) && value instanceof WebAssembly.Global) globals.set(value, { global: value, value: value.value });
      }
    }
    for (const imports of this.#given) {
      for (const ns of Object.values(imports ?? {})) {
        for (const value of Object.values(ns)) {
          if (value instanceof WebAssembly.Memory && !memories.has(value)) return 'a core module imports a memory none of them defines';
          // Immutable ones cannot change: setting them back is a no-op, so all are kept alike.
          if (value instanceof WebAssembly.Global && !globals.has(value)) globals.set(value, { global: value, value: value.value });
        }
      }
    }
    return undefined;
  }
}

/**
 * The copies of memories taken when instances of one component were made,
 * one per memory: instances made from the same modules and imports mostly
 * start byte for byte alike, and then share one copy instead of holding one
 * each (a componentize-js instance's is 10 MiB; a pool holds 8 per thread).
 * Only ever read once taken: a reset copies from it, never into it.
 */
export class MemoryCopies {
  readonly #last = new Map<string, Uint8Array>();

  /** A copy of `view`: the one taken for `key` before if it is equal (a compare costs less than a copy), else a new one. */
  of(key: string, view: Uint8Array): Uint8Array {
    const last = this.#last.get(key);
    if (last !== undefined && Buffer.compare(last, view) === 0) return last;
    const copy = view.slice();
    this.#last.set(key, copy);
    return copy;
  }

  /** `image` holds what `copy` does (read from a file): it is shared from now on, and `copy` let go. */
  adopt(key: string, copy: Uint8Array, image: Uint8Array): void {
    if (this.#last.get(key) === copy) this.#last.set(key, image);
  }
}

export class InstanceState {
  readonly #memories: SavedMemory[];
  readonly #globals: SavedGlobal[];
  readonly #tables: HandleTable[];

  constructor(memories: SavedMemory[], globals: SavedGlobal[], tables: HandleTable[]) {
    this.#memories = memories;
    this.#globals = globals;
    this.#tables = tables;
  }

  /** Bytes copied back per reset. */
  get bytes(): number {
    let n = 0;
    for (const m of this.#memories) n += m.bytes.length;
    return n;
  }

  /**
   * Puts the instance back as it was made; false when it cannot be, and
   * then nothing was changed: the instance must go. It cannot when a memory
   * grew, or when the guest kept a handle whose resource `owned` does not
   * claim (some guests never drop their last ones: StarlingMonkey keeps
   * one); `release` lets go of the resources so claimed, before their
   * handles go with the tables.
   */
  restore(owned: (rep: number) => boolean, release: () => void): boolean {
    for (const m of this.#memories) {
      if (m.view.length === m.bytes.length) continue;
      // Detached (length 0): a grow, even of 0 pages, gives the memory a new buffer, which says its size now.
      const buffer = m.memory.buffer;
      if (buffer.byteLength !== m.bytes.length) return false;
      m.view = new Uint8Array(buffer);
      // A new buffer at another address is not the range watched.
      if (m.written && !m.written.at(m.view)) m.written = undefined;
    }
    for (const t of this.#tables) if (t !== undefined && !everyHeld(t, owned)) return false;
    release();
    for (const m of this.#memories) if (!m.written?.copyBack(m.view, m.bytes)) m.view.set(m.bytes);
    for (const g of this.#globals) if (g.global.value !== g.value) g.global.value = g.value;
    for (const t of this.#tables) if (t !== undefined) emptyTable(t);
    return true;
  }
}

/**
 * Does `owned` claim the rep of every live handle (a slot past the sentinel
 * whose scope word is not a free-list link: jco's layout, abi.ts)?
 */
function everyHeld(t: HandleTable, owned: (rep: number) => boolean): boolean {
  for (let i = 2; i + 1 < t.length; i += 2) if ((t[i]! & FLAG) === 0 && t[i + 1] !== 0 && !owned(t[i + 1]! & ~FLAG)) return false;
  return true;
}

/** As jco makes a table: the sentinel alone (its free list empty), no reps remembered. */
function emptyTable(t: HandleTable): void {
  // Each only when needed: setting an array's length, or clearing a Set, is a call into V8's C++ (and a clear makes a new table) even when nothing changes (~3 µs a reset, componentize-js's tables).
  if (t.length !== 2) t.length = 2;
  t[0] = FLAG;
  t[1] = 0;
  const created = t._createdReps;
  if (created !== undefined && created.size !== 0) created.clear();
}
