// The system calls Node has no fd-relative form of, through koffi's native
// addon (src/koffi-native.ts). Declared on first use, once per thread. Every path argument is a NUL-terminated Buffer, never a string,
// so a guest's bytes reach the kernel exactly as given.
import { declareNative, type Koffi } from '../../koffi-native.js';
import { recvWithFds } from '../../unix-fds.js';
import { fail, LINUX } from './errno.js';

type Fn = (...args: unknown[]) => number | bigint;
interface KoffiNative {
  load(name: string): { func(decl: string): Fn };
  errno(): number;
}

export interface Sys {
  openat2(dirfd: number, path: Buffer, flags: number, mode: number, resolve: number): number;
  openat(dirfd: number, path: Buffer, flags: number, mode: number): number;
  mkdirat(dirfd: number, path: Buffer, mode: number): void;
  unlinkat(dirfd: number, path: Buffer, flags: number): void;
  renameat(olddirfd: number, oldpath: Buffer, newdirfd: number, newpath: Buffer): void;
  symlinkat(target: Buffer, dirfd: number, path: Buffer): void;
  linkat(olddirfd: number, oldpath: Buffer, newdirfd: number, newpath: Buffer, flags: number): void;
  /** Bytes written into buf (the kernel truncates silently, as readlink(2) does). */
  readlinkat(dirfd: number, path: Buffer, buf: Buffer): number;
  statx(dirfd: number, path: Buffer, flags: number, buf: Buffer): void;
  utimensat(dirfd: number, path: Buffer, times: Buffer, flags: number): void;
  futimens(fd: number, times: Buffer): void;
  getdents64(fd: number, buf: Buffer): number;
  lseek(fd: number, offset: bigint, whence: number): bigint;
  getfl(fd: number): number;
  setfl(fd: number, flags: number): void;
  fadvise(fd: number, offset: bigint, len: bigint, advice: number): void;
  fallocate(fd: number, offset: bigint, len: bigint): void;
  shutdown(fd: number, how: number): void;
  /** A new descriptor for the same open file description (F_DUPFD_CLOEXEC). */
  dup(fd: number): number;
  /**
   * close(2) of a descriptor opened here. Not Node's closeSync: in a worker
   * thread Node may take a number the kernel reused for one of ours for one it
   * once opened itself, and warn (a stack trace per close) on every closeSync.
   */
  close(fd: number): void;
  /** isatty(3): node:tty's would load node:net on every start. */
  isatty(fd: number): boolean;
  /** Unblocks a signal on the calling thread (sigprocmask). */
  unblockSignal(signo: number): void;
  /**
   * One message from a unix socket without waiting, and the descriptors it
   * carried (SCM_RIGHTS, made close-on-exec); undefined when none is queued.
   */
  recvFds(sock: number, maxFds: number): { data: Buffer; fds: number[] } | undefined;
}

const SYS_OPENAT2 = 437; // x86_64 and arm64 alike
const OPEN_HOW_SIZE = 24;
const F_GETFL = 3;
const F_SETFL = 4;
const F_DUPFD_CLOEXEC = 1030;
const SIG_UNBLOCK = 1;

let loaded: Sys | undefined;

export function sys(): Sys {
  return (loaded ??= declareNative(declare));
}

function declare(koffi: Koffi): Sys {
  const k = koffi as unknown as KoffiNative;
  const libc = k.load('libc.so.6');
  const f = (decl: string) => libc.func(decl);
  const syscall5 = f('long syscall(long nr, int dirfd, void *path, void *how, size_t size)');
  const openat = f('int openat(int dirfd, void *path, int flags, uint32_t mode)');
  const mkdirat = f('int mkdirat(int dirfd, void *path, uint32_t mode)');
  const unlinkat = f('int unlinkat(int dirfd, void *path, int flags)');
  const renameat = f('int renameat(int olddirfd, void *oldpath, int newdirfd, void *newpath)');
  const symlinkat = f('int symlinkat(void *target, int dirfd, void *path)');
  const linkat = f('int linkat(int olddirfd, void *oldpath, int newdirfd, void *newpath, int flags)');
  const readlinkat = f('long readlinkat(int dirfd, void *path, void *buf, size_t size)');
  const statx = f('int statx(int dirfd, void *path, int flags, uint32_t mask, void *buf)');
  const utimensat = f('int utimensat(int dirfd, void *path, void *times, int flags)');
  const futimens = f('int futimens(int fd, void *times)');
  const getdents64 = f('long getdents64(int fd, void *buf, size_t size)');
  const lseek = f('int64_t lseek(int fd, int64_t offset, int whence)');
  const fcntl = f('int fcntl(int fd, int cmd, int arg)');
  const fadvise = f('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)');
  const fallocate = f('int posix_fallocate(int fd, int64_t offset, int64_t len)');
  const shutdown = f('int shutdown(int fd, int how)');
  const sigprocmask = f('int sigprocmask(int how, void *set, void *old)');
  const isatty = f('int isatty(int fd)');
  const close = f('int close(int fd)');
  const how = Buffer.alloc(OPEN_HOW_SIZE);

  /** -1 means failure with errno set (the libc convention). */
  const check = (r: number | bigint): number => {
    const n = Number(r);
    if (n < 0) fail(k.errno());
    return n;
  };
  return {
    openat2(dirfd, path, flags, mode, resolve) {
      how.writeBigUInt64LE(BigInt(flags >>> 0), 0);
      how.writeBigUInt64LE(BigInt(mode), 8);
      how.writeBigUInt64LE(BigInt(resolve), 16);
      return check(syscall5(SYS_OPENAT2, dirfd, path, how, OPEN_HOW_SIZE));
    },
    openat: (dirfd, path, flags, mode) => check(openat(dirfd, path, flags, mode)),
    mkdirat: (dirfd, path, mode) => void check(mkdirat(dirfd, path, mode)),
    unlinkat: (dirfd, path, flags) => void check(unlinkat(dirfd, path, flags)),
    renameat: (a, ap, b, bp) => void check(renameat(a, ap, b, bp)),
    symlinkat: (target, dirfd, path) => void check(symlinkat(target, dirfd, path)),
    linkat: (a, ap, b, bp, flags) => void check(linkat(a, ap, b, bp, flags)),
    readlinkat: (dirfd, path, buf) => check(readlinkat(dirfd, path, buf, buf.length)),
    statx: (dirfd, path, flags, buf) => void check(statx(dirfd, path, flags, STATX_BASIC, buf)),
    utimensat: (dirfd, path, times, flags) => void check(utimensat(dirfd, path, times, flags)),
    futimens: (fd, times) => void check(futimens(fd, times)),
    getdents64: (fd, buf) => check(getdents64(fd, buf, buf.length)),
    lseek(fd, offset, whence) {
      const r = BigInt(lseek(fd, offset, whence));
      if (r < 0n) fail(k.errno());
      return r;
    },
    getfl: (fd) => check(fcntl(fd, F_GETFL, 0)),
    setfl: (fd, flags) => void check(fcntl(fd, F_SETFL, flags)),
    fadvise(fd, offset, len, advice) {
      const r = Number(fadvise(fd, offset, len, advice));
      if (r !== 0) fail(r);
    },
    fallocate(fd, offset, len) {
      const r = Number(fallocate(fd, offset, len));
      if (r !== 0) fail(r === LINUX.EOPNOTSUPP ? LINUX.EOPNOTSUPP : r);
    },
    shutdown: (fd, how_) => void check(shutdown(fd, how_)),
    dup: (fd) => check(fcntl(fd, F_DUPFD_CLOEXEC, 0)),
    close: (fd) => void check(close(fd)),
    isatty: (fd) => Number(isatty(fd)) === 1,
    recvFds(sock, maxFds) {
      const got = recvWithFds(sock, maxFds);
      if (!('errno' in got)) return got;
      if (got.errno === LINUX.EAGAIN) return undefined;
      fail(got.errno);
    },
    unblockSignal(signo) {
      const set = Buffer.alloc(128); // glibc's sigset_t
      set[(signo - 1) >> 3]! |= 1 << ((signo - 1) & 7);
      check(sigprocmask(SIG_UNBLOCK, set, null));
    },
  };
}

/** statx mask: type, mode, nlink, ino, size, atime, mtime, ctime. */
export const STATX_BASIC = 0x7ff;

/** Linux open(2) and *at(2) flags used by the host. */
export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, CREAT: 0o100, EXCL: 0o200, NOCTTY: 0o400, TRUNC: 0o1000,
  APPEND: 0o2000, NONBLOCK: 0o4000, DSYNC: 0o10000, DIRECTORY: 0o200000, NOFOLLOW: 0o400000,
  CLOEXEC: 0o2000000, SYNC: 0o4010000, PATH: 0o10000000, RSYNC: 0o4010000,
} as const;
export const AT = { SYMLINK_NOFOLLOW: 0x100, REMOVEDIR: 0x200, SYMLINK_FOLLOW: 0x400, EMPTY_PATH: 0x1000 } as const;
export const RESOLVE = { NO_XDEV: 0x01, NO_MAGICLINKS: 0x02, NO_SYMLINKS: 0x04, BENEATH: 0x08, IN_ROOT: 0x10 } as const;
export const UTIME_NOW = (1 << 30) - 1;
export const UTIME_OMIT = (1 << 30) - 2;
