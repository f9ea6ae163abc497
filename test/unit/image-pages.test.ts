// A memory mapped on its image (src/wasi-host/http/image-pages.ts): the
// pages written are its private ones, as pagemap tells them on any kernel;
// resets (src/wasi-host/http/reset.ts) copy back those only. Both ways of
// reading pagemap are run: PAGEMAP_SCAN (Linux 6.7+, this machine's) and
// every page's entry (what older kernels, as Debian 12's 6.1, get).
import { closeSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageWatch } from '../../src/wasi-host/http/image-pages.js';
import { MemoryCopies } from '../../src/wasi-host/http/reset.js';
import { FdLedger } from '../../src/wasi-host/p2/fd-ledger.js';
import { openPageTrackers } from '../../src/wasi-host/http/page-trackers.js';
import { PROTECT_EVERY } from '../../src/wasi-host/http/written-pages.js';
import { KERNEL_TELLS_WRITTEN_PAGES } from './helpers/kernel.js';
import { expectMixedRoundsPutBack, expectResetsPutBack, expectWritesListed, watchedInstance, writtenPages } from './helpers/pages.js';

const PAGE = 4096;

/** This process's descriptors on an unnamed file of /dev/shm. */
function imageFiles(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return /^\/dev\/shm\/#\d+ \(deleted\)$/.test(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      return false;
    }
  }).length;
}

function open(readEntries: boolean, ledger?: FdLedger): ImageWatch {
  const w = ImageWatch.open({ readEntries, ...(ledger ? { ledger } : {}) });
  if (typeof w === 'string') throw new Error(`no image watch on this machine: ${w}`);
  return w;
}

describe('an image watch', () => {
  it('opens on this machine, and lists the written pages as the kernel can: PAGEMAP_SCAN from Linux 6.7, else every entry read', () => {
    const w = open(false);
    try {
      expect(w.how).toBe(KERNEL_TELLS_WRITTEN_PAGES ? 'PAGEMAP_SCAN' : 'pagemap entries');
    } finally {
      w.close();
    }
    const entries = open(true);
    expect(entries.how).toBe('pagemap entries');
    entries.close();
  });
});

describe.each([
  ['PAGEMAP_SCAN', false],
  ['pagemap entries', true],
] as const)('a memory mapped on its image, written pages told by %s', (how, readEntries) => {
  const skip = how === 'PAGEMAP_SCAN' && !KERNEL_TELLS_WRITTEN_PAGES;
  const watch = skip ? undefined : open(readEntries);
  afterAll(() => watch?.close());
  const w = () => watch!;

  it.skipIf(skip)('keeps its bytes, and lists the pages written by JavaScript and by the kernel (a read into it), not those only read', () => {
    expectWritesListed((view, saved) => w().watch(view, saved)!);
  });

  it.skipIf(skip)('copies the saved bytes back over the pages written, which stay the memory\'s own while requests write the same ones', () => {
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 64 }).buffer);
    for (let i = 0; i < view.length; i += 997) view[i] = i & 255;
    const saved = view.slice();
    const range = w().watch(view, saved)!;
    // More runs than one scan call returns (64), so the walk goes on where it stopped.
    const twoHundred = Array.from({ length: 200 }, (_, p) => [2 * p, 2 * p + 1]);
    for (let round = 0; round < 100; round++) {
      for (let p = 0; p < 200; p++) view[p * 2 * PAGE + (round % 7)] = 0xee;
      expect(writtenPages(range)).toEqual(twoHundred);
      expect(range.copyBack(view, saved)).toBe(true);
      expect(Buffer.compare(view, saved)).toBe(0);
      expect(writtenPages(range)).toEqual(twoHundred);
    }
  });

  it.skipIf(skip)('gives the pages written back to the image once they outgrow twice one request\'s', () => {
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 64 }).buffer);
    for (let i = 0; i < view.length; i += 1021) view[i] = 3;
    const saved = view.slice();
    const range = w().watch(view, saved)!;
    // Each request writes 20 pages of its own.
    const request = (n: number) => {
      for (let p = 0; p < 20; p++) view[(n * 20 + p) * PAGE + 1] = 1 + n;
    };
    request(0);
    expect(range.copyBack(view, saved)).toBe(true);
    request(1);
    // Request 0's pages are still the memory's own, copied back with request 1's.
    expect(writtenPages(range)).toEqual([[0, 40]]);
    expect(range.copyBack(view, saved)).toBe(true);
    expect(Buffer.compare(view, saved)).toBe(0);
    request(2);
    request(3);
    // 80 pages: more than twice one request's 20 and 16 more; the image's again.
    expect(range.copyBack(view, saved)).toBe(true);
    expect(Buffer.compare(view, saved)).toBe(0);
    expect(writtenPages(range)).toEqual([]);
  });

  it.skipIf(skip)('puts back every round of a mix of the same and other pages, across regrowths', () => {
    expectMixedRoundsPutBack((view, saved) => w().watch(view, saved)!, 200);
  });

  it.skipIf(skip)('gives up on a memory a request wrote more than a quarter of: it is copied whole from then on', () => {
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 4 }).buffer);
    const saved = view.slice();
    const range = w().watch(view, saved)!;
    view[0] = 1;
    expect(range.copyBack(view, saved)).toBe(true);
    expect(view[0]).toBe(0);
    view.fill(2, 0, view.length / 2);
    // Written since the last drop, these may be many requests' pages: regrown, dropped.
    expect(range.copyBack(view, saved)).toBe(true);
    expect(Buffer.compare(view, saved)).toBe(0);
    view.fill(2, 0, view.length / 2);
    expect(range.copyBack(view, saved)).toBe(false);
    expect(view[0]).toBe(2);
  });

  it.skipIf(skip)('maps memories made alike on one file, and keeps a grown memory\'s first bytes', () => {
    const copies = new MemoryCopies();
    const before = imageFiles();
    const memories = [0, 1, 2].map(() => new WebAssembly.Memory({ initial: 2, maximum: 4 }));
    const ranges = memories.map((m) => {
      const view = new Uint8Array(m.buffer);
      view[77] = 7;
      return w().watch(view, copies.of('0 memory', view))!;
    });
    expect(ranges.every((r) => r !== undefined)).toBe(true);
    expect(imageFiles() - before).toBe(1);
    // Each writes its own copy of a page: the others (and the file) do not see it.
    new Uint8Array(memories[0]!.buffer)[78] = 8;
    expect(new Uint8Array(memories[1]!.buffer)[78]).toBe(0);
    memories[2]!.grow(1);
    const grown = new Uint8Array(memories[2]!.buffer);
    expect([grown[77], grown.length]).toEqual([7, 3 * 65536]);
    grown[3 * 65536 - 1] = 1;
  });
});

describe('the bytes as made, read from the image', () => {
  it('are the file\'s own pages, shared by the memories made alike: a thread holds no copy of them (read-only, nothing anonymous)', () => {
    const w = open(false);
    try {
      const copies = new MemoryCopies();
      const before = imageFiles();
      const made = () => {
        const view = new Uint8Array(new WebAssembly.Memory({ initial: 32 }).buffer);
        for (let i = 0; i < view.length; i += 4093) view[i] = (i >> 12) & 255;
        return view;
      };
      const a = made();
      const saved = copies.of('0 memory', a);
      expect(w.watch(a, saved)).toBeDefined();
      const image = w.image(saved)!;
      expect(image).toBeDefined();
      expect(Buffer.compare(image, saved)).toBe(0);
      copies.adopt('0 memory', saved, image);
      // The next instance made alike compares with the image and is mapped on the same file.
      const b = made();
      expect(copies.of('0 memory', b)).toBe(image);
      const range = w.watch(b, image)!;
      expect(w.image(image)).toBe(image);
      expect(imageFiles() - before).toBe(1);
      b[5 * PAGE] = 99;
      expect(range.copyBack(b, image)).toBe(true);
      expect(Buffer.compare(b, saved)).toBe(0);
      const smaps = readFileSync('/proc/self/smaps', 'latin1');
      const at = smaps.search(new RegExp(`^0*${w.addressOf(image).toString(16)}-\\S+ r--p .*/dev/shm/#\\d+ \\(deleted\\)$`, 'm'));
      expect(at).toBeGreaterThanOrEqual(0);
      const mapping = smaps.slice(at, smaps.indexOf('VmFlags', at));
      expect(/^Rss:\s+(\d+) kB/m.exec(mapping)![1]).not.toBe('0');
      expect(/^Anonymous:\s+(\d+) kB/m.exec(mapping)![1]).toBe('0');
      // tmpfs pages count as dirty; those the memory b reads too are shared with it.
      expect(/^Shared_Dirty:\s+(\d+) kB/m.exec(mapping)![1]).not.toBe('0');
    } finally {
      w.close();
    }
  });

  it('are not had where the memory has no image', () => {
    const w = open(false);
    try {
      expect(w.image(new Uint8Array(65536))).toBeUndefined();
    } finally {
      w.close();
    }
  });
});

describe('an image watch and its descriptors', () => {
  it("writes its descriptors in a shared host's ledger (a killed thread leaks none), and takes them out when closed", () => {
    const ledger = new FdLedger();
    const closed = open(false, ledger);
    closed.watch(new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer), new Uint8Array(65536));
    closed.close();
    expect(new FdLedger(ledger.buffer).closeAll(() => undefined)).toBe(0);
    const killed = open(false, ledger);
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer);
    expect(killed.watch(view, view.slice())).toBeDefined();
    const fds: number[] = [];
    expect(new FdLedger(ledger.buffer).closeAll((fd) => fds.push(fd))).toBe(2);
    const links = fds.map((fd) => readlinkSync(`/proc/self/fd/${fd}`)).sort();
    expect(links[0]).toMatch(/^\/dev\/shm\/#\d+ \(deleted\)$/);
    expect(links[1]).toBe(`/proc/${process.pid}/pagemap`);
    fds.forEach((fd) => closeSync(fd));
  });

  it('cannot say anything once closed: a reset then copies the whole memory', () => {
    const watch = open(false);
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer);
    const range = watch.watch(view, view.slice())!;
    watch.close();
    view[0] = 1;
    expect(range.copyBack(view, new Uint8Array(view.length))).toBe(false);
    expect(view[0]).toBe(1);
    expect(watch.watch(view, view.slice())).toBeUndefined();
  });
});

describe.each([false, true])('a reset of a guest of 1 MiB or more mapped on its image (every entry read: %s)', (readEntries) => {
  const watch = open(readEntries);
  afterAll(() => watch.close());

  it('puts back what the guest and the host wrote, as the whole copy did', async () => {
    await expectResetsPutBack(watch);
  });
});

describe('the trackers a handler thread opens', () => {
  it('are userfaultfd on memories mapped on their images from Linux 6.7 (no seccomp filter on this test process), the images alone before', () => {
    const t = openPageTrackers({ filterLetsItRun: false });
    if (typeof t === 'string') throw new Error(t);
    try {
      expect(t.how).toBe(KERNEL_TELLS_WRITTEN_PAGES ? 'written pages: userfaultfd, images' : 'written pages: images, pagemap entries');
    } finally {
      t.close();
    }
  });

  it.runIf(KERNEL_TELLS_WRITTEN_PAGES)('put back every round; the pages written stay the memory\'s own across protections, and go back to the image once regrown', () => {
    const t = openPageTrackers({ filterLetsItRun: false });
    if (typeof t === 'string') throw new Error(t);
    const probe = open(false);
    try {
      const view = new Uint8Array(new WebAssembly.Memory({ initial: 64 }).buffer);
      for (let i = 0; i < view.length; i += 997) view[i] = i & 255;
      const saved = view.slice();
      const range = t.watch(view, saved)!;
      /** Pages of the memory that are its own, not the image's: its mapping's anonymous ones (pagemap would count userfaultfd's markers on the others as swapped). */
      const start = probe.addressOf(view).toString(16);
      const privatePages = () => {
        const smaps = readFileSync('/proc/self/smaps', 'latin1');
        const at = smaps.search(new RegExp(`^0*${start}-`, 'm'));
        expect(at).toBeGreaterThanOrEqual(0);
        return Number(/^Anonymous:\s+(\d+) kB/m.exec(smaps.slice(at))![1]) / 4;
      };
      expect(privatePages()).toBe(0);
      const hot = (round: number) => {
        for (let p = 0; p < 10; p++) view[p * 37 * PAGE + 5 + (round % 3)] = 0xee;
      };
      for (let round = 0; round < 2 * PROTECT_EVERY + 1; round++) {
        hot(round);
        expect(range.copyBack(view, saved)).toBe(true);
        expect(Buffer.compare(view, saved), `round ${round}`).toBe(0);
      }
      // Protected again twice: the same ten pages, still the memory's own.
      expect(privatePages()).toBe(10);
      // A request that writes 60 more: regrown, all it wrote goes back to the image.
      hot(0);
      for (let p = 0; p < 60; p++) view[(400 + p) * PAGE] = 1;
      expect(range.copyBack(view, saved)).toBe(true);
      expect(Buffer.compare(view, saved)).toBe(0);
      expect(privatePages()).toBe(0);
    } finally {
      probe.close();
      t.close();
    }
  });
});

describe('an instance whose state cannot be taken', () => {
  it('fails as a whole when its memory cannot be watched for another reason (a memory mapped neither on its image nor back must never be used)', async () => {
    const { watch: made } = await watchedInstance('(module (memory (export "memory") 17))');
    const broken = { watch: (): never => { throw new Error("cannot map a guest's memory back (errno 12)"); } };
    expect(() => made.capture(undefined, () => broken)).toThrow("cannot map a guest's memory back");
  });
});
