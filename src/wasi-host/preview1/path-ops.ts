// The path_* functions. Every path is resolved by the kernel relative to the
// guest's directory descriptor (resolve.ts); operations on a final component
// that must not be followed are *at() calls on its resolved parent.
import { isUtf8 } from 'node:buffer';
import { closeSync, fstatSync } from 'node:fs';
import { E, FDFLAGS, FILETYPE, LOOKUP_SYMLINK_FOLLOW, OFLAGS, R } from './abi.js';
import type { Ctx, Entry, Handle, WasiFn } from './context.js';
import { WasiError } from './errno.js';
import { need, timespecs } from './fd-ops.js';
import { openAt, parentOf, procFdPath, releaseParent, type DirRef, type Parent } from './resolve.js';
import { DIR_RIGHTS, FILE_RIGHTS, STREAM_RIGHTS } from './rights.js';
import { filetypeOfMode, lstatAt, statFd, writeFilestat } from './stat.js';
import { pipeStream, SyncStream, ttyStream } from './streams.js';
import { AT, O, sys } from './sys.js';

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

function withParent<T>(ref: DirRef, path: Buffer, fn: (p: Parent) => T): T {
  const p = parentOf(ref, path);
  try {
    return fn(p);
  } finally {
    releaseParent(p);
  }
}

function withOpen<T>(ref: DirRef, path: Buffer, flags: number, fn: (fd: number) => T): T {
  const fd = openAt(ref, path, flags, 0, true);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** How often a guest blocked in opening a FIFO for writing looks for a reader. */
const FIFO_RETRY_MS = 20;

export function pathOps(ctx: Ctx): { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> } {
  const { mem, fds } = ctx;

  /** A directory entry holding `rights` (a non-directory is EBADF, as in wasmtime). */
  const dir = (fd: number, rights: bigint): DirRef => {
    const e = fds.get(fd);
    if (e.handle.kind !== 'dir') throw new WasiError(E.BADF);
    need(e, rights);
    return e.handle.ref;
  };
  const path = (ptr: number, len: number) => guestPath(mem.bytes(ptr, len));

  /** The entry for a freshly opened host fd, by what it turned out to be. */
  const entryFor = (fd: number, parent: Entry, base: bigint, inheriting: bigint, read: boolean, write: boolean, fdflags: number): Entry => {
    const st = { filetype: filetypeOfMode(fstatSync(fd).mode) };
    let handle: Handle;
    let max: bigint;
    let filetype = st.filetype;
    if (st.filetype === FILETYPE.DIRECTORY) {
      handle = { kind: 'dir', fd, ref: { fd, mode: 'beneath' } };
      max = DIR_RIGHTS;
    } else if (st.filetype === FILETYPE.REGULAR_FILE || st.filetype === FILETYPE.BLOCK_DEVICE) {
      handle = { kind: 'file', fd };
      max = FILE_RIGHTS;
    } else if (st.filetype === FILETYPE.CHARACTER_DEVICE && !sys().isatty(fd)) {
      // /dev/null, /dev/zero, …: never block; drop the O_NONBLOCK used to open safely.
      const s = sys();
      s.setfl(fd, s.getfl(fd) & ~O.NONBLOCK);
      handle = { kind: 'stream', stream: new SyncStream(fd, FILETYPE.CHARACTER_DEVICE) };
      max = STREAM_RIGHTS;
    } else if (st.filetype === FILETYPE.CHARACTER_DEVICE) {
      handle = { kind: 'stream', stream: ttyStream(fd, write && !read ? 'write' : 'read') };
      max = STREAM_RIGHTS;
    } else {
      // A FIFO: libuv-driven like a pipe.
      handle = { kind: 'stream', stream: pipeStream(fd, FILETYPE.UNKNOWN, read, write, true) };
      max = STREAM_RIGHTS;
      filetype = FILETYPE.UNKNOWN;
    }
    let rightsBase = base & parent.rightsInheriting & max;
    if (!read) rightsBase &= ~R.FD_READ;
    if (!write) rightsBase &= ~R.FD_WRITE;
    return { handle, filetype, rightsBase, rightsInheriting: inheriting & parent.rightsInheriting, fdflags };
  };

  const sync = {
    path_create_directory(fd: number, ptr: number, len: number): number {
      const ref = dir(fd, R.PATH_CREATE_DIRECTORY);
      withParent(ref, path(ptr, len), (p) => {
        if (p.dots) throw new WasiError(E.EXIST);
        sys().mkdirat(p.fd, p.name, 0o777);
      });
      return E.SUCCESS;
    },
    path_filestat_get(fd: number, flags: number, ptr: number, len: number, buf: number): number {
      const ref = dir(fd, R.PATH_FILESTAT_GET);
      const p = path(ptr, len);
      // A trailing slash makes the kernel follow a final symlink even for lstat: resolve it ourselves.
      const st = flags & LOOKUP_SYMLINK_FOLLOW || trailingSlash(p)
        ? withOpen(ref, p, O.PATH, statFd)
        : withParent(ref, p, (pa) => (pa.dots ? statFd(pa.fd) : lstatAt(pa.fd, pa.name)));
      writeFilestat(mem, buf, st);
      return E.SUCCESS;
    },
    path_filestat_set_times(fd: number, flags: number, ptr: number, len: number, atim: bigint, mtim: bigint, fst: number): number {
      const ref = dir(fd, R.PATH_FILESTAT_SET_TIMES);
      const times = timespecs(atim, mtim, fst);
      const p = path(ptr, len);
      if (flags & LOOKUP_SYMLINK_FOLLOW || trailingSlash(p)) {
        withOpen(ref, p, O.PATH, (f) => sys().utimensat(AT_FDCWD, procFdPath(f), times, 0));
      } else {
        withParent(ref, p, (pa) => {
          if (pa.dots) sys().utimensat(AT_FDCWD, procFdPath(pa.fd), times, 0);
          else sys().utimensat(pa.fd, pa.name, times, AT.SYMLINK_NOFOLLOW);
        });
      }
      return E.SUCCESS;
    },
    path_link(oldFd: number, oldFlags: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number): number {
      const from = dir(oldFd, R.PATH_LINK_SOURCE);
      const to = dir(newFd, R.PATH_LINK_TARGET);
      const oldPath = path(oldPtr, oldLen);
      const newPath = path(newPtr, newLen);
      withParent(to, newPath, (np) => {
        if (np.dots) throw new WasiError(E.EXIST);
        if (oldFlags & LOOKUP_SYMLINK_FOLLOW) {
          withOpen(from, oldPath, O.PATH, (f) => sys().linkat(AT_FDCWD, procFdPath(f), np.fd, np.name, AT.SYMLINK_FOLLOW));
        } else {
          withParent(from, oldPath, (op) => {
            if (op.dots) throw new WasiError(E.PERM);
            sys().linkat(op.fd, op.name, np.fd, np.name, 0);
          });
        }
      });
      return E.SUCCESS;
    },
    path_readlink(fd: number, ptr: number, len: number, buf: number, bufLen: number, usedPtr: number): number {
      const ref = dir(fd, R.PATH_READLINK);
      const target = withParent(ref, path(ptr, len), (p) => {
        if (p.dots) throw new WasiError(E.INVAL);
        const out = Buffer.allocUnsafe(4096);
        return out.subarray(0, sys().readlinkat(p.fd, p.name, out));
      });
      // Too small a buffer truncates (never ENOBUFS), as readlink(2) and wasmtime do.
      const n = Math.min(target.length, bufLen >>> 0);
      mem.write(buf, target.subarray(0, n));
      mem.setU32(usedPtr, n);
      return E.SUCCESS;
    },
    path_remove_directory(fd: number, ptr: number, len: number): number {
      const ref = dir(fd, R.PATH_REMOVE_DIRECTORY);
      const p = path(ptr, len);
      withParent(ref, p, (pa) => {
        if (pa.dots) throw new WasiError(p[p.length - 1] === 0x2e && p[p.length - 2] === 0x2e ? E.NOTEMPTY : E.INVAL);
        sys().unlinkat(pa.fd, pa.name, AT.REMOVEDIR);
      });
      return E.SUCCESS;
    },
    path_rename(fd: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number): number {
      const from = dir(fd, R.PATH_RENAME_SOURCE);
      const to = dir(newFd, R.PATH_RENAME_TARGET);
      const oldPath = path(oldPtr, oldLen);
      const newPath = path(newPtr, newLen);
      withParent(from, oldPath, (op) =>
        withParent(to, newPath, (np) => {
          if (op.dots || np.dots) throw new WasiError(E.BUSY);
          sys().renameat(op.fd, op.name, np.fd, np.name);
        }),
      );
      return E.SUCCESS;
    },
    path_symlink(oldPtr: number, oldLen: number, fd: number, newPtr: number, newLen: number): number {
      const target = path(oldPtr, oldLen);
      const ref = dir(fd, R.PATH_SYMLINK);
      withParent(ref, path(newPtr, newLen), (p) => {
        if (p.dots) throw new WasiError(E.EXIST);
        // The target is only data: whatever it says, resolving it stays confined (resolve.ts).
        sys().symlinkat(Buffer.concat([target, Buffer.from([0])]), p.fd, p.name);
      });
      return E.SUCCESS;
    },
    path_unlink_file(fd: number, ptr: number, len: number): number {
      const ref = dir(fd, R.PATH_UNLINK_FILE);
      withParent(ref, path(ptr, len), (p) => {
        if (p.dots) throw new WasiError(E.ISDIR);
        sys().unlinkat(p.fd, p.name, 0);
      });
      return E.SUCCESS;
    },
  };

  const suspending = {
    path_open(fd: number, dirflags: number, ptr: number, len: number, oflags: number, base: bigint, inheriting: bigint, fdflags: number, fdPtr: number): number | Promise<number> {
      const parent = fds.get(fd);
      if (parent.handle.kind === 'file') return E.NOTDIR;
      if (parent.handle.kind !== 'dir') return E.BADF;
      if (oflags & ~0xf || fdflags & ~0x1f) return E.INVAL;
      let required = R.PATH_OPEN;
      if (oflags & OFLAGS.CREAT) required |= R.PATH_CREATE_FILE;
      if (oflags & OFLAGS.TRUNC) required |= R.PATH_FILESTAT_SET_SIZE;
      need(parent, required);
      const read = (base & R.FD_READ) !== 0n;
      const write = (base & R.FD_WRITE) !== 0n;
      if (write && !(parent.rightsInheriting & R.FD_WRITE)) return E.NOTCAPABLE;
      const p = path(ptr, len);
      // O_NONBLOCK: opening a FIFO must never block the host (the guest waits instead, below).
      let flags = O.NONBLOCK | O.NOCTTY | (write ? (read ? O.RDWR : O.WRONLY) : O.RDONLY);
      if (oflags & OFLAGS.CREAT) flags |= O.CREAT;
      if (oflags & OFLAGS.EXCL) flags |= O.EXCL;
      if (oflags & OFLAGS.TRUNC) flags |= O.TRUNC;
      if (oflags & OFLAGS.DIRECTORY) flags |= O.DIRECTORY;
      if (fdflags & FDFLAGS.APPEND) flags |= O.APPEND;
      if (fdflags & FDFLAGS.DSYNC) flags |= O.DSYNC;
      if (fdflags & (FDFLAGS.SYNC | FDFLAGS.RSYNC)) flags |= O.SYNC;
      const follow = (dirflags & LOOKUP_SYMLINK_FOLLOW) !== 0;
      const ref = parent.handle.ref;
      const attempt = (): number => {
        const hostFd = openAt(ref, p, flags, 0o666, follow);
        let entry: Entry;
        try {
          entry = entryFor(hostFd, parent, base, inheriting, read, write, fdflags);
        } catch (err) {
          closeSync(hostFd);
          throw err;
        }
        mem.setU32(fdPtr, fds.insert(entry));
        return E.SUCCESS;
      };
      try {
        return attempt();
      } catch (err) {
        // ENXIO: a FIFO opened for writing with no reader yet. A blocking open waits for one; so does the guest.
        if (!(err instanceof WasiError) || err.errno !== E.NXIO || fdflags & FDFLAGS.NONBLOCK || !write) throw err;
      }
      return (async () => {
        for (;;) {
          await ctx.sleep(FIFO_RETRY_MS);
          if (ctx.signal.aborted) return E.CANCELED;
          try {
            return attempt();
          } catch (err) {
            if (!(err instanceof WasiError) || err.errno !== E.NXIO) throw err;
          }
        }
      })();
    },
  };
  return { sync, suspending } as unknown as { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> };
}
