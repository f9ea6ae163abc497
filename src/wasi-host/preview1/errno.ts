// Linux errno → WASI errno, in one table. Host calls report failures as a
// thrown WasiError (from the kernel through koffi, or from Node's fd-based fs
// calls, whose errors carry the negated Linux errno), and the import layer
// turns it into the function's return value.
import { E, type Errno } from './abi.js';

/** Linux errno numbers (the generic table, shared by x86_64 and arm64). */
export const LINUX = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19, ENOTDIR: 20,
  EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28, ESPIPE: 29,
  EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37,
  ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40, ENOMSG: 42, EIDRM: 43, ENOLINK: 67, EPROTO: 71, EMULTIHOP: 72,
  EBADMSG: 74, EOVERFLOW: 75, EILSEQ: 84, ENOTSOCK: 88, EDESTADDRREQ: 89, EMSGSIZE: 90, EPROTOTYPE: 91,
  ENOPROTOOPT: 92, EPROTONOSUPPORT: 93, EOPNOTSUPP: 95, EAFNOSUPPORT: 97, EADDRINUSE: 98,
  EADDRNOTAVAIL: 99, ENETDOWN: 100, ENETUNREACH: 101, ENETRESET: 102, ECONNABORTED: 103,
  ECONNRESET: 104, ENOBUFS: 105, EISCONN: 106, ENOTCONN: 107, ETIMEDOUT: 110, ECONNREFUSED: 111,
  EHOSTUNREACH: 113, EALREADY: 114, EINPROGRESS: 115, ESTALE: 116, EDQUOT: 122, ECANCELED: 125,
  EOWNERDEAD: 130, ENOTRECOVERABLE: 131,
} as const;

const TABLE = new Map<number, Errno>([
  [LINUX.EPERM, E.PERM], [LINUX.ENOENT, E.NOENT], [LINUX.ESRCH, E.SRCH], [LINUX.EINTR, E.INTR],
  [LINUX.EIO, E.IO], [LINUX.ENXIO, E.NXIO], [LINUX.E2BIG, E.TOOBIG], [LINUX.ENOEXEC, E.NOEXEC],
  [LINUX.EBADF, E.BADF], [LINUX.ECHILD, E.CHILD], [LINUX.EAGAIN, E.AGAIN], [LINUX.ENOMEM, E.NOMEM],
  [LINUX.EACCES, E.ACCES], [LINUX.EFAULT, E.FAULT], [LINUX.EBUSY, E.BUSY], [LINUX.EEXIST, E.EXIST],
  [LINUX.EXDEV, E.XDEV], [LINUX.ENODEV, E.NODEV], [LINUX.ENOTDIR, E.NOTDIR], [LINUX.EISDIR, E.ISDIR],
  [LINUX.EINVAL, E.INVAL], [LINUX.ENFILE, E.NFILE], [LINUX.EMFILE, E.MFILE], [LINUX.ENOTTY, E.NOTTY],
  [LINUX.ETXTBSY, E.TXTBSY], [LINUX.EFBIG, E.FBIG], [LINUX.ENOSPC, E.NOSPC], [LINUX.ESPIPE, E.SPIPE],
  [LINUX.EROFS, E.ROFS], [LINUX.EMLINK, E.MLINK], [LINUX.EPIPE, E.PIPE], [LINUX.EDOM, E.DOM],
  [LINUX.ERANGE, E.RANGE], [LINUX.EDEADLK, E.DEADLK], [LINUX.ENAMETOOLONG, E.NAMETOOLONG],
  [LINUX.ENOLCK, E.NOLCK], [LINUX.ENOSYS, E.NOSYS], [LINUX.ENOTEMPTY, E.NOTEMPTY], [LINUX.ELOOP, E.LOOP],
  [LINUX.ENOMSG, E.NOMSG], [LINUX.EIDRM, E.IDRM], [LINUX.ENOLINK, E.NOLINK], [LINUX.EPROTO, E.PROTO],
  [LINUX.EMULTIHOP, E.MULTIHOP], [LINUX.EBADMSG, E.BADMSG], [LINUX.EOVERFLOW, E.OVERFLOW],
  [LINUX.EILSEQ, E.ILSEQ], [LINUX.ENOTSOCK, E.NOTSOCK], [LINUX.EDESTADDRREQ, E.DESTADDRREQ],
  [LINUX.EMSGSIZE, E.MSGSIZE], [LINUX.EPROTOTYPE, E.PROTOTYPE], [LINUX.ENOPROTOOPT, E.NOPROTOOPT],
  [LINUX.EPROTONOSUPPORT, E.PROTONOSUPPORT], [LINUX.EOPNOTSUPP, E.NOTSUP], [LINUX.EAFNOSUPPORT, E.AFNOSUPPORT],
  [LINUX.EADDRINUSE, E.ADDRINUSE], [LINUX.EADDRNOTAVAIL, E.ADDRNOTAVAIL], [LINUX.ENETDOWN, E.NETDOWN],
  [LINUX.ENETUNREACH, E.NETUNREACH], [LINUX.ENETRESET, E.NETRESET], [LINUX.ECONNABORTED, E.CONNABORTED],
  [LINUX.ECONNRESET, E.CONNRESET], [LINUX.ENOBUFS, E.NOBUFS], [LINUX.EISCONN, E.ISCONN],
  [LINUX.ENOTCONN, E.NOTCONN], [LINUX.ETIMEDOUT, E.TIMEDOUT], [LINUX.ECONNREFUSED, E.CONNREFUSED],
  [LINUX.EHOSTUNREACH, E.HOSTUNREACH], [LINUX.EALREADY, E.ALREADY], [LINUX.EINPROGRESS, E.INPROGRESS],
  [LINUX.ESTALE, E.STALE], [LINUX.EDQUOT, E.DQUOT], [LINUX.ECANCELED, E.CANCELED],
  [LINUX.EOWNERDEAD, E.OWNERDEAD], [LINUX.ENOTRECOVERABLE, E.NOTRECOVERABLE],
]);

/** A Linux errno as the guest sees it; anything unknown is EIO (never SUCCESS). */
export function wasiErrno(linuxErrno: number): Errno {
  return TABLE.get(linuxErrno) ?? E.IO;
}

const NAMES = new Map<number, string>(Object.entries(E).map(([name, n]) => [n, `E${name}`]));

/** "ENOENT" for a WASI errno, for messages. */
export function errnoName(errno: Errno): string {
  return NAMES.get(errno) ?? `errno ${errno}`;
}

/** A failed host call, carrying the WASI errno the guest gets. */
export class WasiError extends Error {
  constructor(readonly errno: Errno, message?: string) {
    super(message ?? `wasi errno ${errno}`);
  }
}

/** Throws the WASI form of a Linux errno. */
export function fail(linuxErrno: number): never {
  throw new WasiError(wasiErrno(linuxErrno));
}

/**
 * Any error thrown while serving a call, as a WASI errno: ours, or one of
 * Node's fd-based fs calls (errno is the negated Linux errno). Anything else
 * is a host bug and is rethrown, so it surfaces as a host failure rather than
 * a plausible-looking errno.
 */
export function errnoOf(err: unknown): Errno {
  if (err instanceof WasiError) return err.errno;
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.errno === 'number' && typeof e.code === 'string' && typeof e.syscall === 'string') return wasiErrno(-e.errno);
  throw err;
}
