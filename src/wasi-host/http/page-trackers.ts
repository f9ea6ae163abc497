// How a thread's resets learn which pages of a memory were written
// (reset.ts), the best the kernel and the seccomp filter allow:
//   userfaultfd and images  each memory mapped on its image, userfaultfd's
//                           asynchronous write-protect on it: the kernel
//                           lists the written pages in a few µs, and they go
//                           back to the image (one copy for every instance)
//                           when protected again
//   userfaultfd             the same, where no image can be made (no
//                           /dev/shm): the memories stay the instances' own
//   images                  where userfaultfd cannot say (Linux before 6.7;
//                           a seccomp filter not known to let it run, such
//                           as Docker's default): pagemap tells the private
//                           pages from the image's (image-pages.ts)
// or none: resets copy whole memories.
import type { FdLedger } from '../p2/fd-ledger.js';
import { ImageWatch } from './image-pages.js';
import type { PageTracker, WrittenRange } from './reset.js';
import { PageWatch } from './written-pages.js';

export interface PageTrackers extends PageTracker {
  /** How the written pages are told, for the thread's stats and logs. */
  readonly how: string;
  close(): void;
}

class Both implements PageTrackers {
  constructor(
    readonly uffd: PageWatch,
    readonly images: ImageWatch | undefined,
  ) {}

  get how(): string {
    return this.images ? 'written pages: userfaultfd, images' : 'written pages: userfaultfd';
  }

  watch(view: Uint8Array, saved: Uint8Array): WrittenRange | undefined {
    const images = this.images;
    // Mapped first: a mapping made over a range takes its userfaultfd registration away.
    const mapped = images?.watch(view, saved);
    return this.uffd.watch(view, mapped ? { release: (start, length) => images!.drop(start, length) } : {}) ?? mapped;
  }

  image(saved: Uint8Array): Uint8Array | undefined {
    return this.images?.image(saved);
  }

  close(): void {
    this.uffd.close();
    this.images?.close();
  }
}

class ImagesOnly implements PageTrackers {
  constructor(readonly images: ImageWatch) {}

  get how(): string {
    return `written pages: images, ${this.images.how}`;
  }

  watch(view: Uint8Array, saved: Uint8Array): WrittenRange | undefined {
    return this.images.watch(view, saved);
  }

  image(saved: Uint8Array): Uint8Array | undefined {
    return this.images.image(saved);
  }

  close(): void {
    this.images.close();
  }
}

/**
 * The thread's trackers, or why resets copy whole memories. `ledger`: a
 * shared host's, where a thread ended by a kill leaves its descriptors.
 * `filterLetsItRun`: the seccomp filter this process may be under lets
 * userfaultfd run (written-pages.ts).
 */
export function openPageTrackers(options: { ledger?: FdLedger; filterLetsItRun: boolean }): PageTrackers | string {
  const ledger = options.ledger ? { ledger: options.ledger } : {};
  const uffd = PageWatch.open({ ...ledger, filterLetsItRun: options.filterLetsItRun });
  const images = ImageWatch.open(ledger);
  if (typeof uffd !== 'string') return new Both(uffd, typeof images === 'string' ? undefined : images);
  if (typeof images !== 'string') return new ImagesOnly(images);
  return `${uffd}; ${images}`;
}
