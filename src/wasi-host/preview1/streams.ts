// Descriptors that are not files or directories: pipes, FIFOs, terminals,
// sockets and character devices, as a guest's stdio or opened by path.
//
// Those that can block (pipes, FIFOs, terminals, sockets) are driven by
// libuv on the host's own open file description of them (reopened through
// /proc/self/fd/N, so O_NONBLOCK never reaches a description another process
// shares), and buffered in both directions with a bound: a reader takes at
// most HIGH_WATER bytes ahead of the guest, a writer accepts more only once
// what it holds has drained. A slow peer therefore suspends only its guest,
// and a guest writing 1 GB to a slow pipe holds at most HIGH_WATER plus one
// write in host memory. Regular files and other character devices never
// block and are read and written synchronously.
import { closeSync, fstatSync, openSync, readSync, writeSync, constants as fsc } from 'node:fs';
import type { Duplex } from 'node:stream';
import { E, FILETYPE, type Filetype } from './abi.js';
import { errnoOf, WasiError } from './errno.js';
import { sys } from './sys.js';

export const HIGH_WATER = 64 * 1024;

export interface GuestStream {
  /** The host descriptor behind the stream (for fd_filestat_get), or -1. */
  readonly fd: number;
  readonly filetype: Filetype;
  /** Bytes now, null at end of stream, undefined when a read would block. */
  tryRead(max: number): Buffer | null | undefined;
  /** Bytes accepted, or undefined when a write would block. */
  tryWrite(data: Uint8Array): number | undefined;
  /** Bytes that can be read without blocking (0 with `ended` at end of stream). */
  readable(): { bytes: number; ended: boolean; ready: boolean };
  writable(): { bytes: number; ready: boolean };
  /** Resolves when readable()/writable() may have changed, or `signal` aborts. */
  wait(signal: AbortSignal): Promise<void>;
  /** Resolves once everything written has reached the descriptor (or failed). */
  flush(): Promise<void>;
  close(): void;
}

/** Streams that never block: always ready, nothing buffered. */
abstract class ReadyStream implements GuestStream {
  abstract readonly fd: number;
  abstract readonly filetype: Filetype;
  abstract tryRead(max: number): Buffer | null;
  abstract tryWrite(data: Uint8Array): number;
  abstract close(): void;
  readable() {
    return { bytes: 0, ended: false, ready: true };
  }
  writable() {
    return { bytes: 0, ready: true };
  }
  wait(): Promise<void> {
    return Promise.resolve();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

/** Regular files and non-terminal character devices: synchronous, always ready. */
export class SyncStream extends ReadyStream {
  constructor(readonly fd: number, readonly filetype: Filetype) {
    super();
  }
  tryRead(max: number): Buffer | null {
    const buf = Buffer.allocUnsafe(Math.min(max, 1 << 20));
    const n = readSync(this.fd, buf, 0, buf.length, null);
    return n === 0 && max > 0 ? null : buf.subarray(0, n);
  }
  tryWrite(data: Uint8Array): number {
    return writeSync(this.fd, data);
  }
  close(): void {
    closeSync(this.fd);
  }
}

/** A host descriptor that does not exist (the container was started with fd N closed). */
export class ClosedStream extends ReadyStream {
  readonly fd = -1;
  readonly filetype = FILETYPE.UNKNOWN;
  tryRead(): never {
    throw new WasiError(E.BADF);
  }
  tryWrite(): never {
    throw new WasiError(E.BADF);
  }
  close(): void {}
}

/** Callers waiting for a state change; woken all at once. */
export class WaitSet {
  private readonly waiters = new Set<() => void>();
  wake(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }
  wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        signal.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

type Maker = (fd: number) => Duplex;

/** Pipes, FIFOs, sockets, terminals: libuv-driven, bounded both ways. The libuv handle is made on first use. */
export class EventStream implements GuestStream {
  private sock: Duplex | undefined;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private error: number | undefined;
  private readonly waiters = new WaitSet();

  /**
   * `direct`: the descriptor is O_NONBLOCK and ours alone, so until libuv is
   * needed (the first read that would block, the first write to a full pipe)
   * reads and writes go straight to it: no libuv handle, no copy, and no
   * loading of node:net for a guest that only prints.
   */
  constructor(readonly fd: number, readonly filetype: Filetype, private readonly canRead: boolean, private readonly make: Maker, private readonly direct = false) {}

  /** One direct read or write; undefined when it would block (libuv takes over from then on). */
  private tryDirect<T>(op: () => T): T | undefined {
    try {
      return op();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return undefined;
      throw err;
    }
  }

  private wake(): void {
    this.waiters.wake();
  }

  private ensure(): Duplex {
    if (this.sock) return this.sock;
    const s = this.make(this.fd);
    this.sock = s;
    s.on('error', (err: NodeJS.ErrnoException) => {
      try {
        this.error = errnoOf(err);
      } catch {
        this.error = E.IO;
      }
      this.wake();
    });
    s.on('drain', () => this.wake());
    s.on('close', () => {
      this.ended = true;
      this.wake();
    });
    if (this.canRead) {
      s.on('data', (b: Buffer) => {
        this.queue.push(b);
        this.queued += b.length;
        if (this.queued >= HIGH_WATER) s.pause();
        this.wake();
      });
      s.on('end', () => {
        this.ended = true;
        this.wake();
      });
    }
    return s;
  }

  tryRead(max: number): Buffer | null | undefined {
    if (this.direct && !this.sock) {
      const buf = Buffer.allocUnsafe(Math.min(max, HIGH_WATER));
      const n = this.tryDirect(() => readSync(this.fd, buf, 0, buf.length, null));
      if (n !== undefined) return n === 0 && max > 0 ? null : buf.subarray(0, n);
    }
    const s = this.ensure();
    if (this.queued > 0) {
      const parts: Buffer[] = [];
      let n = 0;
      while (n < max && this.queue.length) {
        const head = this.queue[0]!;
        const take = Math.min(head.length, max - n);
        parts.push(head.subarray(0, take));
        n += take;
        if (take === head.length) this.queue.shift();
        else this.queue[0] = head.subarray(take);
      }
      this.queued -= n;
      if (this.queued < HIGH_WATER && s.isPaused()) s.resume();
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
    }
    if (this.error !== undefined) throw new WasiError(this.error as never);
    if (this.ended) return null;
    return undefined;
  }

  tryWrite(data: Uint8Array): number | undefined {
    if (this.direct && !this.sock) {
      const n = this.tryDirect(() => writeSync(this.fd, data));
      if (n !== undefined) return n;
    }
    const s = this.ensure();
    if (this.error !== undefined) throw new WasiError(this.error as never);
    if (this.ended || s.writableEnded || s.destroyed) throw new WasiError(E.PIPE);
    if (s.writableNeedDrain || s.writableLength >= HIGH_WATER) return undefined;
    // A copy: guest memory changes as soon as the guest runs again.
    s.write(Buffer.from(data));
    return data.length;
  }

  readable() {
    if (this.canRead) this.ensure();
    const ready = this.queued > 0 || this.ended || this.error !== undefined;
    return { bytes: this.queued, ended: this.ended && this.queued === 0, ready };
  }

  writable() {
    const s = this.ensure();
    const held = s.writableLength;
    const ready = this.error !== undefined || this.ended || !(s.writableNeedDrain || held >= HIGH_WATER);
    return { bytes: Math.max(0, HIGH_WATER - held), ready };
  }

  wait(signal: AbortSignal): Promise<void> {
    return this.waiters.wait(signal);
  }

  /** sock_shutdown: SHUT_WR ends our writing side once what is buffered is sent. */
  shutdownWrite(): void {
    this.sock?.end();
  }

  /**
   * Waits until what the guest wrote has reached the descriptor. Not end():
   * on a socket that would shut its writing side down for everyone sharing
   * it (a stdio socket, where the host still writes its own line after the
   * guest has ended).
   */
  flush(): Promise<void> {
    const s = this.sock;
    if (!s || s.destroyed || s.writableFinished || !s.writable || s.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      s.once('error', () => resolve());
      s.once('close', () => resolve());
      // Written after everything queued before it: its callback is the flush.
      s.write(Buffer.alloc(0), () => resolve());
    });
  }

  close(): void {
    if (this.sock) this.sock.destroy();
    else closeSync(this.fd);
    this.wake();
  }
}

/** What kind of thing a host descriptor is, without blocking on it. */
export function classify(fd: number): 'file' | 'tty' | 'chardev' | 'fifo' | 'socket' | 'dir' | 'closed' | 'other' {
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    return 'closed';
  }
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return isTty(fd) ? 'tty' : 'chardev';
  return 'other';
}

function isTty(fd: number): boolean {
  return sys().isatty(fd);
}

let ttyMod: typeof import('node:tty') | undefined;
let netMod: typeof import('node:net') | undefined;
function ttyModule(): typeof import('node:tty') {
  return (ttyMod ??= process.getBuiltinModule('node:tty'));
}
function netModule(): typeof import('node:net') {
  return (netMod ??= process.getBuiltinModule('node:net'));
}

/** A fresh open file description of host fd `fd` (see the file comment); undefined where /proc cannot reopen it (sockets). */
function reopen(fd: number, flags: number): number | undefined {
  try {
    return openSync(`/proc/self/fd/${fd}`, flags);
  } catch {
    return undefined;
  }
}

export type Direction = 'read' | 'write';

/**
 * The guest's own stream for one of the host's stdio descriptors. The host's
 * descriptor itself is never handed over: a guest fd_close closes only the
 * guest's copy.
 */
export function stdioStream(hostFd: number, dir: Direction, dup: (fd: number) => number): GuestStream {
  const kind = classify(hostFd);
  const rw = dir === 'read' ? fsc.O_RDONLY : fsc.O_WRONLY;
  switch (kind) {
    case 'closed':
      return new ClosedStream();
    case 'file':
      // The same open file description: a reopened one would have its own offset and overwrite what the host writes.
      return new SyncStream(dup(hostFd), FILETYPE.REGULAR_FILE);
    case 'chardev':
      return new SyncStream(reopen(hostFd, rw) ?? dup(hostFd), FILETYPE.CHARACTER_DEVICE);
    case 'tty': {
      const fd = reopen(hostFd, fsc.O_RDWR | fsc.O_NOCTTY) ?? dup(hostFd);
      return ttyStream(fd, dir);
    }
    case 'fifo': {
      // O_NONBLOCK at open: opening a FIFO's read end blocks until a writer exists.
      const own = reopen(hostFd, rw | fsc.O_NONBLOCK);
      return pipeStream(own ?? dup(hostFd), FILETYPE.UNKNOWN, dir === 'read', dir === 'write', own !== undefined);
    }
    case 'socket':
      return pipeStream(dup(hostFd), FILETYPE.SOCKET_STREAM, dir === 'read');
    default:
      return new SyncStream(reopen(hostFd, rw) ?? dup(hostFd), FILETYPE.UNKNOWN);
  }
}

export function ttyStream(fd: number, dir: Direction): GuestStream {
  const tty = ttyModule();
  return new EventStream(fd, FILETYPE.CHARACTER_DEVICE, dir === 'read', (f) =>
    (dir === 'read' ? new tty.ReadStream(f) : new tty.WriteStream(f)) as unknown as Duplex,
  );
}

/** `direct`: fd is non-blocking and not shared with anyone (see EventStream). */
export function pipeStream(fd: number, filetype: Filetype, canRead: boolean, canWrite = !canRead, direct = false): GuestStream {
  return new EventStream(fd, filetype, canRead, (f) => new (netModule().Socket)({ fd: f, readable: canRead, writable: canWrite }), direct);
}

