// One accepted ttrpc connection on the server side: frames in, handlers run
// concurrently, responses out in completion order (containerd keeps a Wait
// outstanding on the same connection while it sends State/Kill/Exec).
//
// Nothing a peer sends may throw out of here: bad frames are answered on
// their stream or ignored, and an unexpected fault closes only this socket.
import type { Socket } from 'node:net';
import { log } from '../../log.js';
import { decodeRequest, encodeResponse, type Request } from './envelope.js';
import { type DecodedFrame, encodeFrame, FrameDecoder, MESSAGE_LENGTH_MAX, MessageType } from './frame.js';
import { Code, MSG, statusOf, TtrpcError } from './status.js';

export interface CallContext {
  service: string;
  method: string;
  /** Request metadata; keys lower-cased, a key may have several values. */
  metadata: Map<string, string[]>;
  /** Absolute deadline in ms since the epoch, from the request's timeout_nano. */
  deadline?: number;
  /** Aborted at the deadline or when the connection closes; reason is a TtrpcError. */
  signal: AbortSignal;
}

/** Receives the encoded request message; returns the encoded response message. */
export type Handler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array>;

export type Resolve = (service: string, method: string) => Handler | TtrpcError;

/**
 * Stop reading from a peer with this many calls in flight (or with unsent
 * replies piling up) until it drops: the peer cannot make the shim buffer
 * without bound. Far above what containerd uses (a few calls per task).
 */
const MAX_IN_FLIGHT = 1024;
/** setTimeout's limit; a longer deadline is simply not timed. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long close() lets queued replies flush before the socket is destroyed. */
const CLOSE_GRACE_MS = 1000;

export class ServerConnection {
  private readonly decoder = new FrameDecoder();
  private readonly inflight = new Set<AbortController>();
  private closed = false;
  private readEnded = false;
  readonly done: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly resolve: Resolve,
    onClose: () => void,
  ) {
    this.done = new Promise((resolveDone) => {
      socket.once('close', () => {
        this.closed = true;
        for (const ac of this.inflight) ac.abort(new TtrpcError(Code.CANCELLED, MSG.canceled));
        this.inflight.clear();
        resolveDone();
        onClose();
      });
    });
    // Resets, EPIPE from a peer gone mid-reply: 'close' follows; nothing to do.
    socket.on('error', (err) => log().debug({ err }, 'ttrpc: connection error'));
    socket.on('data', (chunk: Buffer) => this.guard(() => this.onData(chunk)));
    socket.on('end', () => this.guard(() => this.onEnd()));
    socket.on('drain', () => this.guard(() => this.updateFlow()));
  }

  /** Abort handlers, flush what is queued, then close (destroy after a grace period). */
  shutdown(): Promise<void> {
    for (const ac of this.inflight) ac.abort(new TtrpcError(Code.CANCELLED, MSG.canceled));
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    return this.done;
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      log().warn({ err }, 'ttrpc: closing connection after internal error');
      this.socket.destroy();
    }
  }

  private onData(chunk: Buffer): void {
    for (const f of this.decoder.push(chunk)) {
      if (this.closed) return;
      this.onFrame(f);
    }
    this.updateFlow();
  }

  /**
   * EOF from the peer ends the connection, as in ttrpc (io.EOF closes the
   * conn and cancels its calls): containerd closing its end must stop a Wait
   * that would otherwise run forever. Replies already queued are flushed.
   */
  private onEnd(): void {
    this.readEnded = true;
    for (const ac of this.inflight) ac.abort(new TtrpcError(Code.CANCELLED, MSG.canceled));
    if (!this.socket.writableEnded) this.socket.end();
  }

  private onFrame(f: DecodedFrame): void {
    // Checked in ttrpc's order: size, type, envelope, stream id parity.
    if (f.oversize) {
      this.reply(f.streamId, Code.RESOURCE_EXHAUSTED, MSG.oversize(f.length, MESSAGE_LENGTH_MAX));
      return;
    }
    if (f.type !== MessageType.Request) return; // reserved for future types: ignore
    let req: Request;
    try {
      req = decodeRequest(f.data);
    } catch (err) {
      this.reply(f.streamId, Code.INVALID_ARGUMENT, MSG.badRequest(statusOf(err).message));
      return;
    }
    if (f.streamId % 2 !== 1) {
      this.reply(f.streamId, Code.INVALID_ARGUMENT, MSG.evenStream);
      return;
    }
    this.dispatch(f.streamId, req);
  }

  private dispatch(streamId: number, req: Request): void {
    const ac = new AbortController();
    this.inflight.add(ac);
    const metadata = new Map<string, string[]>();
    for (const { key, value } of req.metadata) {
      const k = key.toLowerCase();
      const list = metadata.get(k);
      if (list) list.push(value);
      else metadata.set(k, [value]);
    }
    const ctx: CallContext = { service: req.service, method: req.method, metadata, signal: ac.signal };
    let timer: NodeJS.Timeout | undefined;
    if (req.timeoutNano !== 0n) {
      // Relative nanoseconds; a negative value is a deadline already past.
      const ms = Number(req.timeoutNano) / 1e6;
      ctx.deadline = Date.now() + ms;
      const onDeadline = () => ac.abort(new TtrpcError(Code.DEADLINE_EXCEEDED, MSG.deadline));
      if (ms <= 0) onDeadline();
      else if (ms <= MAX_TIMER_MS) timer = setTimeout(onDeadline, ms).unref();
    }

    const handler = this.resolve(req.service, req.method);
    const run =
      handler instanceof TtrpcError
        ? Promise.reject(handler)
        : Promise.resolve()
            .then(() => handler(req.payload, ctx))
            .then((payload) => {
              if (!(payload instanceof Uint8Array)) throw new TtrpcError(Code.INTERNAL, 'ttrpc: handler returned no message');
              return payload;
            });
    run
      .then(
        (payload) => this.reply(streamId, Code.OK, '', payload),
        (err: unknown) => {
          const st = statusOf(err);
          this.reply(streamId, st.code, st.message);
        },
      )
      .catch((err: unknown) => log().warn({ err }, 'ttrpc: failed to send reply'))
      .finally(() => {
        clearTimeout(timer);
        this.inflight.delete(ac);
        this.guard(() => this.updateFlow());
      });
  }

  private reply(streamId: number, code: Code, message: string, payload?: Uint8Array): void {
    if (this.closed || this.socket.destroyed || this.socket.writableEnded) return;
    const data = encodeResponse(code, message, payload);
    this.socket.write(encodeFrame({ streamId, type: MessageType.Response, flags: 0, data }));
  }

  /** Backpressure: pause reading while too much is in flight or unsent. */
  private updateFlow(): void {
    if (this.closed) return;
    const hold = this.inflight.size >= MAX_IN_FLIGHT || this.socket.writableNeedDrain;
    if (hold && !this.socket.isPaused()) this.socket.pause();
    else if (!hold && this.socket.isPaused() && !this.readEnded) this.socket.resume();
  }
}
