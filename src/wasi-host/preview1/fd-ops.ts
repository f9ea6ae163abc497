// The fd_* functions: operations on an open descriptor. Regular files are
// read and written synchronously through Node's fd calls (one readv/writev
// per call, straight into guest memory); streams may suspend the guest.
import { fdatasyncSync, fsyncSync, ftruncateSync, readvSync, writevSync } from 'node:fs';
import {
  ADVICE_MAX, DIRENT_SIZE, E, FDFLAGS, FDSTAT_SIZE, FILETYPE, FSTFLAGS, PRESTAT_SIZE, PREOPENTYPE_DIR, R, WHENCE,
} from './abi.js';
import type { Ctx, DirListingEntry, Entry, WasiFn } from './context.js';
import { direntBuffer, readDirents } from './dirents.js';
import { WasiError } from './errno.js';
import { totalLength } from './memory.js';
import { filetypeOfDtype, lstatAt, statFd, writeFilestat } from './stat.js';
import type { GuestStream } from './streams.js';
import { utimes, type TimeSpec } from './path-calls.js';
import { O, sys } from './sys.js';

/** Writes larger than this are split: the guest sees a short write and loops, host memory stays bounded. */
const MAX_STREAM_WRITE = 1 << 20;

export function fileFd(e: Entry): number {
  if (e.handle.kind === 'file') return e.handle.fd;
  throw new WasiError(E.BADF);
}

/** A descriptor that has a host fd for metadata calls (files and directories). */
export function hostFdOf(e: Entry): number {
  if (e.handle.kind === 'file' || e.handle.kind === 'dir') return e.handle.fd;
  throw new WasiError(E.BADF);
}

export function streamOf(e: Entry): GuestStream | undefined {
  return e.handle.kind === 'stream' ? e.handle.stream : undefined;
}

/** timespec[2] for utimensat from preview1 timestamps and fstflags (EINVAL when a time is both set and now). */
export function timespecs(atim: bigint, mtim: bigint, flags: number): Buffer {
  if ((flags & FSTFLAGS.ATIM && flags & FSTFLAGS.ATIM_NOW) || (flags & FSTFLAGS.MTIM && flags & FSTFLAGS.MTIM_NOW)) {
    throw new WasiError(E.INVAL);
  }
  if (flags & ~0xf) throw new WasiError(E.INVAL);
  const spec = (set: number, now: number, t: bigint): TimeSpec => (flags & now ? 'now' : flags & set ? t : 'omit');
  return utimes(spec(FSTFLAGS.ATIM, FSTFLAGS.ATIM_NOW, atim), spec(FSTFLAGS.MTIM, FSTFLAGS.MTIM_NOW, mtim));
}

function scatter(data: Uint8Array, iovs: Uint8Array[]): number {
  let off = 0;
  for (const iov of iovs) {
    if (off >= data.length) break;
    const n = Math.min(iov.length, data.length - off);
    iov.set(data.subarray(off, off + n));
    off += n;
  }
  return off;
}

function gather(iovs: Uint8Array[]): Uint8Array {
  const nonEmpty = iovs.filter((v) => v.length > 0);
  const data = nonEmpty.length === 1 ? nonEmpty[0]! : Buffer.concat(nonEmpty);
  return data.length > MAX_STREAM_WRITE ? data.subarray(0, MAX_STREAM_WRITE) : data;
}

/** A Linux directory listing via getdents64, "." and ".." first (as wasmtime), the rest in kernel order. */
export function listDirectory(fd: number): DirListingEntry[] {
  const self = statFd(fd);
  const out: DirListingEntry[] = [
    { name: Buffer.from('.'), ino: self.ino, type: FILETYPE.DIRECTORY },
    { name: Buffer.from('..'), ino: self.ino, type: FILETYPE.DIRECTORY },
  ];
  sys().lseek(fd, 0n, WHENCE.SET);
  const buf = direntBuffer();
  for (let batch = readDirents(fd, buf); batch; batch = readDirents(fd, buf)) {
    for (const { name, ino, dtype } of batch) {
      let type: number = filetypeOfDtype(dtype);
      if (dtype === 0) {
        try {
          type = lstatAt(fd, Buffer.concat([name, Buffer.from([0])])).filetype;
        } catch {
          type = FILETYPE.UNKNOWN;
        }
      }
      out.push({ name, ino, type });
    }
  }
  return out;
}

/** ENOTCAPABLE unless the entry holds every right in `rights`. */
export function need(e: Entry, rights: bigint): Entry {
  if ((e.rightsBase & rights) !== rights) throw new WasiError(E.NOTCAPABLE);
  return e;
}

export function fdOps(ctx: Ctx): { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> } {
  const { mem, fds } = ctx;
  /** A file or stream (a directory here is EBADF, as in wasmtime), holding `rights`. */
  const file = (fd: number, rights: bigint): Entry => {
    const e = fds.get(fd);
    if (e.handle.kind === 'dir' || e.handle.kind === 'listener') throw new WasiError(E.BADF);
    return need(e, rights);
  };

  /**
   * A stream call that may block: `attempt` returns undefined when it would.
   * With NONBLOCK that is EAGAIN; otherwise the guest suspends until the
   * stream's state changes, then tries again.
   */
  const blocking = (stream: GuestStream, entry: Entry, attempt: () => number | undefined): number | Promise<number> => {
    const now = attempt();
    if (now !== undefined) return now;
    if (entry.fdflags & FDFLAGS.NONBLOCK) return E.AGAIN;
    return (async () => {
      for (;;) {
        await stream.wait(ctx.signal);
        const r = attempt();
        if (r !== undefined) return r;
      }
    })();
  };

  const readStream = (stream: GuestStream, entry: Entry, iovsPtr: number, iovsLen: number, nreadPtr: number) =>
    blocking(stream, entry, () => {
      const iovs = mem.iovecs(iovsPtr, iovsLen);
      const got = stream.tryRead(totalLength(iovs));
      if (got === undefined) return undefined;
      mem.setU32(nreadPtr, got === null ? 0 : scatter(got, iovs));
      return E.SUCCESS;
    });

  const writeStream = (stream: GuestStream, entry: Entry, iovsPtr: number, iovsLen: number, nwrittenPtr: number) =>
    blocking(stream, entry, () => {
      const data = gather(mem.iovecs(iovsPtr, iovsLen));
      const n = data.length === 0 ? 0 : stream.tryWrite(data);
      if (n === undefined) return undefined;
      mem.setU32(nwrittenPtr, n);
      return E.SUCCESS;
    });

  const sync = {
    fd_advise(fd: number, offset: bigint, len: bigint, advice: number): number {
      const e = file(fd, R.FD_ADVISE);
      if (advice > ADVICE_MAX) return E.INVAL;
      sys().fadvise(fileFd(e), offset, len, advice);
      return E.SUCCESS;
    },
    fd_allocate(fd: number, offset: bigint, len: bigint): number {
      const e = file(fd, R.FD_ALLOCATE);
      sys().fallocate(fileFd(e), offset, len);
      return E.SUCCESS;
    },
    fd_close(fd: number): number {
      ctx.release(fds.remove(fd));
      return E.SUCCESS;
    },
    fd_datasync(fd: number): number {
      const e = file(fd, R.FD_DATASYNC);
      fdatasyncSync(fileFd(e));
      return E.SUCCESS;
    },
    fd_sync(fd: number): number {
      const e = fds.get(fd, R.FD_SYNC);
      if (e.handle.kind === 'dir') fsyncSync(e.handle.fd);
      else fsyncSync(fileFd(e));
      return E.SUCCESS;
    },
    fd_fdstat_get(fd: number, ptr: number): number {
      const e = fds.get(fd);
      mem.bytes(ptr, FDSTAT_SIZE).fill(0);
      mem.setU8(ptr, e.filetype);
      mem.setU16(ptr + 2, e.fdflags);
      mem.setU64(ptr + 8, e.rightsBase);
      mem.setU64(ptr + 16, e.rightsInheriting);
      return E.SUCCESS;
    },
    fd_fdstat_set_flags(fd: number, flags: number): number {
      const e = fds.get(fd, R.FD_FDSTAT_SET_FLAGS);
      if (flags & ~0x1f) return E.INVAL;
      // Linux cannot change the sync flags of an open file (fcntl ignores them); say so, as wasmtime does.
      if (flags & (FDFLAGS.DSYNC | FDFLAGS.RSYNC | FDFLAGS.SYNC)) return E.INVAL;
      if (e.handle.kind === 'file') {
        const s = sys();
        const cur = s.getfl(e.handle.fd);
        s.setfl(e.handle.fd, flags & FDFLAGS.APPEND ? cur | O.APPEND : cur & ~O.APPEND);
      } else if (e.handle.kind === 'dir') {
        if (flags & FDFLAGS.APPEND) return E.BADF;
      } else if (flags & FDFLAGS.APPEND) return E.INVAL;
      e.fdflags = flags;
      return E.SUCCESS;
    },
    fd_fdstat_set_rights(fd: number, base: bigint, inheriting: bigint): number {
      const e = fds.get(fd);
      // Rights only ever shrink.
      if ((base & ~e.rightsBase) !== 0n || (inheriting & ~e.rightsInheriting) !== 0n) return E.NOTCAPABLE;
      e.rightsBase = base;
      e.rightsInheriting = inheriting;
      return E.SUCCESS;
    },
    fd_filestat_get(fd: number, ptr: number): number {
      const e = fds.get(fd, R.FD_FILESTAT_GET);
      const h = e.handle;
      const hostFd = h.kind === 'stream' ? h.stream.fd : h.kind === 'listener' ? h.listener.fd : h.fd;
      if (hostFd < 0) return E.BADF;
      const st = statFd(hostFd);
      if (h.kind === 'stream' && st.filetype === FILETYPE.UNKNOWN) st.filetype = e.filetype;
      writeFilestat(mem, ptr, st);
      return E.SUCCESS;
    },
    fd_filestat_set_size(fd: number, size: bigint): number {
      const e = file(fd, R.FD_FILESTAT_SET_SIZE);
      ftruncateSync(fileFd(e), Number(size));
      return E.SUCCESS;
    },
    fd_filestat_set_times(fd: number, atim: bigint, mtim: bigint, flags: number): number {
      const e = fds.get(fd, R.FD_FILESTAT_SET_TIMES);
      const times = timespecs(atim, mtim, flags);
      sys().futimens(hostFdOf(e), times);
      return E.SUCCESS;
    },
    fd_pread(fd: number, iovsPtr: number, iovsLen: number, offset: bigint, nreadPtr: number): number {
      const e = file(fd, R.FD_READ | R.FD_SEEK);
      if (e.handle.kind === 'stream') return E.SPIPE;
      const iovs = mem.iovecs(iovsPtr, iovsLen);
      mem.setU32(nreadPtr, readvSync(fileFd(e), iovs, Number(offset)));
      return E.SUCCESS;
    },
    fd_pwrite(fd: number, iovsPtr: number, iovsLen: number, offset: bigint, nwrittenPtr: number): number {
      const e = file(fd, R.FD_WRITE | R.FD_SEEK);
      if (e.handle.kind === 'stream') return E.SPIPE;
      const iovs = mem.iovecs(iovsPtr, iovsLen);
      mem.setU32(nwrittenPtr, writevSync(fileFd(e), iovs, Number(offset)));
      return E.SUCCESS;
    },
    fd_prestat_get(fd: number, ptr: number): number {
      const e = fds.get(fd);
      if (e.handle.kind !== 'dir' || !e.handle.preopen) return E.BADF;
      mem.bytes(ptr, PRESTAT_SIZE).fill(0);
      mem.setU8(ptr, PREOPENTYPE_DIR);
      mem.setU32(ptr + 4, e.handle.preopen.length);
      return E.SUCCESS;
    },
    fd_prestat_dir_name(fd: number, ptr: number, len: number): number {
      const e = fds.get(fd);
      if (e.handle.kind !== 'dir' || !e.handle.preopen) return E.NOTDIR;
      if (e.handle.preopen.length > len) return E.NAMETOOLONG;
      mem.write(ptr, e.handle.preopen);
      return E.SUCCESS;
    },
    fd_readdir(fd: number, buf: number, bufLen: number, cookie: bigint, bufusedPtr: number): number {
      const e = fds.get(fd);
      if (e.handle.kind !== 'dir') return E.BADF;
      need(e, R.FD_READDIR);
      const h = e.handle;
      if (cookie === 0n || !h.listing) h.listing = listDirectory(h.fd);
      const listing = h.listing;
      let cap = bufLen >>> 0;
      let at = buf >>> 0;
      const header = Buffer.alloc(DIRENT_SIZE);
      for (let i = Number(cookie); i < listing.length && cap > 0; i++) {
        const d = listing[i]!;
        header.fill(0);
        header.writeBigUInt64LE(BigInt(i + 1), 0);
        header.writeBigUInt64LE(d.ino, 8);
        header.writeUInt32LE(d.name.length, 16);
        header[20] = d.type;
        // A truncated entry tells the guest to retry with a bigger buffer (bufused == buf_len).
        const h1 = header.subarray(0, Math.min(cap, DIRENT_SIZE));
        mem.write(at, h1);
        at += h1.length;
        cap -= h1.length;
        const n = d.name.subarray(0, Math.min(cap, d.name.length));
        mem.write(at, n);
        at += n.length;
        cap -= n.length;
      }
      mem.setU32(bufusedPtr, (bufLen >>> 0) - cap);
      return E.SUCCESS;
    },
    fd_renumber(from: number, to: number): number {
      const replaced = fds.renumber(from, to);
      if (replaced) ctx.release(replaced);
      return E.SUCCESS;
    },
    fd_seek(fd: number, offset: bigint, whence: number, newPtr: number): number {
      const e = file(fd, offset === 0n && whence === WHENCE.CUR ? R.FD_TELL : R.FD_SEEK);
      if (e.handle.kind === 'stream') return E.SPIPE;
      if (whence > WHENCE.END) return E.INVAL;
      mem.setU64(newPtr, sys().lseek(fileFd(e), offset, whence));
      return E.SUCCESS;
    },
    fd_tell(fd: number, ptr: number): number {
      const e = file(fd, R.FD_TELL);
      if (e.handle.kind === 'stream') return E.SPIPE;
      mem.setU64(ptr, sys().lseek(fileFd(e), 0n, WHENCE.CUR));
      return E.SUCCESS;
    },
  };

  const suspending = {
    fd_read(fd: number, iovsPtr: number, iovsLen: number, nreadPtr: number): number | Promise<number> {
      const e = file(fd, R.FD_READ);
      const stream = streamOf(e);
      if (stream) return readStream(stream, e, iovsPtr, iovsLen, nreadPtr);
      mem.setU32(nreadPtr, readvSync(fileFd(e), mem.iovecs(iovsPtr, iovsLen)));
      return E.SUCCESS;
    },
    fd_write(fd: number, iovsPtr: number, iovsLen: number, nwrittenPtr: number): number | Promise<number> {
      const e = file(fd, R.FD_WRITE);
      const stream = streamOf(e);
      if (stream) return writeStream(stream, e, iovsPtr, iovsLen, nwrittenPtr);
      mem.setU32(nwrittenPtr, writevSync(fileFd(e), mem.iovecs(iovsPtr, iovsLen)));
      return E.SUCCESS;
    },
  };
  return { sync, suspending } as unknown as { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> };
}

