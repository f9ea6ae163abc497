// wasi:io streams and pollables over Node streams, for HTTP bodies, on the
// thread that owns the component instance. A call that would block (a read
// with nothing buffered, a write into a full socket, pollable.block, poll)
// returns a promise: the handler export and these imports are transpiled for
// JSPI (component-cache.ts), so the guest is suspended and the thread goes on
// serving other requests. Nothing here ever blocks the thread.
//
// Backpressure both ways: a request body is read from the socket only while
// less than HIGH_WATER bytes wait for the guest (the request is paused
// beyond), and a response body accepts writes only while Node's socket buffer
// has room (check-write answers 0, blocking writes wait for 'drain'). So a
// body of any size crosses the host with bounded memory.
//
// The whole of wasi:io is lowered (abi.ts): a guest's calls come straight
// here, whether the stream is one of ours or one of preview2-shim's (stdout,
// a file), which keep their own implementation. The classes in the import
// object only stand for the types (jco's glue checks instanceof against them
// where preview2-shim's calls hand out streams).
import { CABI_DISPOSE, CABI_LOWER, CABI_REP, ErrResult, type FnType, type HostFn, type Lowering, type Ty } from './abi.js';
import { lowering } from './lowered.js';
import type { Reps } from './reps.js';
import { borrow, BYTES, fn, list, method, own, result, STREAM_ERROR } from './wit.js';

/** Bytes buffered per body, each way, before the other side must wait. */
export const HIGH_WATER = 64 * 1024;

/** Something a pollable can stand for: ready now, or a promise that settles when it may be. */
export interface Waitable {
  ready(): boolean;
  /** Settles when the state changed (ready() may still be false: check again). */
  changed(): Promise<void>;
}

/** One promise for everyone waiting on the next change, so that waiting never piles up listeners. */
export class Signal {
  #promise: Promise<void> | undefined;
  #resolve: (() => void) | undefined;
  wait(): Promise<void> {
    return (this.#promise ??= new Promise<void>((r) => (this.#resolve = r)));
  }
  notify(): void {
    const resolve = this.#resolve;
    this.#promise = this.#resolve = undefined;
    resolve?.();
  }
}

export const CLOSED = Object.freeze({ tag: 'closed' as const });
const EMPTY = new Uint8Array(0);

/** The bytes a guest may ask for at once (u64 in WIT). */
function byteCount(len: bigint | number): number {
  const n = typeof len === 'bigint' ? (len > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(len)) : len;
  return Math.max(0, n);
}

/**
 * A Node Readable (a request body, a client response body) as a source of
 * chunks for the guest: flowing while less than HIGH_WATER bytes wait,
 * paused beyond. `source` null is an empty body.
 */
/** A body's bytes as stream events: a client's IncomingMessage, or a served request (wire/request.ts). */
export interface BodyEvents {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  once(event: 'end' | 'close', listener: () => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
}

export class ReadableSource implements Waitable {
  readonly #queue: Buffer[] = [];
  #offset = 0;
  #queued = 0;
  #ended = false;
  #error: Error | undefined;
  readonly #signal = new Signal();
  readonly #source: BodyEvents | null;

  constructor(source: BodyEvents | null) {
    this.#source = source;
    if (!source) {
      this.#ended = true;
      return;
    }
    source.on('data', (chunk: Buffer) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued >= HIGH_WATER) source.pause();
      this.#signal.notify();
    });
    source.once('end', () => {
      this.#ended = true;
      this.#signal.notify();
    });
    source.once('error', (err: Error) => this.fail(err));
    // A client that goes away before the end: the body is cut short.
    source.once('close', () => {
      if (!this.#ended) this.fail(new Error('the connection closed before the body ended'));
    });
  }

  fail(err: Error): void {
    this.#error ??= err;
    this.#signal.notify();
  }

  get ended(): boolean {
    return this.#ended && this.#queued === 0;
  }

  ready(): boolean {
    return this.#queued > 0 || this.#ended || this.#error !== undefined;
  }

  changed(): Promise<void> {
    return this.#signal.wait();
  }

  /** Up to `max` bytes: empty when nothing is buffered yet; the stream-error at the end (closed) or on failure. */
  read(max: number, failure: (err: Error) => unknown): Uint8Array | ErrResult {
    if (this.#queued === 0) {
      if (this.#error) return new ErrResult(failure(this.#error));
      if (this.#ended) return new ErrResult(CLOSED);
      return EMPTY;
    }
    const chunk = this.#queue[0]!;
    const end = Math.min(chunk.length, this.#offset + max);
    const out = chunk.subarray(this.#offset, end);
    this.#consumed(out.length, end === chunk.length);
    return out;
  }

  #consumed(n: number, chunkDone: boolean): void {
    if (chunkDone) {
      this.#queue.shift();
      this.#offset = 0;
    } else this.#offset += n;
    this.#queued -= n;
    if (this.#source && this.#queued < HIGH_WATER / 2 && this.#source.isPaused()) this.#source.resume();
  }
}

/** What a body sink writes to: a served response (wire/response.ts) or a ClientRequest. */
export interface BodyTarget {
  write(chunk: Uint8Array): boolean;
  end(chunk?: Uint8Array): unknown;
  readonly writableNeedDrain: boolean;
  readonly headersSent: boolean;
  destroy(err?: Error): unknown;
  addTrailers(headers: Record<string, string>): void;
  on(event: 'drain' | 'error', listener: (err: Error) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * The writing end of an outgoing body. Writes made before the target is
 * known (a response not yet set) wait here, up to HIGH_WATER. The first
 * chunk of a response is held back until the guest writes again, finishes
 * or lets the thread go (setImmediate): a response written and finished in
 * one go leaves in one packet, with a Content-Length, as Node's own
 * `res.end(body)` would.
 */
export class WritableSink implements Waitable {
  #target: BodyTarget | undefined;
  readonly #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #held: Uint8Array | undefined;
  #written = false;
  #finished = false;
  #trailers: Record<string, string> | undefined;
  #error: Error | undefined;
  readonly #signal = new Signal();

  get attached(): boolean {
    return this.#target !== undefined;
  }
  get finished(): boolean {
    return this.#finished;
  }
  get failed(): Error | undefined {
    return this.#error;
  }

  attach(target: BodyTarget): void {
    this.#target = target;
    if (this.#waited) this.#watchDrain();
    target.on('error', (err: Error) => this.fail(err));
    target.once('close', () => {
      if (!this.#finished || this.#held || this.#pendingBytes) this.fail(new Error('the connection closed before the body was sent'));
    });
    for (const chunk of this.#pending.splice(0)) this.#write(chunk);
    this.#pendingBytes = 0;
    if (this.#finished) this.#end();
    this.#signal.notify();
  }

  fail(err: Error): void {
    this.#error ??= err;
    this.#signal.notify();
  }

  /** Bytes the guest may write now (check-write). */
  capacity(failure: (err: Error) => unknown): number {
    if (this.#error) throw failure(this.#error);
    if (this.#finished) throw CLOSED;
    if (!this.#target) return Math.max(0, HIGH_WATER - this.#pendingBytes);
    return this.#target.writableNeedDrain ? 0 : HIGH_WATER;
  }

  ready(): boolean {
    if (this.#error || this.#finished) return true;
    return this.#target ? !this.#target.writableNeedDrain : this.#pendingBytes < HIGH_WATER;
  }

  changed(): Promise<void> {
    this.#waited = true;
    if (this.#target) this.#watchDrain();
    return this.#signal.wait();
  }

  // Most bodies are written at once and never wait: their target gets no
  // 'drain' listener (one fewer listener added and removed per request).
  #waited = false;
  #drainWatched = false;
  #watchDrain(): void {
    if (this.#drainWatched) return;
    this.#drainWatched = true;
    this.#target!.on('drain', () => this.#signal.notify());
  }

  write(chunk: Uint8Array, failure: (err: Error) => unknown): void {
    if (this.#error) throw failure(this.#error);
    if (this.#finished) throw CLOSED;
    if (chunk.length === 0) return;
    if (!this.#target) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      return;
    }
    this.#write(chunk);
  }

  #write(chunk: Uint8Array): void {
    const target = this.#target!;
    if (!this.#written && !target.headersSent) {
      this.#written = true;
      this.#held = chunk;
      holding(this);
      return;
    }
    this.release();
    this.#written = true;
    this.#send(() => target.write(chunk));
  }

  /** Sends the held first chunk, if any. */
  release(): void {
    const held = this.#held;
    if (!held) return;
    this.#held = undefined;
    this.#send(() => this.#target!.write(held));
  }

  #send(op: () => unknown): void {
    try {
      op();
    } catch (err) {
      // Node refuses synchronously (a body longer than its Content-Length, …).
      this.fail(err as Error);
      this.#target?.destroy(err as Error);
      throw err;
    }
  }

  /** Waits until a write would be accepted (or the sink failed). */
  async writable(): Promise<void> {
    while (!this.ready()) await this.changed();
  }

  finish(trailers: Record<string, string> | undefined, failure: (err: Error) => unknown): void {
    if (this.#error) throw failure(this.#error);
    if (this.#finished) throw CLOSED;
    this.#finished = true;
    this.#trailers = trailers;
    if (this.#target) this.#end();
  }

  #end(): void {
    const target = this.#target!;
    if (this.#trailers) target.addTrailers(this.#trailers);
    const held = this.#held;
    this.#held = undefined;
    try {
      if (held) target.end(held);
      else target.end();
    } catch (err) {
      this.fail(err as Error);
      target.destroy(err as Error);
      throw err;
    }
  }

  /** The guest dropped the body without finishing it: what was sent is cut off. */
  abort(): void {
    if (this.#finished) return;
    this.detach();
    this.#target?.destroy();
  }

  /** Nothing more goes to the target (the host answers in the guest's place). */
  detach(): void {
    this.fail(new Error('the body was abandoned'));
    this.#held = undefined;
    this.#finished = true;
  }
}

/**
 * Sinks holding a first chunk, sent when the thread is let go (one
 * setImmediate for all of them, not one per response). A sink finished
 * meanwhile has sent it with its end.
 */
// An array whose slots are cleared, not a Set: a long-lived Set that is
// filled and cleared for every response leaves behind old tables that still
// point at the responses, and keeps them alive through young-generation
// collections (see SlotList in reps.ts).
const held: (WritableSink | undefined)[] = [];
let heldCount = 0;
let heldTurn: NodeJS.Immediate | undefined;
function holding(sink: WritableSink): void {
  held[heldCount++] = sink;
  heldTurn ??= setImmediate(() => {
    heldTurn = undefined;
    for (let i = 0; i < heldCount; i++) {
      const s = held[i]!;
      held[i] = undefined;
      try {
        s.release();
      } catch {
        // The sink failed and says so to its guest.
      }
    }
    heldCount = 0;
  });
}

/** A deadline on the monotonic clock (subscribe-instant, subscribe-duration). */
export class Deadline implements Waitable {
  readonly #at: bigint;
  constructor(at: bigint) {
    this.#at = at;
  }
  ready(): boolean {
    return process.hrtime.bigint() >= this.#at;
  }
  changed(): Promise<void> {
    const ms = Number((this.#at - process.hrtime.bigint()) / 1_000_000n);
    return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms) + 1));
  }
}

const ALWAYS: Waitable = { ready: () => true, changed: () => Promise.resolve() };

/** wasi:io/error's error: a message, and the wasi:http error-code behind it if any. */
export class HostError {
  readonly message: string;
  readonly code: { tag: string; val?: unknown } | undefined;
  constructor(message: string, code?: { tag: string; val?: unknown }) {
    this.message = message;
    this.code = code;
  }
  toDebugString(): string {
    return this.message;
  }
}

export const failure = (err: Error) => ({ tag: 'last-operation-failed' as const, val: new HostError(err.message) });

export async function until(w: Waitable): Promise<void> {
  while (!w.ready()) await w.changed();
}

export class HostPollable {
  readonly waitable: Waitable;
  constructor(waitable: Waitable) {
    this.waitable = waitable;
  }
  ready(): boolean {
    return this.waitable.ready();
  }
  block(): Promise<void> | undefined {
    return this.waitable.ready() ? undefined : until(this.waitable);
  }
}

/** A body stream the guest reads. */
export class HostInputStream {
  readonly source: ReadableSource;
  constructor(source: ReadableSource) {
    this.source = source;
  }
  read(len: bigint): Uint8Array | ErrResult {
    return this.source.read(byteCount(len), failure);
  }
  blockingRead(len: bigint): Uint8Array | ErrResult | Promise<Uint8Array | ErrResult> {
    if (this.source.ready() || len === 0n) return this.read(len);
    return until(this.source).then(() => this.read(len));
  }
  skip(len: bigint): bigint | ErrResult {
    const r = this.read(len);
    return r instanceof ErrResult ? r : BigInt(r.length);
  }
  blockingSkip(len: bigint): bigint | ErrResult | Promise<bigint | ErrResult> {
    const r = this.blockingRead(len);
    const count = (b: Uint8Array | ErrResult) => (b instanceof ErrResult ? b : BigInt(b.length));
    return r instanceof Promise ? r.then(count) : count(r);
  }
  subscribe(): HostPollable {
    return new HostPollable(this.source);
  }
}

/** Any input stream a guest may hold: ours, or one of preview2-shim's (a file, stdin). */
interface AnyInput {
  read(len: bigint): Uint8Array | ErrResult;
  blockingRead(len: bigint): Uint8Array | ErrResult | Promise<Uint8Array | ErrResult>;
}

/** A body stream the guest writes. */
export class HostOutputStream {
  readonly sink: WritableSink;
  constructor(sink: WritableSink) {
    this.sink = sink;
  }
  checkWrite(): bigint {
    return BigInt(this.sink.capacity(failure));
  }
  write(contents: Uint8Array): void {
    this.sink.write(contents, failure);
  }
  blockingWriteAndFlush(contents: Uint8Array): Promise<void> | undefined {
    this.sink.write(contents, failure);
    return this.blockingFlush();
  }
  flush(): void {
    this.sink.capacity(failure);
  }
  blockingFlush(): Promise<void> | undefined {
    if (this.sink.ready()) return this.#check();
    return this.sink.writable().then(() => this.#check());
  }
  #check(): undefined {
    if (this.sink.failed) throw failure(this.sink.failed);
    return undefined;
  }
  writeZeroes(len: bigint): void {
    this.write(new Uint8Array(byteCount(len)));
  }
  blockingWriteZeroesAndFlush(len: bigint): Promise<void> | undefined {
    return this.blockingWriteAndFlush(new Uint8Array(byteCount(len)));
  }
  splice(src: AnyInput, len: bigint): bigint | ErrResult {
    const chunk = src.read(BigInt(Math.min(byteCount(len), this.sink.capacity(failure))));
    if (chunk instanceof ErrResult) return chunk;
    this.write(chunk);
    return BigInt(chunk.length);
  }
  async blockingSplice(src: AnyInput, len: bigint): Promise<bigint | ErrResult> {
    await this.sink.writable();
    const chunk = await src.blockingRead(BigInt(Math.min(byteCount(len), HIGH_WATER)));
    if (chunk instanceof ErrResult) return chunk;
    await this.blockingWriteAndFlush(chunk);
    return BigInt(chunk.length);
  }
  subscribe(): HostPollable {
    return new HostPollable(this.sink);
  }
}

/** preview2-shim's classes whose instances may reach the guest beside ours (stdout, files, sockets). */
export interface ShimIo {
  InputStream: abstract new () => object;
  OutputStream: abstract new () => object;
  Pollable: abstract new () => object;
  IoError: abstract new (payload: unknown) => object;
}

/** A class in the import object that accepts `classes`' instances: the glue's instanceof checks. */
export function markerClass(name: string, classes: (abstract new (...a: never[]) => object)[]): new () => object {
  const cls = {
    [name]: class {
      static [Symbol.hasInstance](x: unknown): boolean {
        return classes.some((c) => Function.prototype[Symbol.hasInstance].call(c, x));
      }
    },
  }[name]!;
  return cls;
}

/** Calls through jco's own glue (not lowered) reaching a function whose real work is lowered: a bug of ours. */
function notLowered(name: string): () => never {
  return () => {
    throw new Error(`tugboat: ${name} was called through jco's glue, not lowered (transpile with importBindings 'hybrid')`);
  };
}

/** `fn` as jco's glue sees it: a function object carrying its lowering. */
export function withLowering(name: string, type: FnType, impl: HostFn, low: Lowering, suspending = false): () => never {
  return Object.assign(notLowered(name), { [CABI_LOWER]: lowering(type, impl, low, suspending, name) });
}

/** On a drop of a handle jco's glue does not hold: our rep goes, and the object's own farewell runs. */
export function disposer(reps: Reps) {
  return (rep: number) => {
    const res = reps.typeOf(rep);
    if (res === undefined) return;
    const obj = reps.take(rep, res) as { [Symbol.dispose]?: () => void };
    obj[Symbol.dispose]?.();
  };
}

/**
 * wasi:io (error, poll, streams) and wasi:clocks/monotonic-clock, lowered:
 * over our bodies, our pollables, and preview2-shim's streams where a guest
 * has one of those.
 */
export function wasiIo(low: Lowering & { host: Reps }, shim: ShimIo) {
  const reps = low.host;
  reps.nameForeign(shim.InputStream, 'input-stream');
  reps.nameForeign(shim.OutputStream, 'output-stream');
  // preview2-shim's pollables made by its own calls (sockets) carry IO ids as reps: asked through its own methods.
  reps.native('pollable', (rep) => Object.defineProperty(Object.create(shim.Pollable.prototype), CABI_REP, { value: rep }));

  const Error = markerClass('Error', [HostError, shim.IoError]);
  const Pollable = markerClass('Pollable', [HostPollable, shim.Pollable]);
  const InputStream = markerClass('InputStream', [HostInputStream, shim.InputStream]);
  const OutputStream = markerClass('OutputStream', [HostOutputStream, shim.OutputStream]);
  const dispose = disposer(reps);
  for (const cls of [Error, Pollable, InputStream, OutputStream]) Object.assign(cls, { [CABI_DISPOSE]: dispose });

  /** One of preview2-shim's pollables: asked through its own ready(), its block() would block the thread. */
  const waitableOf = (p: object): Waitable => {
    if (p instanceof HostPollable) return p.waitable;
    const q = p as { ready(): boolean };
    return { ready: () => q.ready(), changed: () => new Promise((r) => setTimeout(r, 1)) };
  };

  function poll(list: object[]): Uint32Array | Promise<Uint32Array> {
    if (list.length === 0) throw new WebAssembly.RuntimeError('poll of an empty list');
    const waitables = list.map(waitableOf);
    const readyNow = () => {
      const out: number[] = [];
      waitables.forEach((w, i) => w.ready() && out.push(i));
      return Uint32Array.from(out);
    };
    const now = readyNow();
    if (now.length > 0) return now;
    return (async () => {
      for (;;) {
        await Promise.race(waitables.map((w) => w.changed()));
        const r = readyNow();
        if (r.length > 0) return r;
      }
    })();
  }

  const SE = STREAM_ERROR;
  const def = (cls: { prototype: object }, wit: string, js: string, type: FnType, impl: HostFn, suspending = false) =>
    Object.defineProperty(cls.prototype, js, { value: withLowering(wit, type, impl, low, suspending), writable: true, configurable: true });
  type In = AnyInput & { skip(l: bigint): bigint; blockingSkip(l: bigint): unknown; subscribe(): object };
  type Out = {
    checkWrite(): bigint;
    write(b: Uint8Array): void;
    blockingWriteAndFlush(b: Uint8Array): unknown;
    flush(): void;
    blockingFlush(): unknown;
    writeZeroes(n: bigint): void;
    blockingWriteZeroesAndFlush(n: bigint): unknown;
    splice(s: AnyInput, n: bigint): bigint;
    blockingSplice(s: AnyInput, n: bigint): unknown;
    subscribe(): object;
  };

  def(Error, '[method]error.to-debug-string', 'toDebugString', method('error', [], 'string'), (e: { toDebugString(): string }) => e.toDebugString());

  def(Pollable, '[method]pollable.ready', 'ready', method('pollable', [], 'bool'), (p: object) => waitableOf(p).ready());
  def(Pollable, '[method]pollable.block', 'block', method('pollable', []), (p: object) => {
    const w = waitableOf(p);
    return w.ready() ? undefined : until(w);
  }, true);
  const pollFn = withLowering('poll', fn([list(borrow('pollable'))], list('u32')), poll as HostFn, low, true);

  const R = (ok: Ty | null) => result(ok, SE);
  def(InputStream, '[method]input-stream.read', 'read', method('input-stream', ['u64'], R(BYTES)), (s: In, n: bigint) => s.read(n));
  def(InputStream, '[method]input-stream.blocking-read', 'blockingRead', method('input-stream', ['u64'], R(BYTES)), (s: In, n: bigint) => s.blockingRead(n), true);
  def(InputStream, '[method]input-stream.skip', 'skip', method('input-stream', ['u64'], R('u64')), (s: In, n: bigint) => s.skip(n));
  def(InputStream, '[method]input-stream.blocking-skip', 'blockingSkip', method('input-stream', ['u64'], R('u64')), (s: In, n: bigint) => s.blockingSkip(n), true);
  def(InputStream, '[method]input-stream.subscribe', 'subscribe', method('input-stream', [], own('pollable')), (s: In) => s.subscribe());

  def(OutputStream, '[method]output-stream.check-write', 'checkWrite', method('output-stream', [], R('u64')), (s: Out) => s.checkWrite());
  def(OutputStream, '[method]output-stream.write', 'write', method('output-stream', [BYTES], R(null)), (s: Out, b: Uint8Array) => s.write(b));
  def(OutputStream, '[method]output-stream.blocking-write-and-flush', 'blockingWriteAndFlush', method('output-stream', [BYTES], R(null)), (s: Out, b: Uint8Array) => s.blockingWriteAndFlush(b), true);
  def(OutputStream, '[method]output-stream.flush', 'flush', method('output-stream', [], R(null)), (s: Out) => s.flush());
  def(OutputStream, '[method]output-stream.blocking-flush', 'blockingFlush', method('output-stream', [], R(null)), (s: Out) => s.blockingFlush(), true);
  def(OutputStream, '[method]output-stream.subscribe', 'subscribe', method('output-stream', [], own('pollable')), (s: Out) => s.subscribe());
  def(OutputStream, '[method]output-stream.write-zeroes', 'writeZeroes', method('output-stream', ['u64'], R(null)), (s: Out, n: bigint) => s.writeZeroes(n));
  def(OutputStream, '[method]output-stream.blocking-write-zeroes-and-flush', 'blockingWriteZeroesAndFlush', method('output-stream', ['u64'], R(null)), (s: Out, n: bigint) => s.blockingWriteZeroesAndFlush(n), true);
  def(OutputStream, '[method]output-stream.splice', 'splice', method('output-stream', [borrow('input-stream'), 'u64'], R('u64')), (s: Out, src: AnyInput, n: bigint) => s.splice(src, n));
  def(OutputStream, '[method]output-stream.blocking-splice', 'blockingSplice', method('output-stream', [borrow('input-stream'), 'u64'], R('u64')), (s: Out, src: AnyInput, n: bigint) => s.blockingSplice(src, n), true);

  const deadline = (at: bigint) => new HostPollable(at <= process.hrtime.bigint() ? ALWAYS : new Deadline(at));
  const monotonicClock = {
    now: withLowering('now', fn([], 'u64'), () => process.hrtime.bigint(), low),
    resolution: withLowering('resolution', fn([], 'u64'), () => 1n, low),
    subscribeInstant: withLowering('subscribe-instant', fn(['u64'], own('pollable')), (at: bigint) => deadline(at), low),
    subscribeDuration: withLowering('subscribe-duration', fn(['u64'], own('pollable')), (d: bigint) => deadline(process.hrtime.bigint() + d), low),
  };

  return {
    error: { Error },
    poll: { Pollable, poll: pollFn },
    streams: { InputStream, OutputStream },
    monotonicClock,
  };
}
