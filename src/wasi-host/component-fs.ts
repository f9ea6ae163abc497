// wasi:filesystem (0.2) for a component guest of a shared host, on the same
// kernel-resolved paths as Tugboat's preview1 host: every path a guest names
// is opened beneath a directory descriptor (openat2 RESOLVE_IN_ROOT for the
// root, RESOLVE_BENEATH otherwise, or the O_NOFOLLOW walk; resolve.ts), and
// names that must not be followed go to *at() calls on their resolved parent.
// preview2-shim's own filesystem joins strings into host paths and calls
// Node's path-based fs: fine inside a runc container of its own, not in a
// process shared with other guests or with the host.
//
// jco's glue takes resources from the import object it is given and checks
// them with instanceof, so these classes are the guest's Descriptor and
// DirectoryEntryStream; streams are preview2-shim's own stream classes
// (the glue checks those too), made over a descriptor here.
import { closeSync, fstatSync, readSync, writeSync } from 'node:fs';
import * as p2 from '@bytecodealliance/preview2-shim';
import { E, FILETYPE, type Filetype } from './preview1/abi.js';
import { errnoOf, WasiError } from './preview1/errno.js';
import { listDirectory } from './preview1/fd-ops.js';
import { openAt, parentOf, procFdPath, releaseParent, type DirRef, type Parent } from './preview1/resolve.js';
import { lstatAt, statFd, type Filestat } from './preview1/stat.js';
import { AT, O, sys, UTIME_NOW, UTIME_OMIT } from './preview1/sys.js';

type ErrorCode = string;

/** preview1 errno → wasi:filesystem error-code (the same kernel errors, preview2's names). */
const CODES: Partial<Record<number, ErrorCode>> = {
  [E.ACCES]: 'access', [E.AGAIN]: 'would-block', [E.ALREADY]: 'already', [E.BADF]: 'bad-descriptor', [E.BUSY]: 'busy',
  [E.DEADLK]: 'deadlock', [E.DQUOT]: 'quota', [E.EXIST]: 'exist', [E.FBIG]: 'file-too-large', [E.ILSEQ]: 'illegal-byte-sequence',
  [E.INPROGRESS]: 'in-progress', [E.INTR]: 'interrupted', [E.INVAL]: 'invalid', [E.IO]: 'io', [E.ISDIR]: 'is-directory',
  [E.LOOP]: 'loop', [E.MLINK]: 'too-many-links', [E.MSGSIZE]: 'message-size', [E.NAMETOOLONG]: 'name-too-long',
  [E.NODEV]: 'no-device', [E.NOENT]: 'no-entry', [E.NOLCK]: 'no-lock', [E.NOMEM]: 'insufficient-memory',
  [E.NOSPC]: 'insufficient-space', [E.NOTDIR]: 'not-directory', [E.NOTEMPTY]: 'not-empty', [E.NOTRECOVERABLE]: 'not-recoverable',
  [E.NOTSUP]: 'unsupported', [E.NOTTY]: 'no-tty', [E.NXIO]: 'no-such-device', [E.OVERFLOW]: 'overflow', [E.PERM]: 'not-permitted',
  [E.PIPE]: 'pipe', [E.ROFS]: 'read-only', [E.SPIPE]: 'invalid-seek', [E.TXTBSY]: 'text-file-busy', [E.XDEV]: 'cross-device',
  [E.NOTCAPABLE]: 'not-permitted',
};

/** What the glue lowers as the error case of a result: the error-code string. */
function codeOf(err: unknown): ErrorCode {
  if (typeof err === 'string') return err;
  return CODES[errnoOf(err)] ?? 'io';
}

/** Runs a filesystem call; any failure leaves as the guest's error-code. */
function fsCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw codeOf(err);
  }
}

const TYPES: Record<Filetype, string> = {
  [FILETYPE.UNKNOWN]: 'unknown',
  [FILETYPE.BLOCK_DEVICE]: 'block-device',
  [FILETYPE.CHARACTER_DEVICE]: 'character-device',
  [FILETYPE.DIRECTORY]: 'directory',
  [FILETYPE.REGULAR_FILE]: 'regular-file',
  [FILETYPE.SOCKET_DGRAM]: 'socket',
  [FILETYPE.SOCKET_STREAM]: 'socket',
  [FILETYPE.SYMBOLIC_LINK]: 'symbolic-link',
};

const NS = 1_000_000_000n;
const datetime = (ns: bigint) => ({ seconds: ns / NS, nanoseconds: Number(ns % NS) });

function descriptorStat(s: Filestat) {
  return {
    type: TYPES[s.filetype] ?? 'unknown',
    linkCount: s.nlink,
    size: s.size,
    dataAccessTimestamp: datetime(s.atim),
    dataModificationTimestamp: datetime(s.mtim),
    statusChangeTimestamp: datetime(s.ctim),
  };
}

interface DescriptorFlags {
  read?: boolean;
  write?: boolean;
  fileIntegritySync?: boolean;
  dataIntegritySync?: boolean;
  requestedWriteSync?: boolean;
  mutateDirectory?: boolean;
}
interface PathFlags {
  symlinkFollow?: boolean;
}
interface OpenFlags {
  create?: boolean;
  directory?: boolean;
  exclusive?: boolean;
  truncate?: boolean;
}
type NewTimestamp = { tag: 'no-change' } | { tag: 'now' } | { tag: 'timestamp'; val: { seconds: bigint; nanoseconds: number } };

/** A guest path: relative, UTF-8 without NUL. An absolute one is refused (the glue's preopen picked the directory already). */
function guestPath(path: string): Buffer {
  if (path.includes('\0')) throw 'invalid';
  if (path.startsWith('/')) throw 'not-permitted';
  if (path === '') throw 'no-entry';
  return Buffer.from(path);
}

function withParent<T>(ref: DirRef, path: Buffer, fn: (p: Parent) => T): T {
  const p = parentOf(ref, path);
  try {
    return fn(p);
  } finally {
    releaseParent(p);
  }
}

function timespec(b: Buffer, off: number, t: NewTimestamp): void {
  if (t.tag === 'now') b.writeBigInt64LE(BigInt(UTIME_NOW), off + 8);
  else if (t.tag === 'no-change') b.writeBigInt64LE(BigInt(UTIME_OMIT), off + 8);
  else {
    b.writeBigInt64LE(t.val.seconds, off);
    b.writeBigInt64LE(BigInt(t.val.nanoseconds), off + 8);
  }
}

function timespecs(atime: NewTimestamp, mtime: NewTimestamp): Buffer {
  const b = Buffer.alloc(32);
  timespec(b, 0, atime);
  timespec(b, 16, mtime);
  return b;
}

type InputStream = typeof p2.io.streams.InputStream.prototype;
type OutputStream = typeof p2.io.streams.OutputStream.prototype;

/** An input-stream reading `fd` from `offset` on (pread; the stream owns nothing: the descriptor stays open). */
export function fileInputStream(fd: number, offset: bigint | undefined): InputStream {
  let at = offset;
  const stream = Object.create(p2.io.streams.InputStream.prototype) as Record<string | symbol, unknown>;
  const read = (len: bigint) => {
    const buf = Buffer.allocUnsafe(Number(len < 1n << 20n ? len : 1n << 20n));
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, at === undefined ? null : Number(at));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return new Uint8Array(0);
      throw { tag: 'closed' };
    }
    if (n === 0 && buf.length > 0) throw { tag: 'closed' };
    if (at !== undefined) at += BigInt(n);
    return new Uint8Array(buf.subarray(0, n));
  };
  Object.assign(stream, {
    read,
    blockingRead: read,
    skip: (len: bigint) => BigInt(read(len).length),
    blockingSkip: (len: bigint) => BigInt(read(len).length),
    subscribe: () => p2.clocks.monotonicClock.subscribeDuration(0n),
    [Symbol.dispose]() {},
  });
  return stream as unknown as InputStream;
}

/** An output-stream writing `fd` at `offset` on (pwrite), or appending when offset is undefined and the file is O_APPEND. */
export function fileOutputStream(fd: number, offset: bigint | undefined): OutputStream {
  let at = offset;
  const stream = Object.create(p2.io.streams.OutputStream.prototype) as Record<string | symbol, unknown>;
  const write = (data: Uint8Array) => {
    let off = 0;
    while (off < data.length) {
      try {
        off += writeSync(fd, data, off, data.length - off, at === undefined ? null : Number(at) + off);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        throw { tag: 'closed' };
      }
    }
    if (at !== undefined) at += BigInt(data.length);
  };
  const zeroes = (len: bigint) => write(new Uint8Array(Number(len)));
  Object.assign(stream, {
    checkWrite: () => 1n << 20n,
    write,
    blockingWriteAndFlush: write,
    flush() {},
    blockingFlush() {},
    writeZeroes: zeroes,
    blockingWriteZeroesAndFlush: zeroes,
    subscribe: () => p2.clocks.monotonicClock.subscribeDuration(0n),
    [Symbol.dispose]() {},
  });
  return stream as unknown as OutputStream;
}

const OWN = Symbol('tugboat.fs');

interface State {
  fd: number;
  /** Set for directories: how paths beneath it are resolved. */
  ref: DirRef | undefined;
  flags: DescriptorFlags;
  /** Nothing beneath it may change (a read-only preopen and what was opened through it). */
  readonly: boolean;
  /** Closed with the descriptor (false for a preopen the filesystem owns). */
  owned: boolean;
}

function stateOf(d: unknown): State {
  const s = (d as { [OWN]?: State })[OWN];
  if (!s) throw 'bad-descriptor';
  return s;
}

export class Descriptor {
  private readonly [OWN]: State;

  /** Made by the filesystem only (the glue makes handles with Object.create and checks instanceof). */
  constructor(state: State) {
    this[OWN] = state;
  }

  private get s(): State {
    return stateOf(this);
  }

  private dir(): DirRef {
    const ref = this.s.ref;
    if (!ref) throw 'not-directory';
    return ref;
  }

  private mutable(): void {
    if (this.s.readonly) throw 'read-only';
  }

  private file(): number {
    if (this.s.ref) throw 'is-directory';
    return this.s.fd;
  }

  readViaStream(offset: bigint): InputStream {
    if (!this.s.flags.read) throw 'bad-descriptor';
    return fileInputStream(this.file(), offset);
  }

  writeViaStream(offset: bigint): OutputStream {
    if (!this.s.flags.write) throw 'bad-descriptor';
    return fileOutputStream(this.file(), offset);
  }

  appendViaStream(): OutputStream {
    if (!this.s.flags.write) throw 'bad-descriptor';
    const fd = this.file();
    return fileOutputStream(fd, fsCall(() => BigInt(fstatSync(fd).size)));
  }

  advise(offset: bigint, length: bigint, advice: string): void {
    const adv = ['normal', 'sequential', 'random', 'will-need', 'dont-need', 'no-reuse'].indexOf(advice);
    fsCall(() => sys().fadvise(this.file(), offset, length, adv < 0 ? 0 : adv));
  }

  syncData(): void {
    this.sync();
  }

  sync(): void {
    // fsync(2) through a plain write of nothing would not do: Node has fsyncSync on a descriptor.
    fsCall(() => process.getBuiltinModule('node:fs').fsyncSync(this.s.fd));
  }

  getFlags(): DescriptorFlags {
    return { ...this.s.flags };
  }

  getType(): string {
    return fsCall(() => TYPES[statFd(this.s.fd).filetype] ?? 'unknown');
  }

  setSize(size: bigint): void {
    if (!this.s.flags.write) throw 'bad-descriptor';
    const fd = this.file();
    fsCall(() => process.getBuiltinModule('node:fs').ftruncateSync(fd, Number(size)));
  }

  setTimes(atime: NewTimestamp, mtime: NewTimestamp): void {
    this.mutable();
    fsCall(() => sys().futimens(this.s.fd, timespecs(atime, mtime)));
  }

  read(length: bigint, offset: bigint): [Uint8Array, boolean] {
    if (!this.s.flags.read) throw 'bad-descriptor';
    const fd = this.file();
    return fsCall(() => {
      const buf = Buffer.allocUnsafe(Number(length < 1n << 24n ? length : 1n << 24n));
      const n = readSync(fd, buf, 0, buf.length, Number(offset));
      return [new Uint8Array(buf.subarray(0, n)), n < buf.length];
    });
  }

  write(buffer: Uint8Array, offset: bigint): bigint {
    if (!this.s.flags.write) throw 'bad-descriptor';
    const fd = this.file();
    return fsCall(() => BigInt(writeSync(fd, buffer, 0, buffer.length, Number(offset))));
  }

  readDirectory(): DirectoryEntryStream {
    this.dir();
    const entries = fsCall(() => listDirectory(this.s.fd)).filter((e) => !(e.name.equals(Buffer.from('.')) || e.name.equals(Buffer.from('..'))));
    return new DirectoryEntryStream(entries.map((e) => ({ type: TYPES[e.type as Filetype] ?? 'unknown', name: e.name.toString('utf8') })));
  }

  createDirectoryAt(path: string): void {
    this.mutable();
    const ref = this.dir();
    fsCall(() =>
      withParent(ref, guestPath(path), (p) => {
        if (p.dots) throw new WasiError(E.EXIST);
        sys().mkdirat(p.fd, p.name, 0o777);
      }),
    );
  }

  stat() {
    return descriptorStat(fsCall(() => statFd(this.s.fd)));
  }

  statAt(flags: PathFlags, path: string) {
    const ref = this.dir();
    const p = guestPath(path);
    return descriptorStat(
      fsCall(() => {
        if (flags.symlinkFollow || path.endsWith('/')) {
          const fd = openAt(ref, p, O.PATH, 0, true);
          try {
            return statFd(fd);
          } finally {
            closeSync(fd);
          }
        }
        return withParent(ref, p, (pa) => (pa.dots ? statFd(pa.fd) : lstatAt(pa.fd, pa.name)));
      }),
    );
  }

  setTimesAt(flags: PathFlags, path: string, atime: NewTimestamp, mtime: NewTimestamp): void {
    this.mutable();
    const ref = this.dir();
    const p = guestPath(path);
    const times = timespecs(atime, mtime);
    fsCall(() => {
      if (flags.symlinkFollow) {
        const fd = openAt(ref, p, O.PATH, 0, true);
        try {
          sys().utimensat(AT_FDCWD, procFdPath(fd), times, 0);
        } finally {
          closeSync(fd);
        }
        return;
      }
      withParent(ref, p, (pa) => sys().utimensat(pa.fd, pa.name, times, AT.SYMLINK_NOFOLLOW));
    });
  }

  linkAt(oldFlags: PathFlags, oldPath: string, newDescriptor: Descriptor, newPath: string): void {
    newDescriptor.mutable();
    const from = this.dir();
    const to = newDescriptor.dir();
    fsCall(() =>
      withParent(from, guestPath(oldPath), (a) =>
        withParent(to, guestPath(newPath), (b) => {
          if (a.dots || b.dots) throw new WasiError(b.dots ? E.EXIST : E.PERM);
          sys().linkat(a.fd, a.name, b.fd, b.name, oldFlags.symlinkFollow ? AT.SYMLINK_FOLLOW : 0);
        }),
      ),
    );
  }

  openAt(pathFlags: PathFlags, path: string, open: OpenFlags, flags: DescriptorFlags): Descriptor {
    const ref = this.dir();
    const p = guestPath(path);
    const writes = flags.write === true || open.create === true || open.truncate === true;
    if (writes || flags.mutateDirectory) this.mutable();
    if (flags.requestedWriteSync || flags.fileIntegritySync || flags.dataIntegritySync) throw 'unsupported';
    let oflags = flags.read && flags.write ? O.RDWR : flags.write ? O.WRONLY : O.RDONLY;
    if (open.create) oflags |= O.CREAT;
    if (open.exclusive) oflags |= O.EXCL;
    if (open.truncate) oflags |= O.TRUNC;
    if (open.directory) oflags |= O.DIRECTORY;
    // Never block the host on a FIFO without a peer.
    oflags |= O.NONBLOCK;
    const fd = fsCall(() => openAt(ref, p, oflags, 0o666, pathFlags.symlinkFollow === true));
    let isDir: boolean;
    try {
      isDir = fstatSync(fd).isDirectory();
      if (isDir && flags.write) throw 'is-directory';
      const s = sys();
      s.setfl(fd, s.getfl(fd) & ~O.NONBLOCK);
    } catch (err) {
      closeSync(fd);
      throw codeOf(err);
    }
    return new Descriptor({ fd, ref: isDir ? { fd, mode: 'beneath' } : undefined, flags: { ...flags }, readonly: this.s.readonly, owned: true });
  }

  readlinkAt(path: string): string {
    const ref = this.dir();
    return fsCall(() =>
      withParent(ref, guestPath(path), (p) => {
        const buf = Buffer.allocUnsafe(4096);
        const n = sys().readlinkat(p.fd, p.name, buf);
        return buf.subarray(0, n).toString('utf8');
      }),
    );
  }

  removeDirectoryAt(path: string): void {
    this.mutable();
    const ref = this.dir();
    fsCall(() =>
      withParent(ref, guestPath(path), (p) => {
        if (p.dots) throw new WasiError(E.INVAL);
        sys().unlinkat(p.fd, p.name, AT.REMOVEDIR);
      }),
    );
  }

  renameAt(oldPath: string, newDescriptor: Descriptor, newPath: string): void {
    this.mutable();
    newDescriptor.mutable();
    const from = this.dir();
    const to = newDescriptor.dir();
    fsCall(() =>
      withParent(from, guestPath(oldPath), (a) =>
        withParent(to, guestPath(newPath), (b) => {
          if (a.dots || b.dots) throw new WasiError(E.BUSY);
          sys().renameat(a.fd, a.name, b.fd, b.name);
        }),
      ),
    );
  }

  symlinkAt(target: string, path: string): void {
    this.mutable();
    const ref = this.dir();
    if (target.includes('\0')) throw 'invalid';
    // As wasmtime: a link may not point at an absolute name (it would mean something else outside the guest).
    if (target.startsWith('/')) throw 'not-permitted';
    fsCall(() =>
      withParent(ref, guestPath(path), (p) => {
        if (p.dots) throw new WasiError(E.EXIST);
        sys().symlinkat(Buffer.from(`${target}\0`), p.fd, p.name);
      }),
    );
  }

  unlinkFileAt(path: string): void {
    this.mutable();
    const ref = this.dir();
    fsCall(() =>
      withParent(ref, guestPath(path), (p) => {
        if (p.dots || path.endsWith('/')) throw new WasiError(E.ISDIR);
        sys().unlinkat(p.fd, p.name, 0);
      }),
    );
  }

  isSameObject(other: Descriptor): boolean {
    const a = fsCall(() => statFd(this.s.fd));
    const b = fsCall(() => statFd(stateOf(other).fd));
    return a.dev === b.dev && a.ino === b.ino;
  }

  metadataHash() {
    const s = fsCall(() => statFd(this.s.fd));
    return { upper: s.mtim, lower: s.ino };
  }

  metadataHashAt(flags: PathFlags, path: string) {
    const s = this.statAt(flags, path);
    const ns = s.dataModificationTimestamp.seconds * NS + BigInt(s.dataModificationTimestamp.nanoseconds);
    return { upper: ns, lower: s.size };
  }

  [Symbol.dispose](): void {
    const s = (this as unknown as { [OWN]?: State })[OWN];
    if (!s?.owned || s.fd < 0) return;
    try {
      closeSync(s.fd);
    } catch {
      // closed
    }
    s.fd = -1;
  }
}

const AT_FDCWD = -100;

export class DirectoryEntryStream {
  constructor(private readonly entries: { type: string; name: string }[]) {}

  readDirectoryEntry(): { type: string; name: string } | undefined {
    return this.entries.shift();
  }

  [Symbol.dispose](): void {}
}

/** A preopened directory of a guest: a descriptor the host holds, how names beneath it resolve, and its name in the guest. */
export interface FsPreopen {
  guest: string;
  fd: number;
  ref: DirRef;
  readonly: boolean;
}

/** The guest's wasi:filesystem imports over its preopens (which the filesystem does not close). */
export function confinedFilesystem(preopens: readonly FsPreopen[]) {
  const dirs = preopens.map((p) => [new Descriptor({ fd: p.fd, ref: p.ref, flags: { read: true, write: !p.readonly, mutateDirectory: !p.readonly }, readonly: p.readonly, owned: false }), p.guest] as const);
  return {
    types: {
      Descriptor,
      DirectoryEntryStream,
      filesystemErrorCode(err: unknown): ErrorCode | undefined {
        const payload = (err as { payload?: unknown })?.payload ?? err;
        try {
          return codeOf(payload);
        } catch {
          return undefined;
        }
      },
    },
    preopens: {
      getDirectories: () => [...dirs],
    },
  };
}

// TUGBOAT_WASI_TRACE=1: every filesystem call and its result on stderr (debugging the host only).
if (process.env.TUGBOAT_WASI_TRACE === '1') {
  for (const cls of [Descriptor, DirectoryEntryStream]) {
    const proto = cls.prototype as unknown as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const fn = Object.getOwnPropertyDescriptor(proto, name)?.value as unknown;
      if (name === 'constructor' || typeof fn !== 'function') continue;
      proto[name] = function (this: unknown, ...args: unknown[]) {
        const show = (r: unknown) => writeSync(2, `wasi:filesystem ${name}(${args.map((a) => JSON.stringify(a, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).join(', ')}) = ${typeof r === 'object' ? Object.prototype.toString.call(r) : JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}\n`);
        try {
          const r = (fn as (...a: unknown[]) => unknown).apply(this, args);
          show(r);
          return r;
        } catch (err) {
          show(`throws ${String(err)}`);
          throw err;
        }
      };
    }
  }
}
