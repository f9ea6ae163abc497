// Which pages of a guest's memory were written since it was made, where
// userfaultfd cannot say (written-pages.ts: Linux before 6.7, such as
// Debian 12's 6.1; or a seccomp filter not known to let userfaultfd run, such
// as Docker's default): a reset (reset.ts) then copies back those pages only,
// not the whole memory.
//
// How: the memory's bytes as made are written once to an unnamed file in
// /dev/shm (O_TMPFILE: no name anyone could open), and the file is mapped
// private over the memory's own pages, at the same address (V8 never learns:
// the same bytes at the same place). A page read maps the file's page; the
// first write to a page, by anyone (the guest, jco's glue, our host
// functions, the kernel in a read(2)), gives the memory a private copy of
// it. /proc/self/pagemap tells the two apart on every kernel since 3.5 (its
// "file page" bit), so the pages written are the private ones.
//
// Why not always: reading pagemap walks every page of the memory (~100 µs
// for 10 MiB on this VM, where PAGEMAP_SCAN lists only the written ones in a
// few µs). Measured on a componentize-js server, one thread: whole copies
// ~900 µs of CPU a request, written pages by userfaultfd ~280 µs.
//
// Also: the pages a request only reads are the file's, one copy for every
// instance mapped on it, not one each.
//
// Needs nothing a seccomp profile that lets Node run would refuse: openat,
// mmap, madvise, pread.
import { readSync, writeSync } from 'node:fs';
import { declareNative, type Koffi } from '../../koffi-native.js';
import type { FdLedger } from '../p2/fd-ledger.js';
import { sys } from '../preview1/sys.js';
import { WrittenRuns } from './written-runs.js';
import { declareMemoryCalls, openPagemap, PagemapScan, type MemoryCalls, PAGE_IS_FILE, PAGE_IS_PRESENT, PAGE_IS_SWAPPED, type ScanQuery } from './pagemap.js';

const AT_FDCWD = -100;
const SHM = Buffer.from('/dev/shm\0');
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
// O_TMPFILE includes O_DIRECTORY, as the kernel defines it.
const O_TMPFILE = 0o20200000;
const PROT_READ = 1;
const PROT_READ_WRITE = 3;
const MAP_PRIVATE = 0x02;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MADV_DONTNEED = 4;
const PAGE = 4096;
// A pagemap entry's high word (bits 32-63): 63 present, 62 swapped (or a migration entry), 61 a file page.
const PM_PRESENT = 0x8000_0000;
const PM_SWAPPED = 0x4000_0000;
const PM_FILE = 0x2000_0000;

/** The pages not the file's (inverted), present or swapped out: the private ones. */
const PRIVATE: ScanQuery = { flags: 0n, inverted: PAGE_IS_FILE, all: PAGE_IS_FILE, anyOf: PAGE_IS_PRESENT | PAGE_IS_SWAPPED, returned: PAGE_IS_PRESENT };

const SC_PAGESIZE = 30;

interface Calls extends MemoryCalls {
  pageSize(): number;
  mmap(addr: bigint, length: number, prot: number, flags: number, fd: number, offset: number): bigint;
  madvise(addr: bigint, length: number, advice: number): number;
}

let calls: Calls | undefined;

function declare(k: Koffi): Calls {
  const libc = k.load('libc.so.6');
  const mmap = libc.func('uintptr_t mmap(uintptr_t addr, size_t length, int prot, int flags, int fd, long offset)') as unknown as (...a: unknown[]) => number | bigint;
  const madvise = libc.func('int madvise(uintptr_t addr, size_t length, int advice)') as unknown as (...a: unknown[]) => number;
  const sysconf = libc.func('long sysconf(int name)') as unknown as (name: number) => number | bigint;
  return {
    ...declareMemoryCalls(k),
    pageSize: () => Number(sysconf(SC_PAGESIZE)),
    mmap: (addr, length, prot, flags, fd, offset) => BigInt(mmap(addr, length, prot, flags, fd, offset)),
    madvise: (addr, length, advice) => madvise(addr, length, advice),
  };
}

/** A thread's images of memories as made, and its pagemap. */
export class ImageWatch {
  readonly #c: Calls;
  readonly #pagemap: number;
  readonly #ledger: FdLedger | undefined;
  /** Each descriptor's slot in the ledger. */
  readonly #slots = new Map<number, number>();
  /** One file per copy (reset.ts's MemoryCopies shares a copy among instances whose memories are made alike, and so the file); an image read from its file (image()) names the same one. */
  readonly #files = new Map<Uint8Array, number>();
  /** Each file's bytes as a view of the file's own pages (image()). */
  readonly #images = new Map<number, Uint8Array>();
  #closed = false;
  /** Does the kernel list the written pages itself (PAGEMAP_SCAN, Linux 6.7), or are all entries read? */
  #scans = true;
  readonly #scan: PagemapScan;
  /** Pagemap entries, where they are read (two words a page). */
  #entries = new Uint32Array(0);
  /** Why no file could be made (then no other is tried). */
  #refused: string | undefined;

  private constructor(c: Calls, pagemap: number, ledger: FdLedger | undefined) {
    this.#c = c;
    this.#pagemap = pagemap;
    this.#ledger = ledger;
    this.#record(pagemap);
    this.#scan = new PagemapScan(c);
  }

  /**
   * This thread's watch, or why there is none. `ledger`: where a shared
   * host finds its descriptors if the thread is ended without closing them.
   * `readEntries`: read every page's entry even where the kernel could list
   * the written ones (what a kernel before 6.7 does; for tests and benches).
   */
  static open(options: { ledger?: FdLedger; readEntries?: boolean } = {}): ImageWatch | string {
    if (process.arch !== 'x64' && process.arch !== 'arm64') return `no pagemap layout known on ${process.arch}`;
    let c: Calls;
    try {
      c = calls ??= declareNative(declare);
    } catch (err) {
      return `cannot load koffi: ${(err as Error).message}`;
    }
    // Runs and pagemap entries are counted in 4 KiB pages (an arm64 kernel may have 16 or 64 KiB ones).
    if (c.pageSize() !== PAGE) return `pages of ${c.pageSize()} bytes, not ${PAGE}`;
    const pagemap = openPagemap();
    if (typeof pagemap === 'string') return pagemap;
    const watch = new ImageWatch(c, pagemap, options.ledger);
    if (options.readEntries === true) watch.#scans = false;
    const why = watch.#selfTest();
    if (why !== undefined) {
      watch.close();
      return why;
    }
    return watch;
  }

  /** Does pagemap tell a page written from one read, on a memory of our own mapped as a guest's would be? */
  #selfTest(): string | undefined {
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer);
    const saved = view.slice();
    try {
      const range = this.watch(view, saved);
      if (!range) return this.#refused ?? 'cannot map a memory on its image';
      let sum = 0;
      for (let i = 0; i < view.length; i += PAGE) sum += view[i]!;
      view[5 * PAGE + 7] = 1 + sum;
      const runs: number[] = [];
      if (!range.written((from, to) => runs.push(from, to))) {
        this.#scans = false;
        if (!range.written((from, to) => runs.push(from, to))) return `pagemap could not be read (errno ${this.#c.errno()})`;
      }
      if (runs.length !== 2 || runs[0] !== 5 * PAGE || runs[1] !== 6 * PAGE) return `pagemap does not tell the page written (${runs.join(',')})`;
      return undefined;
    } finally {
      this.#forget(saved);
    }
  }

  /** How the written pages are told: listed by the kernel, or every page's entry read. */
  get how(): 'PAGEMAP_SCAN' | 'pagemap entries' {
    return this.#scans ? 'PAGEMAP_SCAN' : 'pagemap entries';
  }

  /** Closes the file of `saved` (memories mapped on it keep it). */
  #forget(saved: Uint8Array): void {
    const fd = this.#files.get(saved);
    if (fd === undefined) return;
    this.#files.delete(saved);
    const slot = this.#slots.get(fd);
    if (slot !== undefined) this.#ledger!.forget(slot);
    this.#slots.delete(fd);
    sys().close(fd);
  }

  /**
   * Maps the image of `saved` (what `view` holds now, byte for byte) over
   * `view`'s pages; undefined when it cannot (then the memory is as it was).
   */
  watch(view: Uint8Array, saved: Uint8Array): ImageRange | undefined {
    if (this.#closed || view.byteLength !== saved.byteLength || view.byteLength % PAGE !== 0) return undefined;
    const fd = this.#fileOf(saved);
    if (fd === undefined) return undefined;
    const c = this.#c;
    const start = c.addressOf(view);
    if (start % BigInt(PAGE) !== 0n) return undefined;
    if (c.mmap(start, view.byteLength, PROT_READ_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) === start) return new ImageRange(this, start, view.byteLength);
    // A failed MAP_FIXED may have unmapped the pages already: make them memory again, with the bytes they held.
    if (c.mmap(start, view.byteLength, PROT_READ_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !== start) throw new Error(`cannot map a guest's memory back (errno ${c.errno()})`);
    view.set(saved);
    return undefined;
  }

  /**
   * The bytes of `saved` read from its file's own pages: a memory of V8's
   * (so V8 unmaps it when it is collected, or the thread ends) with the
   * file mapped read-only over it. The pages are the ones every memory
   * mapped on the file reads, so a reset that copies from here holds no
   * copy of its own: the thread's JS copy of a componentize-js memory
   * (10 MiB) goes. Undefined where `saved` has no file or cannot be mapped.
   */
  image(saved: Uint8Array): Uint8Array | undefined {
    const fd = this.#files.get(saved);
    if (fd === undefined || this.#closed) return undefined;
    const known = this.#images.get(fd);
    if (known !== undefined) return known;
    const WASM_PAGE = 65536;
    if (saved.byteLength % WASM_PAGE !== 0 || saved.byteLength === 0) return undefined;
    const view = new Uint8Array(new WebAssembly.Memory({ initial: saved.byteLength / WASM_PAGE }).buffer);
    const c = this.#c;
    const start = c.addressOf(view);
    if (c.mmap(start, view.byteLength, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) !== start) {
      // As in watch(): the pages may be gone; they must be memory again before V8 meets them.
      if (c.mmap(start, view.byteLength, PROT_READ_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !== start) throw new Error(`cannot map a memory back (errno ${c.errno()})`);
      return undefined;
    }
    this.#images.set(fd, view);
    this.#files.set(view, fd);
    return view;
  }

  /** The file holding `saved`, made the first time it is asked for. */
  #fileOf(saved: Uint8Array): number | undefined {
    const known = this.#files.get(saved);
    if (known !== undefined) return known;
    if (this.#refused !== undefined) return undefined;
    let fd: number;
    try {
      fd = sys().openat(AT_FDCWD, SHM, O_TMPFILE | O_RDWR | O_CLOEXEC, 0o600);
    } catch (err) {
      this.#refused = `cannot make a file in /dev/shm: ${(err as Error).message}`;
      return undefined;
    }
    try {
      for (let at = 0; at < saved.byteLength; ) at += writeSync(fd, saved, at, saved.byteLength - at, at);
    } catch {
      // Full (a container's /dev/shm is 64 MiB by default): this memory is copied whole, the next may fit.
      sys().close(fd);
      return undefined;
    }
    this.#files.set(saved, fd);
    this.#record(fd);
    return fd;
  }

  #record(fd: number): void {
    if (this.#ledger) this.#slots.set(fd, this.#ledger.record(fd));
  }

  /**
   * Calls `run(from, to)` (byte offsets from `start`) for each run of pages
   * of [start, start + length) written since mapped or last dropped; false
   * when pagemap could not be read.
   */
  written(start: bigint, length: number, run: (from: number, to: number) => void): boolean {
    if (this.#closed) return false;
    return this.#scans ? this.#scan.scan(this.#pagemap, start, start + BigInt(length), PRIVATE, run) : this.#read(start, length, run);
  }

  /** Before Linux 6.7: every page's entry read, and told apart here. */
  #read(start: bigint, length: number, run: (from: number, to: number) => void): boolean {
    const pages = length / PAGE;
    if (this.#entries.length < 2 * pages) this.#entries = new Uint32Array(2 * pages);
    const e = this.#entries;
    const bytes = pages * 8;
    const at = Number(start / BigInt(PAGE)) * 8;
    try {
      for (let done = 0; done < bytes; ) {
        const n = readSync(this.#pagemap, e, done, bytes - done, at + done);
        if (n <= 0) return false;
        done += n;
      }
    } catch {
      return false;
    }
    let first = -1;
    for (let p = 0; p < pages; p++) {
      const hi = e[2 * p + 1]!;
      // Private (written) when present and not the file's, or swapped out (only a private page can be: the file's is dropped, not swapped, from a mapping).
      const written = (hi & PM_SWAPPED) !== 0 || ((hi & PM_PRESENT) !== 0 && (hi & PM_FILE) === 0);
      if (written && first < 0) first = p;
      else if (!written && first >= 0) {
        run(first * PAGE, p * PAGE);
        first = -1;
      }
    }
    if (first >= 0) run(first * PAGE, pages * PAGE);
    return true;
  }

  /** Gives the pages of [start, start + length) back to the file (its private copies dropped). */
  drop(start: bigint, length: number): boolean {
    return this.#c.madvise(start, length, MADV_DONTNEED) === 0;
  }

  addressOf(view: Uint8Array): bigint {
    return this.#c.addressOf(view);
  }

  /** Closes the pagemap and the files (the memories mapped on them keep them). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const fds = [this.#pagemap, ...new Set(this.#files.values())];
    // Out of the ledger first: the host must never close a number the kernel has given to someone else since.
    for (const slot of this.#slots.values()) this.#ledger!.forget(slot);
    for (const fd of fds) sys().close(fd);
  }
}

// Pages written since the last drop go back to the image only once they
// outgrow twice one request's (written-runs.ts). Until then a page stays
// private from its first write and is copied back at each reset, written
// again or not: a drop costs far more than the copy. Each run dropped is a
// TLB shootdown, and each page's next write a copy-on-write fault, which
// interrupts every CPU running another thread of the host (measured,
// componentize-js on two handler threads: dropping every 64th reset cost
// ~25% more CPU a request). The pages a guest writes again and again stay
// its own: ~76 of a componentize-js instance's 2,576.

/** One memory mapped on its image. */
export class ImageRange {
  readonly #watch: ImageWatch;
  readonly #start: bigint;
  readonly #length: number;
  readonly #runs = new WrittenRuns();
  #wholeFromNowOn = false;
  /** Bytes one request wrote, at the first reset after the last drop (0: none since). */
  #oneRequest = 0;

  constructor(watch: ImageWatch, start: bigint, length: number) {
    this.#watch = watch;
    this.#start = start;
    this.#length = length;
  }

  /** Is `view` the memory mapped (same place, same length)? */
  at(view: Uint8Array): boolean {
    return this.#watch.addressOf(view) === this.#start && view.byteLength === this.#length;
  }

  /** Calls `run(from, to)` (byte offsets) for each run of pages written since the last drop; false when pagemap could not be read. */
  written(run: (from: number, to: number) => void): boolean {
    return this.#watch.written(this.#start, this.#length, run);
  }

  /**
   * Copies `saved` back over `view` where pages were written; false when it
   * did not (the caller copies all of it): pagemap could not be read, or one
   * request wrote more than a quarter of the memory (then it is copied whole
   * from now on, as written-pages.ts does). Once the pages written since the
   * last drop outgrow twice one request's (written-runs.ts), they are
   * dropped instead: they are the file's again, which holds `saved`.
   */
  copyBack(view: Uint8Array, saved: Uint8Array): boolean {
    if (this.#wholeFromNowOn) return false;
    const runs = this.#runs;
    if (!this.written(runs.restart())) return false;
    if (runs.list.length === 0) return true;
    const oneRequest = this.#oneRequest === 0;
    if (oneRequest && runs.bytes > this.#length / 4) {
      this.#wholeFromNowOn = true;
      return false;
    }
    if (oneRequest) this.#oneRequest = runs.bytes;
    if (!runs.outgrew(this.#oneRequest)) {
      runs.copy(view, saved);
      return true;
    }
    this.#oneRequest = 0;
    const list = runs.list;
    for (let i = 0; i < list.length; i += 2) {
      if (!this.#watch.drop(this.#start + BigInt(list[i]!), list[i + 1]! - list[i]!)) {
        // Not dropped: copied back, as any other time.
        view.set(saved.subarray(list[i]!, list[i + 1]!), list[i]!);
      }
    }
    return true;
  }
}
