// /proc/self/pagemap, as both ways of telling a memory's written pages read
// it (written-pages.ts, image-pages.ts): its descriptor, and PAGEMAP_SCAN
// (Linux 6.7), which lists the runs of pages of a range whose categories
// match a query.
import type { Koffi } from '../../koffi-native.js';
import { sys } from '../preview1/sys.js';

const AT_FDCWD = -100;
const PAGEMAP = Buffer.from('/proc/self/pagemap\0');
const O_CLOEXEC = 0o2000000;
// _IOWR('f', 16, struct pm_scan_arg) (96 bytes).
const PAGEMAP_SCAN = 0xc0606610n;
/** Regions one scan call can return (struct page_region: start, end, categories). */
const REGIONS = 64;

/** Page categories of PAGEMAP_SCAN. */
export const PAGE_IS_WRITTEN = 1n << 1n;
export const PAGE_IS_FILE = 1n << 2n;
export const PAGE_IS_PRESENT = 1n << 3n;
export const PAGE_IS_SWAPPED = 1n << 4n;
/** Flags: write-protect the pages matched (userfaultfd's), checking that the range is in asynchronous mode. */
export const PM_SCAN_WP_MATCHING = 1n;
export const PM_SCAN_CHECK_WPASYNC = 2n;

export type Ioctl = (fd: number, request: bigint, arg: BigUint64Array) => number;

/** The libc calls both watches make (each declares its own others beside them, in its thread's koffi). */
export interface MemoryCalls {
  ioctl: Ioctl;
  /** Where a view's bytes are (memmove(dst, dst, 0) returns dst). */
  addressOf(view: ArrayBufferView): bigint;
  errno(): number;
}

/** Declares the MemoryCalls in `k` (inside a watch's own declareNative). */
export function declareMemoryCalls(k: Koffi): MemoryCalls {
  const libc = k.load('libc.so.6');
  const memmove = libc.func('uintptr_t memmove(void *dst, void *src, size_t n)') as unknown as (a: unknown, b: unknown, n: number) => number | bigint;
  return {
    ioctl: libc.func('int ioctl(int fd, unsigned long req, _Inout_ void *arg)') as unknown as Ioctl,
    addressOf: (view) => BigInt(memmove(view, view, 0)),
    errno: () => k.errno(),
  };
}

/** The pagemap's descriptor, or why it cannot be opened. */
export function openPagemap(): number | string {
  try {
    return sys().openat(AT_FDCWD, PAGEMAP, O_CLOEXEC, 0);
  } catch (err) {
    return `cannot open /proc/self/pagemap: ${(err as Error).message}`;
  }
}

/** Which pages a scan lists: those whose categories, with `inverted` flipped, have all of `all` and one of `anyOf` (if given). */
export interface ScanQuery {
  flags: bigint;
  inverted: bigint;
  all: bigint;
  anyOf: bigint;
  returned: bigint;
}

/** One thread's PAGEMAP_SCAN calls: the argument and the regions the kernel fills, kept off the V8 heap. */
export class PagemapScan {
  readonly #ioctl: Ioctl;
  // Off the V8 heap (more than 64 bytes): the kernel writes regions here by address, and it must not move.
  readonly #regions = new BigUint64Array(new ArrayBuffer(REGIONS * 3 * 8));
  // The same, read as 32-bit halves (little-endian: x64 and arm64, the only ones opened): an address (< 2^48) as a Number without a BigInt per region.
  readonly #regionWords = new Uint32Array(this.#regions.buffer);
  readonly #regionsAt: bigint;
  readonly #arg = new BigUint64Array(12);

  constructor(c: MemoryCalls) {
    this.#ioctl = c.ioctl;
    this.#regionsAt = c.addressOf(this.#regions);
  }

  /**
   * Calls `run` with each run of pages of [start, end) (addresses) that
   * `query` matches, as byte offsets from `start`, in order; false when the
   * scan failed.
   */
  scan(pagemap: number, start: bigint, end: bigint, query: ScanQuery, run: ((from: number, to: number) => void) | undefined): boolean {
    const arg = this.#arg;
    const words = this.#regionWords;
    const base = Number(start);
    for (let from = start; from < end; ) {
      arg[0] = 96n; // size
      arg[1] = query.flags;
      arg[2] = from;
      arg[3] = end;
      arg[4] = 0n; // walk_end (out)
      arg[5] = this.#regionsAt; // vec
      arg[6] = BigInt(REGIONS); // vec_len
      arg[7] = 0n; // max_pages
      arg[8] = query.inverted;
      arg[9] = query.all;
      arg[10] = query.anyOf;
      arg[11] = query.returned;
      const n = this.#ioctl(pagemap, PAGEMAP_SCAN, arg);
      if (n < 0) return false;
      if (run)
        for (let i = 0; i < n; i++) {
          const w = 6 * i;
          run(words[w]! + words[w + 1]! * 0x1_0000_0000 - base, words[w + 2]! + words[w + 3]! * 0x1_0000_0000 - base);
        }
      const walked = arg[4]!;
      // The walk stops early only when the regions are full.
      if (walked <= from) return false;
      from = walked;
    }
    return true;
  }
}
