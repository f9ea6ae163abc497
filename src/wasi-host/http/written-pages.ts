// Which pages of a guest's memory were written since the host last looked,
// as the kernel saw it: a reset (reset.ts) then copies back those pages
// only, instead of the whole memory.
//
// Why: a componentize-js instance's memory is 10 MiB, and copying all of
// it back after each request was ~2 of its ~2.9 ms of CPU per request
// (perf, one thread, a server under load); a request writes ~76 of its
// 2,576 pages.
//
// Why the kernel, not a store barrier in the guest's code: the guest is not
// the only writer. jco's glue and our host functions write results into
// guest memory from JavaScript, and the kernel writes into it (a read(2)
// into a guest's buffer). userfaultfd's write-protect in asynchronous mode
// (Linux 6.7: UFFD_FEATURE_WP_ASYNC) sees every one of them: the first write
// to a protected page, from any of them, unprotects it without stopping
// anyone (no fault handler, no events to read), and PAGEMAP_SCAN on
// /proc/self/pagemap lists the unprotected ("written") pages. A page it does
// not list is unchanged since it was protected.
//
// Where this is unavailable (an older kernel; a seccomp profile that refuses
// userfaultfd, as Docker's default does without CAP_SYS_PTRACE), `open`
// says why, and the thread tells written pages by the memory's image alone
// (image-pages.ts, page-trackers.ts), or copies it whole. Under a seccomp
// filter it is tried only when the caller knows the filter lets the call run
// or fail with an errno: a profile may as well kill or trap on it, and a
// speed-up must not cost a container its host. UFFD_USER_MODE_ONLY
// lets an unprivileged process have one (vm.unprivileged_userfaultfd=0),
// and asynchronous write-protect still sees the kernel's own writes.
import { readFileSync } from 'node:fs';
import { declareNative, type Koffi } from '../../koffi-native.js';
import type { FdLedger } from '../p2/fd-ledger.js';
import { sys } from '../preview1/sys.js';
import { WrittenRuns } from './written-runs.js';
import { declareMemoryCalls, openPagemap, PagemapScan, type MemoryCalls, PAGE_IS_WRITTEN, PM_SCAN_CHECK_WPASYNC, PM_SCAN_WP_MATCHING, type ScanQuery } from './pagemap.js';

/** The pages written (not write-protected) since last protected; and the same, protected again by the walk. */
const WRITTEN: ScanQuery = { flags: 0n, inverted: 0n, all: PAGE_IS_WRITTEN, anyOf: 0n, returned: PAGE_IS_WRITTEN };
const WRITTEN_PROTECTED_AGAIN: ScanQuery = { ...WRITTEN, flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC };

const SYS_USERFAULTFD: Partial<Record<string, number>> = { x64: 323, arm64: 282 };
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const UFFD_USER_MODE_ONLY = 1;
const UFFD_API = 0xaan;
const UFFD_FEATURE_WP_UNPOPULATED = 1n << 13n;
const UFFD_FEATURE_WP_ASYNC = 1n << 15n;
// _IOWR(0xAA, nr, size) for struct uffdio_api (24 bytes), uffdio_register (32), uffdio_writeprotect (24).
const UFFDIO_API = 0xc018aa3fn;
const UFFDIO_REGISTER = 0xc020aa00n;
const UFFDIO_WRITEPROTECT = 0xc018aa06n;
const UFFDIO_REGISTER_MODE_WP = 2n;
const UFFDIO_WRITEPROTECT_MODE_WP = 1n;

interface Calls extends MemoryCalls {
  syscall(n: number, a: number): number | bigint;
}

let calls: Calls | undefined;

function declare(k: Koffi): Calls {
  const libc = k.load('libc.so.6');
  return { ...declareMemoryCalls(k), syscall: libc.func('long syscall(long n, long a)') as unknown as Calls['syscall'] };
}

/** Is a seccomp filter on for this process (/proc/self/status: Seccomp 2; 1, strict mode, would not let Node run at all)? */
function underSeccompFilter(): boolean {
  try {
    const m = /^Seccomp:\s*(\d+)/m.exec(readFileSync('/proc/self/status', 'latin1'));
    return m === null || m[1] !== '0';
  } catch {
    return true;
  }
}

/** A thread's userfaultfd and pagemap: the ranges it watches. */
export class PageWatch {
  readonly #c: Calls;
  readonly #uffd: number;
  readonly #pagemap: number;
  readonly #ledger: FdLedger | undefined;
  readonly #slots: number[];
  #closed = false;
  readonly #scan: PagemapScan;
  readonly #rangeArg = new BigUint64Array(4);

  private constructor(c: Calls, uffd: number, pagemap: number, ledger: FdLedger | undefined) {
    this.#c = c;
    this.#uffd = uffd;
    this.#pagemap = pagemap;
    this.#ledger = ledger;
    this.#slots = ledger ? [ledger.record(uffd), ledger.record(pagemap)] : [];
    this.#scan = new PagemapScan(c);
  }

  /**
   * This thread's watch, or why the kernel gives none (then memories are
   * copied back whole). `ledger`: where a shared host finds its two
   * descriptors if the thread is ended without closing them (fd-ledger.ts).
   * `filterLetsItRun`: the seccomp filter this process may be under is
   * known not to kill or trap userfaultfd; without it, the call is made
   * only when no filter is on.
   */
  static open(options: { ledger?: FdLedger; filterLetsItRun?: boolean } = {}): PageWatch | string {
    const nr = SYS_USERFAULTFD[process.arch];
    if (nr === undefined) return `no userfaultfd on ${process.arch}`;
    if (options.filterLetsItRun !== true && underSeccompFilter()) return 'a seccomp filter not known to let userfaultfd run is on';
    const ledger = options.ledger;
    let c: Calls;
    try {
      c = calls ??= declareNative(declare);
    } catch (err) {
      return `cannot load koffi: ${(err as Error).message}`;
    }
    const uffd = Number(c.syscall(nr, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
    if (uffd < 0) return `userfaultfd: errno ${c.errno()}`;
    const api = new BigUint64Array([UFFD_API, UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, 0n]);
    if (c.ioctl(uffd, UFFDIO_API, api) !== 0) {
      const errno = c.errno();
      sys().close(uffd);
      return `userfaultfd has no asynchronous write-protect (UFFDIO_API: errno ${errno})`;
    }
    const pagemap = openPagemap();
    if (typeof pagemap === 'string') {
      sys().close(uffd);
      return pagemap;
    }
    const watch = new PageWatch(c, uffd, pagemap, ledger);
    const why = watch.#selfTest();
    if (why !== undefined) {
      watch.close();
      return why;
    }
    return watch;
  }

  /**
   * Does the kernel tell a written page from the others (PAGEMAP_SCAN is
   * Linux 6.7)? Asked once, on a memory of our own, before any guest's
   * reset depends on the answer.
   */
  #selfTest(): string | undefined {
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer);
    const range = this.watch(view);
    if (!range) return `cannot write-protect a memory (errno ${this.#c.errno()})`;
    view[5 * 4096 + 7] = 1;
    const runs: number[] = [];
    if (!range.written((start, end) => runs.push(start, end))) return `PAGEMAP_SCAN refused (errno ${this.#c.errno()})`;
    if (runs.length !== 2 || runs[0]! > 5 * 4096 + 7 || runs[1]! <= 5 * 4096 + 7 || runs[1]! - runs[0]! > 16384) return `PAGEMAP_SCAN does not list the page written (${runs.join(',')})`;
    return undefined;
  }

  /**
   * Watches `view`'s bytes from now on (all of them protected); undefined
   * when the kernel refuses. `release(start, length)`: lets go of written
   * pages before they are protected again (a memory mapped on its image,
   * image-pages.ts: the pages become the file's again, shared).
   */
  watch(view: Uint8Array, options: { release?: (start: bigint, length: number) => boolean } = {}): WatchedRange | undefined {
    if (this.#closed) return undefined;
    const start = this.addressOf(view);
    const length = BigInt(view.byteLength);
    const reg = this.#rangeArg;
    reg[0] = start;
    reg[1] = length;
    reg[2] = UFFDIO_REGISTER_MODE_WP;
    reg[3] = 0n;
    if (this.#c.ioctl(this.#uffd, UFFDIO_REGISTER, reg) !== 0) return undefined;
    return this.#protect(start, start + length) ? new WatchedRange(this, start, length, options.release) : undefined;
  }

  /** Where `view`'s bytes are. */
  addressOf(view: Uint8Array): bigint {
    return this.#c.addressOf(view);
  }

  /** Write-protects [start, end) (addresses): a range as it is registered (later protections go by the walk, PM_SCAN_WP_MATCHING). */
  #protect(start: bigint, end: bigint): boolean {
    const wp = this.#rangeArg;
    wp[0] = start;
    wp[1] = end - start;
    wp[2] = UFFDIO_WRITEPROTECT_MODE_WP;
    return this.#c.ioctl(this.#uffd, UFFDIO_WRITEPROTECT, wp) === 0;
  }

  /**
   * Calls `run` with each run of written pages in [start, end) (addresses),
   * as byte offsets from `start`, in order; false when the scan failed.
   * `protect`: the pages listed are write-protected again by the same walk
   * (PM_SCAN_WP_MATCHING).
   */
  scan(start: bigint, end: bigint, protect: boolean, run: ((from: number, to: number) => void) | undefined): boolean {
    if (this.#closed) return false;
    return this.#scan.scan(this.#pagemap, start, end, protect ? WRITTEN_PROTECTED_AGAIN : WRITTEN, run);
  }

  /** Lets go of every range (the kernel unprotects them); no range may be scanned after. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Out of the ledger first: the host must never close a number the kernel has given to someone else since.
    for (const slot of this.#slots) this.#ledger!.forget(slot);
    sys().close(this.#pagemap);
    sys().close(this.#uffd);
  }
}

/**
 * Resets between two protections of a memory's written pages at most. A
 * page stays unprotected from its first write until then, and is copied
 * back at each reset whether written again or not: copying back a page
 * (~0.3 µs) costs less than its write fault and a walk that protects it
 * again (~1.3 µs and half the scans, measured on a componentize-js server),
 * and a request writes mostly the pages the last one wrote.
 *
 * What a guest can learn from it is no more than before: a write to a page
 * left unprotected is faster than one that faults, and so says an earlier
 * request wrote that page, but the copy back itself already leaves exactly
 * those pages in the CPU's caches, which a guest can time as well.
 */
export const PROTECT_EVERY = 64;

/** One watched memory (its bytes at the time it was watched). */
export class WatchedRange {
  readonly #watch: PageWatch;
  readonly #start: bigint;
  readonly #end: bigint;
  readonly #runs = new WrittenRuns();
  #wholeFromNowOn = false;
  /** Resets since the written pages were last protected (0: the pages listed are one request's). */
  #resets = 0;
  /** Bytes one request wrote, at the first reset after the last protection. */
  #oneRequest = 0;
  readonly #release: ((start: bigint, length: number) => boolean) | undefined;

  constructor(watch: PageWatch, start: bigint, length: bigint, release?: (start: bigint, length: number) => boolean) {
    this.#watch = watch;
    this.#start = start;
    this.#end = start + length;
    this.#release = release;
  }

  /** Is `view` the memory watched (same place, same length)? */
  at(view: Uint8Array): boolean {
    return this.#watch.addressOf(view) === this.#start && this.#start + BigInt(view.byteLength) === this.#end;
  }

  /** Calls `run(from, to)` (byte offsets, page-aligned) for each run of pages written since last protected; false when the kernel could not say. */
  written(run: (from: number, to: number) => void): boolean {
    return this.#watch.scan(this.#start, this.#end, false, run);
  }

  /**
   * Copies `saved` back over `view` where pages were written since they
   * were last protected; false when it did not (then the caller copies all
   * of it): the kernel could not say which, or one request wrote more than
   * a quarter of the memory. Such a memory is copied whole from then on,
   * unwatched: a first write to a protected page costs a fault (~0.5–2
   * µs), so watching a memory that requests write all over costs more than
   * the whole copy (bench/http-reset: ~8 against ~3 ms for 10 MiB).
   *
   * The pages copied back are protected again every PROTECT_EVERY resets,
   * or sooner once the pages written since outgrow twice one request's: a
   * guest that writes other pages each time is not left copying back all
   * it ever wrote.
   */
  copyBack(view: Uint8Array, saved: Uint8Array): boolean {
    if (this.#wholeFromNowOn) return false;
    const runs = this.#runs;
    if (!this.written(runs.restart())) return false;
    const bytes = runs.bytes;
    const oneRequest = this.#resets === 0;
    if (oneRequest && bytes > view.byteLength / 4) {
      this.#wholeFromNowOn = true;
      return false;
    }
    runs.copy(view, saved);
    if (runs.list.length === 0) return true;
    if (oneRequest) this.#oneRequest = bytes;
    const regrown = runs.outgrew(this.#oneRequest) || bytes > view.byteLength / 4;
    if (++this.#resets < PROTECT_EVERY && !regrown) return true;
    this.#resets = 0;
    // Given back to the image only once regrown, not at every protection: a
    // release costs TLB shootdowns and copy-on-write faults that interrupt
    // the host's other CPUs (image-pages.ts). Copied back
    // already: a page that fails to go back holds the same bytes.
    const list = runs.list;
    if (regrown && this.#release) for (let i = 0; i < list.length; i += 2) this.#release(this.#start + BigInt(list[i]!), list[i + 1]! - list[i]!);
    // Copying back wrote those pages: protected after it, not before, or the
    // copy would count as the next request's write. A walk that protects the
    // written pages costs far less than protecting the range (measured: ~280
    // µs a request for a componentize-js memory, its PTEs all changed). It
    // protects the pages released as well (none: userfaultfd's
    // "unpopulated" protection).
    return this.#watch.scan(this.#start, this.#end, true, undefined);
  }
}
