// A request as the handler thread's server parsed it (connection.ts): its
// head, and its body as the few stream events a ReadableSource (io.ts)
// listens to. One listener per event, no EventEmitter: a request makes one
// object, and a body nobody reads costs nothing more.

/** What the connection does for its request's body. */
export interface BodyFlow {
  /** Stop reading the socket until `resume` (the body's reader is behind). */
  pauseBody(): void;
  resumeBody(): void;
}

/** Body bytes held for a reader not yet there; past this the socket stops being read. */
const HELD_MAX = 64 * 1024;

const NO_TRAILERS: readonly string[] = [];

export class WireRequest {
  readonly method: string;
  readonly url: string;
  /** Names and values, one after another, as received (node:http's rawHeaders). */
  readonly rawHeaders: string[];
  rawTrailers: readonly string[] = NO_TRAILERS;
  /** HTTP/1.0 (no chunked answers, no keep-alive unless asked). */
  readonly http10: boolean;
  readonly #flow: BodyFlow;
  #held: Buffer[] | undefined;
  #heldBytes = 0;
  #onData: ((chunk: Buffer) => void) | undefined;
  #onEnd: (() => void) | undefined;
  #onClose: (() => void) | undefined;
  #complete = false;
  #cut = false;
  #dumped = false;
  #paused = false;

  constructor(flow: BodyFlow, method: string, url: string, rawHeaders: string[], http10: boolean) {
    this.#flow = flow;
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.http10 = http10;
  }

  /** The whole body was received. */
  get complete(): boolean {
    return this.#complete;
  }

  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'end' | 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: string, listener: (arg: never) => void): this {
    if (event === 'data') {
      this.#onData = listener as (chunk: Buffer) => void;
      const held = this.#held;
      this.#held = undefined;
      this.#heldBytes = 0;
      if (held) for (const chunk of held) this.#onData(chunk);
      if (!this.#paused) this.#flow.resumeBody();
    } else if (event === 'end') {
      this.#onEnd = listener as () => void;
      if (this.#complete) queueMicrotask(listener as () => void);
    } else if (event === 'close') {
      this.#onClose = listener as () => void;
      if (this.#cut) queueMicrotask(listener as () => void);
    }
    // 'error': a parse error cuts the connection, which the reader hears as 'close'.
    return this;
  }
  once(event: 'end' | 'close', listener: () => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
  once(event: 'end' | 'close' | 'error', listener: (arg: never) => void): this {
    return this.on(event as 'end', listener as () => void);
  }

  pause(): this {
    if (!this.#paused) {
      this.#paused = true;
      this.#flow.pauseBody();
    }
    return this;
  }
  resume(): this {
    if (this.#paused) {
      this.#paused = false;
      this.#flow.resumeBody();
    }
    return this;
  }
  isPaused(): boolean {
    return this.#paused;
  }

  // From the connection.

  /** Body bytes (a copy the parser made). */
  body(chunk: Buffer): void {
    if (this.#dumped) return;
    if (this.#onData) {
      this.#onData(chunk);
      return;
    }
    (this.#held ??= []).push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes >= HELD_MAX) this.#flow.pauseBody();
  }

  /** The body is over (with its trailers, if any). */
  end(trailers: readonly string[] | undefined): void {
    if (this.#complete) return;
    this.#complete = true;
    if (trailers && trailers.length > 0) this.rawTrailers = trailers;
    this.#onEnd?.();
  }

  /** The answer is sent: the rest of the body is read and thrown away, so the next request can be reached. */
  dump(): void {
    this.#dumped = true;
    this.#held = undefined;
    this.#heldBytes = 0;
    this.#onData = undefined;
    if (this.#paused) this.resume();
    else this.#flow.resumeBody();
  }

  /** The connection ended before the body did. */
  cut(): void {
    if (this.#complete || this.#cut) return;
    this.#cut = true;
    this.#onClose?.();
  }
}
