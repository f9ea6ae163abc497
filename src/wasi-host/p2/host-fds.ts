// The host descriptors one guest's filesystem holds (its descriptors, their
// streams, directory listings), so that everything is closed when the guest
// ends, whatever it forgot to drop: hosts that outlive their guests (`pod`,
// `process`) must not leak them.
import { sys } from '../preview1/sys.js';

/** One host descriptor, closed at most once: a second close never reaches a number the kernel has since reused. */
export interface OwnedFd {
  readonly fd: number;
  close(): void;
}

export class HostFds {
  readonly #open = new Set<OwnedFd>();

  /** Takes ownership of `fd`. */
  add(fd: number): OwnedFd {
    const owned: OwnedFd = {
      fd,
      close: () => {
        if (this.#open.delete(owned)) sys().close(fd);
      },
    };
    this.#open.add(owned);
    return owned;
  }

  closeAll(): void {
    for (const o of [...this.#open]) {
      try {
        o.close();
      } catch {
        // Already gone: nothing else of the host's is at stake.
      }
    }
  }

  get size(): number {
    return this.#open.size;
  }
}
