// A response on the wire: the status line and headers are written with the
// first body bytes (or the end), framed by the Content-Length the answer
// gives, else chunked (HTTP/1.1), else by closing the connection (HTTP/1.0).
// The same rules as node:http's ServerResponse, for the subset an exchange
// uses (types.ts): no body for HEAD, 1xx, 204 and 304; a Date header; a body
// that breaks its Content-Length is refused. Header names and values come
// from wasi:http fields, checked there (fields.ts: tokens, no CR or LF, no
// Connection or Transfer-Encoding), so they are written as they are.
import { STATUS_CODES } from 'node:http';

/** What the response writes to: its connection (connection.ts). */
export interface ResponseWire {
  /** Queues bytes on the socket; `flushed` hears when they (the response's last) are handed to the kernel. */
  write(data: Uint8Array | string, flushed?: WireResponse): boolean;
  cork(): void;
  uncork(): void;
  readonly needDrain: boolean;
  /** The connection ends after the answers in flight (a drain, a client's Connection: close). */
  readonly closing: boolean;
  /** The response's last byte is queued: the next request may be answered. */
  ended(res: WireResponse, close: boolean): void;
  /** Cuts the connection (the response is broken). */
  cut(): void;
}

/** Who hears of a response's end (thread.ts's request state, through ResponseEvents in types.ts). */
export interface ResponseListener {
  onError: ((err: Error) => void) | undefined;
  onClose: (() => void) | undefined;
  closed(): void;
}

/** The Date header's value, recomputed once a second by the servers' tick (server.ts). */
let dateValue = new Date().toUTCString();
export function tickDate(): void {
  dateValue = new Date().toUTCString();
}

/** Below this, the head and the body are copied into one buffer: one write, one packet. */
const JOIN_MAX = 16 * 1024;
const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';

export class ContentLengthError extends Error {
  readonly code = 'ERR_HTTP_CONTENT_LENGTH_MISMATCH';
}

export class WireResponse {
  /** Whoever hears of this response's end. */
  events: ResponseListener | undefined;
  /** Keep the connection for the next request (false: Connection: close, then the connection ends). */
  shouldKeepAlive: boolean;
  headersSent = false;
  writableEnded = false;
  readonly #wire: ResponseWire;
  readonly #head: boolean;
  readonly #http10: boolean;
  #status = 200;
  #raw: readonly string[] = [];
  #headed = false;
  /** Bytes the Content-Length still allows, or -1 (none given). */
  #left = -1;
  #chunked = false;
  #bodyless = false;
  #trailers: Record<string, string> | undefined;
  #onDrain: (() => void) | undefined;
  #closed = false;

  constructor(wire: ResponseWire, head: boolean, http10: boolean, keepAlive: boolean) {
    this.#wire = wire;
    this.#head = head;
    this.#http10 = http10;
    this.shouldKeepAlive = keepAlive;
  }

  get writableNeedDrain(): boolean {
    return !this.writableEnded && this.#wire.needDrain;
  }

  /** The status and headers to send with the first bytes (node:http's raw array form); a later call before they are sent replaces them. */
  writeHead(status: number, raw: readonly string[]): this {
    if (this.headersSent) throw new Error('the response head was sent already');
    this.#headed = true;
    this.#status = status;
    this.#raw = raw;
    return this;
  }

  #headText(): string {
    const status = this.#status;
    const raw = this.#raw;
    let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}${CRLF}`;
    let length: string | undefined;
    let date = false;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      if (name.length === 14 && name === 'content-length') {
        if (length !== undefined && length !== value) throw new ContentLengthError('the answer gives two Content-Lengths');
        length = value;
      } else if (name.length === 4 && name === 'date') date = true;
      text += `${name}: ${value}${CRLF}`;
    }
    if (!date) text += `date: ${dateValue}${CRLF}`;
    this.#bodyless = this.#head || status === 204 || status === 304 || (status >= 100 && status < 200);
    if (length !== undefined) {
      if (!/^\d{1,15}$/.test(length)) throw new ContentLengthError(`the answer's Content-Length is not a length: ${JSON.stringify(length)}`);
      this.#left = Number(length);
    } else if (!this.#bodyless) {
      if (this.#http10) this.shouldKeepAlive = false;
      else {
        this.#chunked = true;
        text += `transfer-encoding: chunked${CRLF}`;
      }
    }
    if (this.#wire.closing) this.shouldKeepAlive = false;
    if (!this.shouldKeepAlive) text += `connection: close${CRLF}`;
    else if (this.#http10) text += `connection: keep-alive${CRLF}`;
    return text + CRLF;
  }

  #count(n: number): void {
    if (this.#left < 0) return;
    if (n > this.#left) throw new ContentLengthError(`the body is longer than its Content-Length (${n} bytes more, ${this.#left} allowed)`);
    this.#left -= n;
  }

  write(chunk: Uint8Array): boolean {
    if (this.writableEnded) throw new Error('write after the end of the response');
    if (!this.#headed) this.writeHead(200, []);
    const first = !this.headersSent;
    const head = first ? this.#headText() : '';
    this.headersSent = true;
    this.#count(chunk.length);
    if (chunk.length === 0 || this.#bodyless) return first ? this.#wire.write(head) : !this.#wire.needDrain;
    const wire = this.#wire;
    if (!this.#chunked) {
      if (first && chunk.length <= JOIN_MAX) return wire.write(joined(head, chunk, ''));
      wire.cork();
      if (first) wire.write(head);
      const ok = wire.write(chunk);
      wire.uncork();
      return ok;
    }
    const size = `${chunk.length.toString(16)}${CRLF}`;
    if (chunk.length <= JOIN_MAX) return wire.write(joined(head + size, chunk, CRLF));
    wire.cork();
    wire.write(head + size);
    wire.write(chunk);
    const ok = wire.write(CRLF);
    wire.uncork();
    return ok;
  }

  addTrailers(trailers: Record<string, string>): void {
    this.#trailers = trailers;
  }

  end(chunk?: Uint8Array): this {
    if (this.writableEnded) return this;
    if (!this.#headed) this.writeHead(200, []);
    const first = !this.headersSent;
    const head = first ? this.#headText() : '';
    this.headersSent = true;
    const n = chunk?.length ?? 0;
    this.#count(n);
    if (this.#left > 0 && !this.#bodyless) throw new ContentLengthError(`the body ended ${this.#left} bytes short of its Content-Length`);
    this.writableEnded = true;
    const wire = this.#wire;
    let tail = '';
    if (this.#chunked) {
      if (this.#trailers) {
        tail = '0\r\n';
        for (const [name, value] of Object.entries(this.#trailers)) tail += `${name}: ${value}${CRLF}`;
        tail += CRLF;
      } else tail = LAST_CHUNK;
    }
    if (n === 0 || this.#bodyless) wire.write(head + tail, this);
    else {
      const pre = this.#chunked ? `${head}${n.toString(16)}${CRLF}` : head;
      const post = this.#chunked ? CRLF + tail : '';
      if (n <= JOIN_MAX) wire.write(joined(pre, chunk!, post), this);
      else {
        wire.cork();
        if (pre) wire.write(pre);
        if (post) {
          wire.write(chunk!);
          wire.write(post, this);
        } else wire.write(chunk!, this);
        wire.uncork();
      }
    }
    wire.ended(this, !this.shouldKeepAlive);
    return this;
  }

  /** The answer is broken: the connection is cut, and the response closes with it. */
  destroy(_err?: Error): void {
    if (this.#closed) return;
    this.writableEnded = true;
    this.#wire.cut();
  }

  on(event: 'drain', listener: () => void): this {
    if (event === 'drain') this.#onDrain = listener;
    return this;
  }

  // From the connection.

  drained(): void {
    this.#onDrain?.();
  }

  /** Sent (its last bytes handed to the kernel), or its connection is gone. Once. */
  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.writableEnded = true;
    const events = this.events;
    if (!events) return;
    events.onClose?.();
    events.closed();
  }
}

/** `pre`, the bytes, `post` in one buffer (head and framing are latin1: one char a byte). */
function joined(pre: string, chunk: Uint8Array, post: string): Buffer {
  const buf = Buffer.allocUnsafe(pre.length + chunk.length + post.length);
  buf.write(pre, 0, 'latin1');
  buf.set(chunk, pre.length);
  if (post) buf.write(post, pre.length + chunk.length, 'latin1');
  return buf;
}
