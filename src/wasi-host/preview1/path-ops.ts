// The path_* functions: rights and guest memory here, the kernel calls in
// path-calls.ts. Every path is resolved by the kernel relative to the
// guest's directory descriptor (resolve.ts); operations on a final component
// that must not be followed are *at() calls on its resolved parent.
import { closeSync, fstatSync } from 'node:fs';
import { E, FDFLAGS, FILETYPE, LOOKUP_SYMLINK_FOLLOW, OFLAGS, R } from './abi.js';
import type { Ctx, Entry, Handle, WasiFn } from './context.js';
import { WasiError } from './errno.js';
import { need, timespecs } from './fd-ops.js';
import {
  createDirectoryAt, guestPath, linkAt, readlinkAt, removeDirectoryAt, renameAt, setTimesAt, statAt, symlinkAt, unlinkFileAt,
} from './path-calls.js';
import { openAt, type DirRef } from './resolve.js';
import { DIR_RIGHTS, FILE_RIGHTS, STREAM_RIGHTS } from './rights.js';
import { filetypeOfMode, writeFilestat } from './stat.js';
import { pipeStream, SyncStream, ttyStream } from './streams.js';
import { O, sys } from './sys.js';

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
      createDirectoryAt(dir(fd, R.PATH_CREATE_DIRECTORY), path(ptr, len));
      return E.SUCCESS;
    },
    path_filestat_get(fd: number, flags: number, ptr: number, len: number, buf: number): number {
      const ref = dir(fd, R.PATH_FILESTAT_GET);
      writeFilestat(mem, buf, statAt(ref, path(ptr, len), (flags & LOOKUP_SYMLINK_FOLLOW) !== 0));
      return E.SUCCESS;
    },
    path_filestat_set_times(fd: number, flags: number, ptr: number, len: number, atim: bigint, mtim: bigint, fst: number): number {
      const ref = dir(fd, R.PATH_FILESTAT_SET_TIMES);
      setTimesAt(ref, path(ptr, len), (flags & LOOKUP_SYMLINK_FOLLOW) !== 0, timespecs(atim, mtim, fst));
      return E.SUCCESS;
    },
    path_link(oldFd: number, oldFlags: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number): number {
      const from = dir(oldFd, R.PATH_LINK_SOURCE);
      const to = dir(newFd, R.PATH_LINK_TARGET);
      linkAt(from, path(oldPtr, oldLen), (oldFlags & LOOKUP_SYMLINK_FOLLOW) !== 0, to, path(newPtr, newLen));
      return E.SUCCESS;
    },
    path_readlink(fd: number, ptr: number, len: number, buf: number, bufLen: number, usedPtr: number): number {
      const target = readlinkAt(dir(fd, R.PATH_READLINK), path(ptr, len));
      // Too small a buffer truncates (never ENOBUFS), as readlink(2) and wasmtime do.
      const n = Math.min(target.length, bufLen >>> 0);
      mem.write(buf, target.subarray(0, n));
      mem.setU32(usedPtr, n);
      return E.SUCCESS;
    },
    path_remove_directory(fd: number, ptr: number, len: number): number {
      removeDirectoryAt(dir(fd, R.PATH_REMOVE_DIRECTORY), path(ptr, len));
      return E.SUCCESS;
    },
    path_rename(fd: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number): number {
      const from = dir(fd, R.PATH_RENAME_SOURCE);
      const to = dir(newFd, R.PATH_RENAME_TARGET);
      renameAt(from, path(oldPtr, oldLen), to, path(newPtr, newLen));
      return E.SUCCESS;
    },
    path_symlink(oldPtr: number, oldLen: number, fd: number, newPtr: number, newLen: number): number {
      const target = path(oldPtr, oldLen);
      symlinkAt(target, dir(fd, R.PATH_SYMLINK), path(newPtr, newLen));
      return E.SUCCESS;
    },
    path_unlink_file(fd: number, ptr: number, len: number): number {
      unlinkFileAt(dir(fd, R.PATH_UNLINK_FILE), path(ptr, len));
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
