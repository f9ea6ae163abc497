// Time slices for the guests of a shared host. A guest that has run for its
// slice without a suspension point of its own (it spins) waits here at its
// next tugboat.yield; guests that wait are resumed one per event-loop turn, in
// the order they came. Between two resumptions the event loop runs timers
// and I/O, so a spinning guest delays a neighbour's timer by at most one
// slice, and several spinning guests share the CPU round-robin instead of
// each taking a slice per turn (which would make a turn K slices long).
import type { Scheduler } from '../preview1/guest.js';

export class TurnScheduler implements Scheduler {
  private readonly waiting: (() => void)[] = [];
  private scheduled = false;

  next(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.schedule();
    });
  }

  /** Guests waiting for a slice. */
  get length(): number {
    return this.waiting.length;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.pump);
  }

  private readonly pump = (): void => {
    this.scheduled = false;
    this.waiting.shift()?.();
    if (this.waiting.length > 0) this.schedule();
  };
}
