// The kernel side of the operations on a path, shared by the preview1
// functions (path-ops.ts) and wasi:filesystem (../p2/): each resolves the path
// relative to a directory the host holds (resolve.ts) and acts on the result
// with an *at() call, or on the final component's parent when the final
// component must not be followed. Failures are thrown as WasiError; what
// a guest may do (rights, read-only preopens) is for the callers to decide.
import { isUtf8 } from 'node:buffer';
import { E } from './abi.js';
import { WasiError } from './errno.js';
import { openAt, parentOf, procFdPath, releaseParent, type DirRef, type Parent } from './resolve.js';
import { lstatAt, statFd, type Filestat } from './stat.js';
import { AT, O, sys, UTIME_NOW, UTIME_OMIT } from './sys.js';

const AT_FDCWD = -100;
const SLASH = 0x2f;

/** A guest path: UTF-8 (EILSEQ otherwise, as wasmtime) with no NUL (EINVAL: the kernel would cut it there). */
export function guestPath(bytes: Uint8Array): Buffer {
  if (bytes.includes(0)) throw new WasiError(E.INVAL);
  if (!isUtf8(bytes)) throw new WasiError(E.ILSEQ);
  // A view, not a copy: guest memory cannot change while the host serves the guest's call.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

function trailingSlash(p: Uint8Array): boolean {
  return p.length > 0 && p[p.length - 1] === SLASH;
}

function isDotDot(p: Uint8Array): boolean {
  return p.length >= 2 && p[p.length - 1] === 0x2e && p[p.length - 2] === 0x2e;
}

export function withParent<T>(ref: DirRef, path: Buffer, fn: (p: Parent) => T): T {
  const p = parentOf(ref, path);
  try {
    return fn(p);
  } finally {
    releaseParent(p);
  }
}

export function withOpen<T>(ref: DirRef, path: Buffer, flags: number, fn: (fd: number) => T): T {
  const fd = openAt(ref, path, flags, 0, true);
  try {
    return fn(fd);
  } finally {
    sys().close(fd);
  }
}

export function createDirectoryAt(ref: DirRef, path: Buffer): void {
  withParent(ref, path, (p) => {
    if (p.dots) throw new WasiError(E.EXIST);
    sys().mkdirat(p.fd, p.name, 0o777);
  });
}

export function statAt(ref: DirRef, path: Buffer, follow: boolean): Filestat {
  // A trailing slash makes the kernel follow a final symlink even for lstat: resolve it ourselves.
  if (follow || trailingSlash(path)) return withOpen(ref, path, O.PATH, statFd);
  return withParent(ref, path, (p) => (p.dots ? statFd(p.fd) : lstatAt(p.fd, p.name)));
}

/** A time for utimensat: nanoseconds since the epoch, the current time, or unchanged. */
export type TimeSpec = bigint | 'now' | 'omit';

const NS = 1_000_000_000n;
const I64_MAX = (1n << 63n) - 1n;

/** utimensat's and futimens's timespec[2]; EOVERFLOW beyond what a time_t holds. */
export function utimes(atime: TimeSpec, mtime: TimeSpec): Buffer {
  const b = Buffer.alloc(32);
  const put = (off: number, t: TimeSpec) => {
    if (t === 'now') b.writeBigInt64LE(BigInt(UTIME_NOW), off + 8);
    else if (t === 'omit') b.writeBigInt64LE(BigInt(UTIME_OMIT), off + 8);
    else {
      if (t < 0n || t / NS > I64_MAX) throw new WasiError(E.OVERFLOW);
      b.writeBigInt64LE(t / NS, off);
      b.writeBigInt64LE(t % NS, off + 8);
    }
  };
  put(0, atime);
  put(16, mtime);
  return b;
}

/** `times`: from utimes(). */
export function setTimesAt(ref: DirRef, path: Buffer, follow: boolean, times: Buffer): void {
  if (follow || trailingSlash(path)) {
    withOpen(ref, path, O.PATH, (f) => sys().utimensat(AT_FDCWD, procFdPath(f), times, 0));
    return;
  }
  withParent(ref, path, (p) => {
    if (p.dots) sys().utimensat(AT_FDCWD, procFdPath(p.fd), times, 0);
    else sys().utimensat(p.fd, p.name, times, AT.SYMLINK_NOFOLLOW);
  });
}

/** A hard link `newPath` to `oldPath` (to what a final symlink names, with `follow`). */
export function linkAt(from: DirRef, oldPath: Buffer, follow: boolean, to: DirRef, newPath: Buffer): void {
  withParent(to, newPath, (np) => {
    if (np.dots) throw new WasiError(E.EXIST);
    if (follow) {
      withOpen(from, oldPath, O.PATH, (f) => sys().linkat(AT_FDCWD, procFdPath(f), np.fd, np.name, AT.SYMLINK_FOLLOW));
      return;
    }
    withParent(from, oldPath, (op) => {
      if (op.dots) throw new WasiError(E.PERM);
      sys().linkat(op.fd, op.name, np.fd, np.name, 0);
    });
  });
}

/** The target of the symlink at `path`, as stored (never resolved). */
export function readlinkAt(ref: DirRef, path: Buffer): Buffer {
  return withParent(ref, path, (p) => {
    if (p.dots) throw new WasiError(E.INVAL);
    const out = Buffer.allocUnsafe(4096);
    return out.subarray(0, sys().readlinkat(p.fd, p.name, out));
  });
}

export function removeDirectoryAt(ref: DirRef, path: Buffer): void {
  withParent(ref, path, (p) => {
    if (p.dots) throw new WasiError(isDotDot(path) ? E.NOTEMPTY : E.INVAL);
    sys().unlinkat(p.fd, p.name, AT.REMOVEDIR);
  });
}

export function renameAt(from: DirRef, oldPath: Buffer, to: DirRef, newPath: Buffer): void {
  withParent(from, oldPath, (op) =>
    withParent(to, newPath, (np) => {
      if (op.dots || np.dots) throw new WasiError(E.BUSY);
      sys().renameat(op.fd, op.name, np.fd, np.name);
    }),
  );
}

/** `target` is only data: whatever it says, resolving it later stays confined (resolve.ts). */
export function symlinkAt(target: Buffer, ref: DirRef, path: Buffer): void {
  withParent(ref, path, (p) => {
    if (p.dots) throw new WasiError(E.EXIST);
    sys().symlinkat(Buffer.concat([target, Buffer.from([0])]), p.fd, p.name);
  });
}

export function unlinkFileAt(ref: DirRef, path: Buffer): void {
  withParent(ref, path, (p) => {
    if (p.dots) throw new WasiError(E.ISDIR);
    sys().unlinkat(p.fd, p.name, 0);
  });
}
