// The host descriptors one guest's filesystem holds (its descriptors, their
// streams, directory listings), so that everything is closed when the guest
// ends, whatever it forgot to drop: hosts that outlive their guests (`pod`,
// `process`) must not leak them.
import { closeSync } from 'node:fs';

export class HostFds {
  readonly #open = new Set<number>();

  /** Takes ownership of `fd`. */
  add(fd: number): number {
    this.#open.add(fd);
    return fd;
  }

  /** Closes `fd` if it is still ours; a second close is a no-op, never another guest's descriptor. */
  close(fd: number): void {
    if (this.#open.delete(fd)) closeSync(fd);
  }

  closeAll(): void {
    for (const fd of this.#open) {
      try {
        closeSync(fd);
      } catch {
        // Already gone: nothing else of the host's is at stake.
      }
    }
    this.#open.clear();
  }

  get size(): number {
    return this.#open.size;
  }
}
