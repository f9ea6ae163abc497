// ttrpc client (ttrpc v1.1.1 semantics): odd stream ids from 1, many calls
// in flight on one connection, replies matched by stream id. Used by the shim
// to publish events to containerd, and by tests to drive the server.
import * as net from 'node:net';
import { log } from '../../log.js';
import { decodeResponse, encodeRequest, type Response } from './envelope.js';
import { type DecodedFrame, encodeFrame, FrameDecoder, MESSAGE_LENGTH_MAX, MessageType } from './frame.js';
import { Code, MSG, TtrpcClosedError, TtrpcError } from './status.js';

export interface CallOptions {
  /** Sent as request metadata; keys are lower-cased as ttrpc's MD does. */
  metadata?: Record<string, string>;
  /** Sent as timeout_nano, and the call fails locally with DEADLINE_EXCEEDED when it passes. */
  timeoutMs?: number;
  /** Abandon the call (CANCELLED); the server is not told, as in ttrpc 1.1.1. */
  signal?: AbortSignal;
}

interface Pending {
  resolve: (payload: Uint8Array) => void;
  reject: (err: Error) => void;
}

const MAX_STREAM_ID = 0xffffffff;
const MAX_TIMER_MS = 2 ** 31 - 1;

export class TtrpcClient {
  private readonly pending = new Map<number, Pending>();
  private readonly decoder = new FrameDecoder();
  private readonly closeCbs: (() => void)[] = [];
  private nextId = 1;
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const f of this.decoder.push(chunk)) this.onFrame(f);
      } catch (err) {
        log().warn({ err }, 'ttrpc client: dropping connection after internal error');
        socket.destroy();
      }
    });
    socket.on('error', (err) => log().debug({ err }, 'ttrpc client: connection error'));
    socket.on('end', () => socket.destroy()); // the server finished: no more replies
    socket.once('close', () => this.onClosed());
  }

  /** Connect to a unix socket path; a `unix://` prefix (containerd's address form) is accepted. */
  static connect(socketPath: string): Promise<TtrpcClient> {
    const path = socketPath.startsWith('unix://') ? socketPath.slice('unix://'.length) : socketPath;
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new TtrpcClient(socket));
      });
    });
  }

  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new TtrpcClosedError());
    if (opts.signal?.aborted) return Promise.reject(new TtrpcError(Code.CANCELLED, MSG.canceled));
    const { timeoutMs } = opts;
    if (timeoutMs !== undefined && !(timeoutMs > 0)) {
      return Promise.reject(new TtrpcError(Code.DEADLINE_EXCEEDED, MSG.deadline));
    }
    const data = encodeRequest({
      service,
      method,
      payload,
      timeoutNano: timeoutMs === undefined ? 0n : BigInt(Math.ceil(timeoutMs * 1e6)),
      metadata: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key: key.toLowerCase(), value })),
    });
    if (data.length > MESSAGE_LENGTH_MAX) {
      return Promise.reject(new TtrpcError(Code.RESOURCE_EXHAUSTED, MSG.oversize(data.length, MESSAGE_LENGTH_MAX)));
    }

    const id = this.allocateId();
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => finish(() => reject(new TtrpcError(Code.CANCELLED, MSG.canceled)));
      const finish = (settle: () => void) => {
        if (this.pending.get(id) !== entry) return;
        this.pending.delete(id);
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        settle();
      };
      const entry: Pending = {
        resolve: (p) => finish(() => resolve(p)),
        reject: (e) => finish(() => reject(e)),
      };
      this.pending.set(id, entry);
      if (timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS) {
        timer = setTimeout(() => entry.reject(new TtrpcError(Code.DEADLINE_EXCEEDED, MSG.deadline)), timeoutMs);
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.socket.write(encodeFrame({ streamId: id, type: MessageType.Request, flags: 0, data }));
    });
  }

  /** Close the connection; calls in flight fail with TtrpcClosedError. */
  close(): void {
    this.socket.destroy();
    this.onClosed();
  }

  onClose(cb: () => void): void {
    if (this.closed) queueMicrotask(cb);
    else this.closeCbs.push(cb);
  }

  /** Next odd stream id not in use, wrapping before 2^32. */
  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id + 2 > MAX_STREAM_ID ? 1 : id + 2;
      if (!this.pending.has(id)) return id;
    }
  }

  private onFrame(f: DecodedFrame): void {
    const call = this.pending.get(f.streamId);
    if (!call) return; // late reply to a call that timed out or was abandoned
    if (f.oversize) {
      call.reject(new TtrpcError(Code.RESOURCE_EXHAUSTED, MSG.oversize(f.length, MESSAGE_LENGTH_MAX)));
      return;
    }
    if (f.type !== MessageType.Response) return;
    let resp: Response;
    try {
      resp = decodeResponse(f.data);
    } catch (err) {
      call.reject(new TtrpcError(Code.INTERNAL, `ttrpc: bad response: ${(err as Error).message}`));
      return;
    }
    // A missing status means OK, as in ttrpc's client.
    if (resp.status && resp.status.code !== Code.OK) call.reject(new TtrpcError(resp.status.code, resp.status.message));
    else call.resolve(resp.payload);
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const call of [...this.pending.values()]) call.reject(new TtrpcClosedError());
    for (const cb of this.closeCbs.splice(0)) {
      try {
        cb();
      } catch (err) {
        log().warn({ err }, 'ttrpc client: close callback failed');
      }
    }
  }
}
