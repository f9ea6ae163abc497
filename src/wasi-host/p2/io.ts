// wasi:io streams served by the host itself, synchronously, on preview2-shim's
// classes: jco's glue checks `instanceof` against the wasi:io classes of the
// import object, which are the shim's (the shim's own streams, stdin and HTTP
// bodies, live beside ours), so ours are objects on the shim's prototypes
// with every method the shim implements through its IO worker replaced.
import { errorCode } from './errors.js';
import { clocks, io } from './shim.js';
import type { ErrorCode } from './types.js';

const { streams } = io;

export type InputStream = typeof streams.InputStream.prototype;
export type OutputStream = typeof streams.OutputStream.prototype;

/** The most one read hands back, and what check-write allows: a bound on host memory per call. */
export const MAX_IO = 1 << 20;

/** stream-error::closed: the end of an input stream, or an output nobody reads any more. */
export const CLOSED = Object.freeze({ tag: 'closed' as const });

// (The package's types are the browser build's; in Node the class takes its payload.)
const IoError = io.error.Error as unknown as new (payload: unknown) => Error;

/** The wasi:io error resource of a failed stream operation, carrying the filesystem error code. */
export class StreamError extends IoError {
  constructor(readonly code: ErrorCode) {
    super(code);
  }
}

/** wasi:filesystem's filesystem-error-code: the code of one of our stream errors, none for anyone else's. */
export function filesystemErrorCode(err: unknown): ErrorCode | undefined {
  return err instanceof StreamError ? err.code : undefined;
}

/** A failure as stream-error: `closed` passes through, an error code or errno becomes last-operation-failed. */
function streamCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (typeof err === 'object' && err !== null && 'tag' in err) throw err;
    throw { tag: 'last-operation-failed', val: new StreamError(errorCode(err)) };
  }
}

/** A pollable that is ready at once: these streams never block the guest for long. */
function ready(): unknown {
  return clocks.monotonicClock.subscribeDuration(0n);
}

export interface ByteSource {
  /** Up to `max` bytes (max > 0); null at the end. Failures are thrown (errno or error code). */
  read(max: number): Uint8Array | null;
  dispose?(): void;
}

export interface ByteSink {
  /** Writes all of `data` or throws (errno, error code, or CLOSED). */
  write(data: Uint8Array): void;
  dispose?(): void;
}

function clamp(len: bigint): number {
  return len > BigInt(MAX_IO) ? MAX_IO : Number(len);
}

export function hostInputStream(source: ByteSource): InputStream {
  const read = (len: bigint): Uint8Array => {
    const max = clamp(len);
    if (max === 0) return new Uint8Array(0);
    const got = streamCall(() => source.read(max));
    if (got === null) throw CLOSED;
    return got;
  };
  const skip = (len: bigint): bigint => BigInt(read(len).length);
  const stream = Object.create(streams.InputStream.prototype) as Record<string | symbol, unknown>;
  Object.assign(stream, {
    read,
    blockingRead: read,
    skip,
    blockingSkip: skip,
    subscribe: ready,
    [Symbol.dispose]: () => source.dispose?.(),
  });
  return stream as unknown as InputStream;
}

export function hostOutputStream(sink: ByteSink): OutputStream {
  const write = (buf: Uint8Array): void => streamCall(() => sink.write(buf));
  const zeroes = (len: bigint): void => {
    for (let left = len; left > 0n; ) {
      const n = clamp(left);
      write(new Uint8Array(n));
      left -= BigInt(n);
    }
  };
  const splice = (blocking: boolean) => (src: InputStream, len: bigint): bigint => {
    const data = (blocking ? src.blockingRead(len) : src.read(len)) as Uint8Array;
    write(data);
    return BigInt(data.length);
  };
  const stream = Object.create(streams.OutputStream.prototype) as Record<string | symbol, unknown>;
  Object.assign(stream, {
    checkWrite: () => BigInt(MAX_IO),
    write,
    blockingWriteAndFlush: write,
    flush() {},
    blockingFlush() {},
    writeZeroes: zeroes,
    blockingWriteZeroesAndFlush: zeroes,
    splice: splice(false),
    blockingSplice: splice(true),
    subscribe: ready,
    [Symbol.dispose]: () => sink.dispose?.(),
  });
  return stream as unknown as OutputStream;
}
