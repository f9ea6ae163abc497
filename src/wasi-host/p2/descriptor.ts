// wasi:filesystem descriptor: a file or a directory the guest holds. Every
// path is resolved by the kernel beneath the directory's descriptor exactly
// as for preview1 (../preview1/resolve.ts, path-calls.ts): openat2 with
// RESOLVE_IN_ROOT for the container root and the working directory, with
// RESOLVE_BENEATH for everything else, or the O_NOFOLLOW walk where openat2
// is refused. No guest path reaches Node's path-based fs APIs.
//
// Read-only preopens: every descriptor reached through one refuses what
// would change the file system with error-code::read-only (the WIT's
// mutate-directory rule), before the kernel is asked.
import { isUtf8 } from 'node:buffer';
import { fdatasyncSync, fsyncSync, ftruncateSync, readSync, writeSync } from 'node:fs';
import { E } from '../preview1/abi.js';
import { WasiError } from '../preview1/errno.js';
import * as calls from '../preview1/path-calls.js';
import { openAt, type DirRef } from '../preview1/resolve.js';
import { statFd } from '../preview1/stat.js';
import { O, sys } from '../preview1/sys.js';
import { openDirectoryStream, type DirectoryEntryStream } from './directory-stream.js';
import { fsCall } from './errors.js';
import { appendStream, fileInputStream, fileOutputStream } from './file-streams.js';
import type { HostFds, OwnedFd } from './host-fds.js';
import { MAX_IO, type InputStream, type OutputStream } from './io.js';
import { descriptorStat, metadataHash, timeSpec, typeOfMode } from './stat.js';
import type {
  Advice, DescriptorFlags, DescriptorStat, DescriptorType, MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
} from './types.js';

const ADVICE: Record<Advice, number> = { normal: 0, random: 1, sequential: 2, 'will-need': 3, 'dont-need': 4, 'no-reuse': 5 };

/** How often an open of a FIFO for writing looks for a reader (open(2) would wait for one). */
const FIFO_RETRY_MS = 20;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** What a descriptor is: set once, when the host opens it. */
export interface DescriptorInit {
  fd: OwnedFd;
  /** For a directory: what paths under it resolve against. */
  dir?: DirRef;
  type: DescriptorType;
  flags: DescriptorFlags;
  /** Reached through a read-only preopen: nothing below may be changed. */
  readonly: boolean;
  /** The host descriptors this guest holds (streams and listings are added to them). */
  fds: HostFds;
  /** A preopen's descriptor lives as long as the guest's filesystem, whatever the guest drops. */
  preopen?: boolean;
}

/** A guest path as the kernel takes it: UTF-8 bytes, no NUL (invalid). */
function hostPath(path: string): Buffer {
  return calls.guestPath(Buffer.from(path, 'utf8'));
}

function follows(flags: PathFlags): boolean {
  return flags.symlinkFollow === true;
}

const token = Symbol('Descriptor');

export class Descriptor {
  readonly #init: DescriptorInit;

  /** Made only by the host (jco's glue never constructs one). */
  constructor(t: symbol, init: DescriptorInit) {
    if (t !== token) throw new TypeError('Illegal constructor');
    this.#init = init;
  }

  get #fd(): number {
    return this.#init.fd.fd;
  }

  /** The descriptor of a file: a directory is bad-descriptor, as in wasmtime. */
  #file(): number {
    if (this.#init.dir) throw 'bad-descriptor';
    return this.#fd;
  }

  #dir(): DirRef {
    if (!this.#init.dir) throw 'not-directory';
    return this.#init.dir;
  }

  #mutable(): void {
    if (this.#init.readonly) throw 'read-only';
  }

  /** The other side of a two-directory call (link-at, rename-at): a directory that may be changed. */
  static #target(d: Descriptor): DirRef {
    d.#mutable();
    return d.#dir();
  }

  #seekable(): boolean {
    return this.#init.type === 'regular-file' || this.#init.type === 'block-device';
  }

  readViaStream(offset: bigint): InputStream {
    return fsCall(() => {
      if (this.#init.dir) throw 'is-directory';
      return fileInputStream(this.#init.fds, this.#fd, this.#seekable() ? offset : null);
    });
  }

  writeViaStream(offset: bigint): OutputStream {
    return fsCall(() => {
      const fd = this.#file();
      this.#mutable();
      return fileOutputStream(this.#init.fds, fd, this.#seekable() ? offset : null);
    });
  }

  appendViaStream(): OutputStream {
    return fsCall(() => {
      const fd = this.#file();
      this.#mutable();
      // The reopened description must not give more than this one has.
      if (!this.#init.flags.write) throw 'bad-descriptor';
      // A FIFO or a device has no end to append at (and reopening a FIFO could wait for a reader).
      return this.#seekable() ? appendStream(this.#init.fds, fd) : fileOutputStream(this.#init.fds, fd, null);
    });
  }

  advise(offset: bigint, length: bigint, advice: Advice): void {
    fsCall(() => sys().fadvise(this.#file(), offset, length, ADVICE[advice]));
  }

  syncData(): void {
    fsCall(() => fdatasyncSync(this.#fd));
  }

  getFlags(): DescriptorFlags {
    if (this.#init.dir) return { read: true, mutateDirectory: !this.#init.readonly };
    return { ...this.#init.flags };
  }

  getType(): DescriptorType {
    return this.#init.type;
  }

  setSize(size: bigint): void {
    fsCall(() => {
      const fd = this.#file();
      this.#mutable();
      if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw 'file-too-large';
      ftruncateSync(fd, Number(size));
    });
  }

  setTimes(atime: NewTimestamp, mtime: NewTimestamp): void {
    fsCall(() => {
      this.#mutable();
      sys().futimens(this.#fd, calls.utimes(timeSpec(atime), timeSpec(mtime)));
    });
  }

  read(length: bigint, offset: bigint): [Uint8Array, boolean] {
    return fsCall(() => {
      const fd = this.#file();
      const buf = Buffer.allocUnsafe(length > BigInt(MAX_IO) ? MAX_IO : Number(length));
      const n = readSync(fd, buf, 0, buf.length, offset);
      return [buf.subarray(0, n), n === 0 && buf.length > 0];
    });
  }

  write(buffer: Uint8Array, offset: bigint): bigint {
    return fsCall(() => {
      const fd = this.#file();
      this.#mutable();
      if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw 'file-too-large';
      return BigInt(writeSync(fd, buffer, 0, buffer.length, Number(offset)));
    });
  }

  readDirectory(): DirectoryEntryStream {
    return fsCall(() => {
      this.#dir();
      return openDirectoryStream(this.#init.fds, this.#fd);
    });
  }

  sync(): void {
    fsCall(() => fsyncSync(this.#fd));
  }

  createDirectoryAt(path: string): void {
    fsCall(() => {
      const dir = this.#dir();
      this.#mutable();
      calls.createDirectoryAt(dir, hostPath(path));
    });
  }

  stat(): DescriptorStat {
    return fsCall(() => descriptorStat(statFd(this.#fd)));
  }

  statAt(pathFlags: PathFlags, path: string): DescriptorStat {
    return fsCall(() => descriptorStat(calls.statAt(this.#dir(), hostPath(path), follows(pathFlags))));
  }

  setTimesAt(pathFlags: PathFlags, path: string, atime: NewTimestamp, mtime: NewTimestamp): void {
    fsCall(() => {
      const dir = this.#dir();
      this.#mutable();
      calls.setTimesAt(dir, hostPath(path), follows(pathFlags), calls.utimes(timeSpec(atime), timeSpec(mtime)));
    });
  }

  linkAt(oldPathFlags: PathFlags, oldPath: string, newDescriptor: Descriptor, newPath: string): void {
    fsCall(() => {
      const from = this.#dir();
      this.#mutable();
      const to = Descriptor.#target(newDescriptor);
      calls.linkAt(from, hostPath(oldPath), follows(oldPathFlags), to, hostPath(newPath));
    });
  }

  openAt(pathFlags: PathFlags, path: string, openFlags: OpenFlags, flags: DescriptorFlags): Descriptor {
    return fsCall(() => {
      const dir = this.#dir();
      if (openFlags.directory && (openFlags.create || openFlags.exclusive || openFlags.truncate)) throw 'invalid';
      const changes = flags.write || flags.mutateDirectory || openFlags.create || openFlags.truncate;
      if (changes) this.#mutable();
      const read = flags.read === true || !flags.write;
      // O_NONBLOCK: opening a FIFO must never block the host; dropped below for what may block.
      let oflags = O.NONBLOCK | O.NOCTTY | (flags.write ? (read ? O.RDWR : O.WRONLY) : O.RDONLY);
      if (openFlags.create) oflags |= O.CREAT | (openFlags.exclusive ? O.EXCL : 0);
      if (openFlags.truncate) oflags |= O.TRUNC;
      if (openFlags.directory) oflags |= O.DIRECTORY;
      if (flags.fileIntegritySync || flags.requestedWriteSync) oflags |= O.SYNC;
      if (flags.dataIntegritySync) oflags |= O.DSYNC;
      const fd = openWaiting(dir, hostPath(path), oflags, follows(pathFlags));
      return this.#adopt(fd, { read, write: flags.write === true, ...syncFlags(flags) });
    });
  }

  /** A descriptor for `fd`, just opened through this directory. */
  #adopt(fd: number, flags: DescriptorFlags): Descriptor {
    const fds = this.#init.fds;
    const owned = fds.add(fd);
    try {
      const type = typeOfMode(statFd(fd).mode);
      if (type === 'directory') {
        return new Descriptor(token, { fd: owned, dir: { fd, mode: 'beneath' }, type, flags: { read: true }, readonly: this.#init.readonly, fds });
      }
      if (type !== 'regular-file') {
        // FIFOs and devices block like the real thing, on this guest's own thread.
        const s = sys();
        s.setfl(fd, s.getfl(fd) & ~O.NONBLOCK);
      }
      return new Descriptor(token, { fd: owned, type, flags, readonly: this.#init.readonly, fds });
    } catch (err) {
      owned.close();
      throw err;
    }
  }

  readlinkAt(path: string): string {
    return fsCall(() => {
      const target = calls.readlinkAt(this.#dir(), hostPath(path));
      if (!isUtf8(target)) throw 'illegal-byte-sequence';
      return target.toString('utf8');
    });
  }

  removeDirectoryAt(path: string): void {
    fsCall(() => {
      const dir = this.#dir();
      this.#mutable();
      calls.removeDirectoryAt(dir, hostPath(path));
    });
  }

  renameAt(oldPath: string, newDescriptor: Descriptor, newPath: string): void {
    fsCall(() => {
      const from = this.#dir();
      this.#mutable();
      calls.renameAt(from, hostPath(oldPath), Descriptor.#target(newDescriptor), hostPath(newPath));
    });
  }

  symlinkAt(oldPath: string, newPath: string): void {
    fsCall(() => {
      const dir = this.#dir();
      this.#mutable();
      calls.symlinkAt(hostPath(oldPath), dir, hostPath(newPath));
    });
  }

  unlinkFileAt(path: string): void {
    fsCall(() => {
      const dir = this.#dir();
      this.#mutable();
      calls.unlinkFileAt(dir, hostPath(path));
    });
  }

  isSameObject(other: Descriptor): boolean {
    try {
      const a = statFd(this.#fd);
      const b = statFd(other.#fd);
      return a.dev === b.dev && a.ino === b.ino;
    } catch {
      return false;
    }
  }

  metadataHash(): MetadataHashValue {
    return fsCall(() => metadataHash(statFd(this.#fd)));
  }

  metadataHashAt(pathFlags: PathFlags, path: string): MetadataHashValue {
    return fsCall(() => metadataHash(calls.statAt(this.#dir(), hostPath(path), follows(pathFlags))));
  }

  [Symbol.dispose](): void {
    if (!this.#init.preopen) this.#init.fd.close();
  }
}

function syncFlags(flags: DescriptorFlags): DescriptorFlags {
  const out: DescriptorFlags = {};
  if (flags.fileIntegritySync) out.fileIntegritySync = true;
  if (flags.dataIntegritySync) out.dataIntegritySync = true;
  if (flags.requestedWriteSync) out.requestedWriteSync = true;
  return out;
}

/**
 * openAt, waiting for a reader like open(2) when a FIFO is opened for
 * writing before anyone reads it (the non-blocking open says ENXIO). The
 * wait blocks this guest's thread only, as every component call does.
 */
function openWaiting(dir: DirRef, path: Buffer, oflags: number, follow: boolean): number {
  for (;;) {
    try {
      return openAt(dir, path, oflags, 0o666, follow);
    } catch (err) {
      if (!(err instanceof WasiError) || err.errno !== E.NXIO || (oflags & O.WRONLY) === 0) throw err;
    }
    Atomics.wait(sleeper, 0, 0, FIFO_RETRY_MS);
  }
}

/** A preopen's descriptor: a directory for the guest's whole life. */
export function preopenDescriptor(fds: HostFds, fd: OwnedFd, dir: DirRef, readonly: boolean): Descriptor {
  return new Descriptor(token, { fd, dir, type: 'directory', flags: { read: true }, readonly, fds, preopen: true });
}
