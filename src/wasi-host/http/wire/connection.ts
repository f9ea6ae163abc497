// One client connection of a handler thread's server: llhttp reads the
// socket's bytes in C++ (consume) and calls back here per request. Requests
// are answered one at a time, in order: a request pipelined behind one in
// flight waits (and the socket is not read further meanwhile), so answers
// leave in the order asked without buffering them. What node:http adds on
// top (its request and response streams, their events) is not made.
//
// The socket is read again once the request's answer has gone, and the rest
// of a body the handler did not read is thrown away (node:http does the
// same). Timeouts (server.ts's tick): a head not complete within 60 s (408),
// a request not received within 300 s, a kept-alive connection idle for
// 5 s: node:http's defaults.
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { METHOD_NAMES, ON_BODY, ON_EXECUTE, ON_HEADERS, ON_HEADERS_COMPLETE, ON_MESSAGE_BEGIN, ON_MESSAGE_COMPLETE, requestParser, type LlhttpError, type LlhttpParser } from './llhttp.js';
import { WireRequest, type BodyFlow } from './request.js';
import { WireResponse, type ResponseWire } from './response.js';

/** Seconds, as counted by the server's tick: node:http's defaults. */
export interface WireTimeouts {
  /** A request's head, from its first byte (or the connection's start). */
  headers: number;
  /** A whole request, head and body. */
  request: number;
  /** A kept-alive connection between requests. */
  keepAlive: number;
}
export const NODE_TIMEOUTS: WireTimeouts = { headers: 60, request: 300, keepAlive: 5 };

/** What a connection needs of its server. */
export interface ConnectionHost {
  onRequest(req: WireRequest, res: WireResponse): void;
  /** Seconds since the server started (its tick). */
  readonly ticks: number;
  readonly draining: boolean;
  readonly timeouts: WireTimeouts;
  gone(conn: Connection): void;
}

type Handle = { reading: boolean; readStart(): number; readStop(): number };

const enum Parse {
  /** Between requests. */
  Idle,
  Head,
  Body,
}

interface Pending {
  req: WireRequest;
  res: WireResponse;
  /** Expect: 100-continue (true), or an expectation we cannot meet (417). */
  expect: boolean | 'failed' | undefined;
}

const noop = () => {};

export class Connection implements BodyFlow, ResponseWire {
  readonly #socket: Socket;
  readonly #host: ConnectionHost;
  readonly #parser: LlhttpParser;
  /** Header lines handed over before the head was complete (more than 32), or a body's trailers. */
  #lines: string[] = [];
  #url = '';
  #parse = Parse.Head;
  /** When the current phase began (ticks). */
  #since: number;
  /** The request whose body is being read. */
  #current: WireRequest | undefined;
  /** The request being answered. */
  #active: Pending | undefined;
  readonly #queue: Pending[] = [];
  /** Responses ended, waiting for their last write to be handed to the kernel. */
  #flushing: WireResponse[] = [];
  #bodyPaused = false;
  #reading = true;
  /** No request is read any more (Connection: close, an upgrade, a parse error, a drain). */
  #closing = false;
  #gone = false;
  readonly #afterWrite = (): void => {
    this.#flushing.shift()?.closed();
  };

  constructor(socket: Socket, host: ConnectionHost) {
    this.#socket = socket;
    this.#host = host;
    this.#since = host.ticks;
    const parser = (this.#parser = requestParser());
    parser[ON_MESSAGE_BEGIN] = () => {
      this.#parse = Parse.Head;
      this.#since = this.#host.ticks;
      return 0;
    };
    parser[ON_HEADERS] = (lines: string[], url: string) => {
      for (const line of lines) this.#lines.push(line);
      this.#url += url;
    };
    parser[ON_HEADERS_COMPLETE] = (major: number, minor: number, lines: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean) => {
      this.#headersComplete(major, minor, lines, method, url, upgrade, keepAlive);
      return 0;
    };
    parser[ON_BODY] = (chunk: Buffer) => {
      this.#current?.body(chunk);
    };
    parser[ON_MESSAGE_COMPLETE] = () => {
      this.#messageComplete();
    };
    parser[ON_EXECUTE] = (ret: number | LlhttpError) => {
      if (typeof ret !== 'number') this.#parseError(ret);
    };
    socket.on('error', noop);
    socket.on('drain', () => this.#active?.res.drained());
    socket.on('end', () => this.#peerEnded());
    socket.on('close', () => this.#closed());
    // Flowing, so that the end of the stream is heard; the bytes go to the parser, not to 'data'.
    socket.resume();
    parser.consume((socket as unknown as { _handle: unknown })._handle);
  }

  #headersComplete(major: number, minor: number, lines: string[] | undefined, method: number, url: string | undefined, upgrade: boolean, keepAlive: boolean): void {
    if (lines === undefined) {
      lines = this.#lines;
      this.#lines = [];
    }
    if (url === undefined) {
      url = this.#url;
    }
    this.#url = '';
    this.#parse = Parse.Body;
    const name = METHOD_NAMES[method];
    if (name === undefined) {
      this.#refuse(501);
      return;
    }
    const http10 = major < 1 || (major === 1 && minor === 0);
    // An upgrade (or CONNECT) is answered as a request without a body, and
    // the connection ends after it: wasi:http 0.2 has no way to hand over
    // the connection, and what follows is not HTTP.
    // A request that closes the connection is its last: what follows is not read.
    if (upgrade || !keepAlive) this.#stop();
    const req = new WireRequest(this, name, url, lines, http10);
    const res = new WireResponse(this, name === 'HEAD', http10, keepAlive && !upgrade && !this.#closing && !this.#host.draining);
    let expect: Pending['expect'];
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const n = lines[i]!;
      if (n.length === 6 && n.toLowerCase() === 'expect') expect = !http10 && lines[i + 1]!.trim().toLowerCase() === '100-continue' ? true : 'failed';
    }
    if (upgrade) req.end(undefined);
    else this.#current = req;
    if (this.#closing) this.#update();
    const pending: Pending = { req, res, expect };
    if (!this.#active) this.#serve(pending);
    else {
      this.#queue.push(pending);
      this.#update();
    }
  }

  #messageComplete(): void {
    this.#parse = Parse.Idle;
    this.#since = this.#host.ticks;
    const req = this.#current;
    this.#current = undefined;
    const trailers = this.#lines;
    this.#lines = [];
    req?.end(trailers);
    if (this.#closing) this.#update();
  }

  #serve(p: Pending): void {
    this.#active = p;
    if (p.expect === 'failed') {
      p.res.shouldKeepAlive = false;
      p.res.writeHead(417, ['content-length', '0']).end();
      return;
    }
    if (p.expect === true) this.write('HTTP/1.1 100 Continue\r\n\r\n');
    this.#host.onRequest(p.req, p.res);
  }

  // ResponseWire

  write(data: Uint8Array | string, flushed?: WireResponse): boolean {
    const socket = this.#socket;
    if (this.#gone || socket.destroyed) {
      if (flushed) queueMicrotask(() => flushed.closed());
      return false;
    }
    if (flushed) this.#flushing.push(flushed);
    const cb = flushed ? this.#afterWrite : undefined;
    return typeof data === 'string' ? socket.write(data, 'latin1', cb) : socket.write(data, cb);
  }
  cork(): void {
    this.#socket.cork();
  }
  uncork(): void {
    this.#socket.uncork();
  }
  get needDrain(): boolean {
    return this.#socket.writableNeedDrain;
  }
  get closing(): boolean {
    return this.#closing || this.#host.draining;
  }
  cut(): void {
    this.#socket.destroy();
  }
  ended(res: WireResponse, close: boolean): void {
    const active = this.#active;
    if (!active || active.res !== res) return;
    this.#active = undefined;
    if (!active.req.complete) active.req.dump();
    this.#since = this.#host.ticks;
    if (close || this.#host.draining || (this.#closing && this.#queue.length === 0)) {
      this.#stop();
      // Written first, then the connection ends (node:http's destroySoon).
      this.#socket.end(() => this.#socket.destroy());
      return;
    }
    if (this.#queue.length > 0) {
      // Not from inside the answer's end (the handler's stack): the next request starts on a clean one.
      queueMicrotask(() => this.#next());
      return;
    }
    this.#update();
  }

  #next(): void {
    const next = this.#queue.shift();
    if (!next || this.#gone) return;
    this.#serve(next);
    this.#update();
  }

  // BodyFlow

  pauseBody(): void {
    this.#bodyPaused = true;
    this.#update();
  }
  resumeBody(): void {
    this.#bodyPaused = false;
    this.#update();
  }

  /** Reads the socket only when a request's body wants bytes, or the next request may come. */
  #update(): void {
    const want = !this.#gone && !this.#bodyPaused && this.#queue.length === 0 && (!this.#closing || this.#current !== undefined);
    if (want === this.#reading) return;
    this.#reading = want;
    const handle = (this.#socket as unknown as { _handle: Handle | null })._handle;
    if (!handle) return;
    handle.reading = want;
    if (want) handle.readStart();
    else handle.readStop();
  }

  /** No more requests are read from this connection (the body being read still is). */
  #stop(): void {
    this.#closing = true;
    this.#update();
  }

  /** Answers `status` in the place of a request that cannot be served, and ends the connection. */
  #refuse(status: number): void {
    this.#stop();
    // Answers on their way go first; the connection ends after them (ended()).
    if (this.#active || this.#queue.length > 0) return;
    this.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    this.#socket.end(() => this.#socket.destroy());
  }

  #parseError(err: LlhttpError): void {
    if (this.#current) {
      // A body broken halfway: its reader hears the cut, and so does the client.
      this.#current.cut();
      this.#current = undefined;
      this.#socket.destroy();
      return;
    }
    // Bytes after a request that closes the connection are not looked at.
    if (this.#closing) return;
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW' ? 413 : 400;
    this.#refuse(status);
  }

  #peerEnded(): void {
    // A client that half-closes after its request still gets its answer.
    this.#current?.cut();
    this.#current = undefined;
    this.#stop();
    if (!this.#active && this.#queue.length === 0) this.#socket.end(() => this.#socket.destroy());
  }

  /** The server's tick: a head or a request too slow, or a kept-alive connection idle too long. */
  tick(now: number): void {
    if (this.#gone) return;
    const busy = this.#active !== undefined || this.#queue.length > 0;
    const t = this.#host.timeouts;
    if (this.#parse === Parse.Head && now - this.#since >= t.headers) this.#timedOut(busy);
    else if (this.#parse === Parse.Body && now - this.#since >= t.request) this.#timedOut(busy);
    else if (this.#parse === Parse.Idle && !busy && now - this.#since >= t.keepAlive) this.#socket.destroy();
  }

  #timedOut(busy: boolean): void {
    if (busy || this.#current) {
      this.#current?.cut();
      this.#socket.destroy();
    } else this.#refuse(408);
  }

  /** The server drains: a connection with nothing in flight ends now, the others after their answer. */
  drain(): void {
    if (this.#active || this.#queue.length > 0 || this.#parse === Parse.Body) {
      this.#stop();
      return;
    }
    this.#socket.destroy();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #closed(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#current?.cut();
    this.#current = undefined;
    const active = this.#active;
    this.#active = undefined;
    if (active) {
      active.req.cut();
      active.res.closed();
    }
    for (const p of this.#queue.splice(0)) p.req.cut();
    for (const res of this.#flushing.splice(0)) res.closed();
    const parser = this.#parser;
    // After the parser's own stack has unwound (node:http's freeParser does the same for a parser it does not pool).
    setImmediate(() => {
      try {
        parser.unconsume();
      } catch {
        // the handle is closed already
      }
      parser.close();
    });
    this.#host.gone(this);
  }
}
