// The descriptors a guest's threads hold, written where its host can read
// them. A thread ended by Worker.terminate() (a kill, a guest that spins)
// runs none of its cleanup, and its descriptors are the process's: a host
// that outlives its guests (`pod`, `process`) closes what is still written
// here once every thread of the guest has ended, else each such guest would
// leak its root, its preopens and whatever it had open.
//
// A slot holds fd + 1 (0: free). A thread clears its slot before it closes
// the descriptor itself, so the host never closes a number the kernel has
// since given to someone else.
const SLOTS = 4096;

export class FdLedger {
  readonly #slots: Int32Array;
  #hint = 0;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(SLOTS * 4)) {
    this.#slots = new Int32Array(buffer);
  }

  /** Writes `fd` down; its slot, or -1 when the ledger is full (the descriptor is then closed only by its thread). */
  record(fd: number): number {
    const n = this.#slots.length;
    for (let k = 0; k < n; k++) {
      const i = (this.#hint + k) % n;
      if (Atomics.compareExchange(this.#slots, i, 0, fd + 1) === 0) {
        this.#hint = i + 1;
        return i;
      }
    }
    return -1;
  }

  /** The thread closes the descriptor of `slot` itself. */
  forget(slot: number): void {
    if (slot >= 0) Atomics.store(this.#slots, slot, 0);
  }

  /** Every descriptor still written down (the guest's threads have all ended), each closed once. */
  closeAll(close: (fd: number) => void): number {
    let closed = 0;
    for (let i = 0; i < this.#slots.length; i++) {
      const v = Atomics.exchange(this.#slots, i, 0);
      if (v === 0) continue;
      try {
        close(v - 1);
        closed++;
      } catch {
        // already gone
      }
    }
    return closed;
  }
}
