// Instances of one component, made before the requests that need them.
//
// At most `size` instances live at once (ready, serving or being made): that
// bounds a thread's guest memory, and a request that finds none ready waits
// in line (first come, first served) instead of failing. A fresh instance
// serves one request and is dropped, or is put back to its state when made
// (recycle: reset.ts) and goes back to the pool as a fresh one; a reusable
// one goes back to the pool as it is.
// An instance whose request failed (a trap, or anything thrown through its
// handler) is never used again. Replacements are made off the hot path, after
// the I/O at hand (setImmediate): as many as requests wait for, else one per
// turn of the event loop.
//
// The pool may hold back the rest of its first fill (start's holdMs) until
// its first request is over, a request waits, or the hold time passes. The
// event loop cannot serve a request while an instance is being made, and a
// server that has just started often has a request coming (the one that
// woke a scaled-to-zero service): measured with a componentize-js component,
// whose instances take 100-250 ms to make, its first answer came 70-100 ms
// later with a pool of 8 than with a pool of 1.

export interface PoolOptions<T> {
  /** Instances alive at once (ready + serving + being made), at least 1. */
  size: number;
  /** May an instance serve another request after one that went well? */
  reuse: boolean;
  /** Makes an instance (may throw: the requests waiting then fail, the next one tries again). */
  create(): T;
  /** An instance is let go (it served its request, failed, or the pool closed). */
  discard?(instance: T): void;
  /**
   * Without reuse: puts an instance that served its request well back to
   * its state when made (then it serves again, as a fresh one would), or
   * says it cannot (then it is let go).
   */
  recycle?(instance: T): boolean;
}

export interface PoolStats {
  ready: number;
  busy: number;
  waiting: number;
  created: number;
  /** Instances put back to their state when made after a request (recycle), instead of made again. */
  resets: number;
}

export class InstancePool<T> {
  readonly #opts: PoolOptions<T>;
  readonly #ready: T[] = [];
  readonly #waiters: { resolve(instance: T): void; reject(err: unknown): void }[] = [];
  #busy = 0;
  #making = false;
  #created = 0;
  #resets = 0;
  #closed = false;
  /** The rest of the first fill waits for this timer (or the first request). */
  #hold: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: PoolOptions<T>) {
    if (!Number.isInteger(opts.size) || opts.size < 1) throw new RangeError(`pool size must be a positive integer, not ${opts.size}`);
    this.#opts = opts;
  }

  /**
   * Makes the first instance now (its failure is the caller's), the rest off
   * the hot path: at once, or (holdMs > 0) once the first request is over, a
   * request waits, or holdMs have passed.
   */
  start(holdMs = 0): void {
    this.#ready.push(this.#make());
    if (holdMs > 0) {
      this.#hold = setTimeout(() => this.#endHold(), holdMs);
      // The timer alone keeps no thread alive.
      this.#hold.unref();
    } else this.#refill();
  }

  #endHold(): void {
    if (this.#hold === undefined) return;
    clearTimeout(this.#hold);
    this.#hold = undefined;
    this.#refill();
  }

  stats(): PoolStats {
    return { ready: this.#ready.length, busy: this.#busy, waiting: this.#waiters.length, created: this.#created, resets: this.#resets };
  }

  #make(): T {
    const instance = this.#opts.create();
    this.#created++;
    return instance;
  }

  /** An instance at once, or undefined: then wait for one with `next`. */
  take(): T | undefined {
    const instance = this.#ready.pop();
    if (instance !== undefined) this.#busy++;
    return instance;
  }

  /** The next instance free, in arrival order; rejects when one could not be made. */
  next(): Promise<T> {
    const p = new Promise<T>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.#refill();
    return p;
  }

  #handOver(instance: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#busy++;
      waiter.resolve(instance);
    } else this.#ready.push(instance);
  }

  /** The request is over; `failed`: the instance must not serve again. */
  release(instance: T, failed: boolean): void {
    this.#busy--;
    this.#endHold();
    if (!failed && !this.#closed && (this.#opts.reuse || this.#recycled(instance))) this.#handOver(instance);
    else {
      this.#opts.discard?.(instance);
      this.#refill();
    }
  }

  #recycled(instance: T): boolean {
    if (!this.#opts.recycle?.(instance)) return false;
    this.#resets++;
    return true;
  }

  /** No more instances are made; those ready are let go, requests still waiting fail. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#hold);
    this.#hold = undefined;
    for (const instance of this.#ready.splice(0)) this.#opts.discard?.(instance);
    for (const w of this.#waiters.splice(0)) w.reject(new Error('the server is shutting down'));
  }

  #refill(): void {
    if (this.#making || this.#closed) return;
    if (this.#hold !== undefined && this.#waiters.length === 0) return;
    if (this.#ready.length + this.#busy >= this.#opts.size) return;
    this.#making = true;
    setImmediate(() => {
      this.#making = false;
      // Requests waiting get theirs now; one more ready instance per turn otherwise.
      do {
        if (this.#closed || this.#ready.length + this.#busy >= this.#opts.size) return;
        let instance: T;
        try {
          instance = this.#make();
        } catch (err) {
          for (const w of this.#waiters.splice(0)) w.reject(err);
          return;
        }
        this.#handOver(instance);
      } while (this.#waiters.length > 0);
      this.#refill();
    });
  }
}
