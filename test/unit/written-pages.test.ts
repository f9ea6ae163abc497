// The kernel's record of which pages of a memory were written
// (src/wasi-host/http/written-pages.ts), and resets that copy back only
// those (src/wasi-host/http/reset.ts). They need userfaultfd's
// asynchronous write-protect and PAGEMAP_SCAN (Linux 6.7+, as this
// machine's); on an older kernel they check that the watch says why not.
import { closeSync, readlinkSync } from 'node:fs';
import { FdLedger } from '../../src/wasi-host/p2/fd-ledger.js';
import { afterAll, describe, expect, it } from 'vitest';
import { PageWatch, PROTECT_EVERY } from '../../src/wasi-host/http/written-pages.js';
import { KERNEL_TELLS_WRITTEN_PAGES } from './helpers/kernel.js';
import { expectMixedRoundsPutBack, expectResetsPutBack, expectWritesListed, writtenPages } from './helpers/pages.js';

const PAGE = 4096;
const opened = PageWatch.open();
afterAll(() => {
  if (typeof opened !== 'string') opened.close();
});

function pages(): PageWatch {
  if (typeof opened === 'string') throw new Error(`no page watch on this machine: ${opened}`);
  return opened;
}

describe('a page watch', () => {
  it('is available on Linux 6.7 or later (no seccomp filter on this test process), and says why not before', () => {
    if (KERNEL_TELLS_WRITTEN_PAGES) expect(opened).toBeInstanceOf(PageWatch);
    else expect(opened).toMatch(/write-protect|PAGEMAP_SCAN|userfaultfd/);
  });
});

describe.runIf(KERNEL_TELLS_WRITTEN_PAGES)('the pages of a memory the kernel saw written', () => {
  it('lists the pages written since protected: by JavaScript, by the kernel (a read into the memory), not the others', () => {
    expectWritesListed((view) => pages().watch(view)!);
  });

  it('copies the saved bytes back over the pages written, and protects them again every PROTECT_EVERY resets, not after each', () => {
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 64 }).buffer);
    for (let i = 0; i < view.length; i += 997) view[i] = i & 255;
    const saved = view.slice();
    const range = pages().watch(view)!;
    // More runs than one scan call returns (64), so the walk goes on where it stopped.
    const twoHundred = Array.from({ length: 200 }, (_, p) => [2 * p, 2 * p + 1]);
    for (let round = 0; round < PROTECT_EVERY; round++) {
      for (let p = 0; p < 200; p++) view[p * 2 * PAGE + (round % 7)] = 0xee;
      expect(writtenPages(range)).toEqual(twoHundred);
      expect(range.copyBack(view, saved)).toBe(true);
      expect(Buffer.compare(view, saved)).toBe(0);
      // Copied back, and left unprotected until the last round: what it copies back counts as written until then.
      expect(writtenPages(range)).toEqual(round < PROTECT_EVERY - 1 ? twoHundred : []);
    }
  });

  it('copies back every page written since the last protection, and protects them sooner once they outgrow twice one request\'s', () => {
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 64 }).buffer);
    const saved = view.slice();
    const range = pages().watch(view)!;
    // Each request writes 20 pages of its own.
    const request = (n: number) => {
      for (let p = 0; p < 20; p++) view[(n * 20 + p) * PAGE] = 1 + n;
    };
    request(0);
    expect(range.copyBack(view, saved)).toBe(true);
    request(1);
    // The pages of request 0, unprotected since, are listed (and copied back) with request 1's.
    expect(writtenPages(range)).toEqual([[0, 40]]);
    expect(range.copyBack(view, saved)).toBe(true);
    expect(Buffer.compare(view, saved)).toBe(0);
    request(2);
    request(3);
    expect(writtenPages(range)).toEqual([[0, 80]]);
    // 80 pages: more than twice one request's 20 and 16 more; protected again.
    expect(range.copyBack(view, saved)).toBe(true);
    expect(Buffer.compare(view, saved)).toBe(0);
    expect(writtenPages(range)).toEqual([]);
  });

  it('puts back every round of a mix of the same and other pages, across protections and regrowths', () => {
    expectMixedRoundsPutBack((view) => pages().watch(view)!, 3 * PROTECT_EVERY);
  });

  it('gives up on a memory a request wrote more than a quarter of: it is copied whole from then on', () => {
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 4 }).buffer);
    const saved = view.slice();
    const range = pages().watch(view)!;
    view[0] = 1;
    expect(range.copyBack(view, saved)).toBe(true);
    expect(view[0]).toBe(0);
    view.fill(2, 0, view.length / 2);
    // Written since the last protection, these may be many requests' pages: copied back and protected again.
    expect(range.copyBack(view, saved)).toBe(true);
    expect(Buffer.compare(view, saved)).toBe(0);
    view.fill(2, 0, view.length / 2);
    // One request's now.
    expect(range.copyBack(view, saved)).toBe(false);
    // Nothing copied: the caller copies it all, now and after.
    expect(view[0]).toBe(2);
    view.set(saved);
    view[0] = 3;
    expect(range.copyBack(view, saved)).toBe(false);
  });

  it("writes its two descriptors in a shared host's ledger (a killed thread leaks neither), and takes them out when closed", () => {
    const ledger = new FdLedger();
    const closed = PageWatch.open({ ledger });
    if (typeof closed === 'string') throw new Error(closed);
    closed.close();
    expect(new FdLedger(ledger.buffer).closeAll(() => undefined)).toBe(0);
    const killed = PageWatch.open({ ledger });
    if (typeof killed === 'string') throw new Error(killed);
    // What the host does once a killed guest's threads have all ended.
    const fds: number[] = [];
    expect(new FdLedger(ledger.buffer).closeAll((fd) => fds.push(fd))).toBe(2);
    expect(fds.map((fd) => readlinkSync(`/proc/self/fd/${fd}`)).sort()).toEqual(['/proc/' + process.pid + '/pagemap', 'anon_inode:[userfaultfd]']);
    fds.forEach((fd) => closeSync(fd));
  });

  it('cannot say anything once closed: a reset then copies the whole memory', () => {
    const watch = PageWatch.open();
    if (typeof watch === 'string') throw new Error(watch);
    const view = new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer);
    const range = watch.watch(view)!;
    watch.close();
    view[0] = 1;
    expect(range.copyBack(view, new Uint8Array(view.length))).toBe(false);
    expect(view[0]).toBe(1);
    expect(watch.watch(view)).toBeUndefined();
  });
});

describe.runIf(KERNEL_TELLS_WRITTEN_PAGES)('a reset of a memory of 1 MiB or more, by its written pages', () => {
  it('puts back what the guest and the host wrote, as the whole copy did', async () => {
    await expectResetsPutBack({ watch: (view) => pages().watch(view) });
  });
});
