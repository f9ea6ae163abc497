// The host descriptors one guest's filesystem holds (its descriptors, their
// streams, directory listings), so that everything is closed when the guest
// ends, whatever it forgot to drop: hosts that outlive their guests (`pod`,
// `process`) must not leak them.
import { sys } from '../preview1/sys.js';
import type { FdLedger } from './fd-ledger.js';

/** One host descriptor, closed at most once: a second close never reaches a number the kernel has since reused. */
export interface OwnedFd {
  readonly fd: number;
  close(): void;
}

export class HostFds {
  readonly #open = new Set<OwnedFd>();
  readonly #ledger: FdLedger | undefined;

  /** `ledger`: where the host reads the descriptors back if this thread is ended without cleanup (fd-ledger.ts). */
  constructor(ledger?: FdLedger) {
    this.#ledger = ledger;
  }

  /** Takes ownership of `fd`. */
  add(fd: number): OwnedFd {
    const slot = this.#ledger ? this.#ledger.record(fd) : -1;
    const owned: OwnedFd = {
      fd,
      close: () => {
        if (!this.#open.delete(owned)) return;
        this.#ledger?.forget(slot);
        sys().close(fd);
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
