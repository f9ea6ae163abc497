// The few system calls Node does not expose, through koffi (FFI, prebuilt
// binaries in the npm package). Loaded lazily: `start` and `delete` never
// need them, and they must stay fast and silent.
import { loadKoffi } from '../koffi-native.js';
import { SysError } from '../errors.js';

interface Libc {
  prctl: (option: number, a2: number, a3: number, a4: number, a5: number) => number;
  waitpid: (pid: number, status: Int32Array, options: number) => number;
  pipe2: (fds: Int32Array, flags: number) => number;
  fchown: (fd: number, uid: number, gid: number) => number;
  errno: () => number;
  recvmsg: (fd: number, hdr: object, flags: number) => number | bigint;
  ioctl: (fd: number, req: number, arg: Buffer) => number;
  fcntlInt: (fd: number, cmd: number, arg: number) => number;
}

const PR_SET_CHILD_SUBREAPER = 36;
export const WNOHANG = 1;
const O_CLOEXEC = 0o2000000;
const ECHILD = 10;
const EINTR = 4;

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const koffi = loadKoffi();
  const lib = koffi.load('libc.so.6');
  libc = {
    prctl: lib.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)') as Libc['prctl'],
    waitpid: lib.func('int waitpid(int, _Out_ int *, int)') as Libc['waitpid'],
    pipe2: lib.func('int pipe2(_Out_ int *, int)') as Libc['pipe2'],
    fchown: lib.func('int fchown(int, unsigned int, unsigned int)') as Libc['fchown'],
    errno: () => koffi.errno(),
    recvmsg: (() => {
      koffi.struct('tb_iovec', { iov_base: 'void *', iov_len: 'size_t' });
      koffi.struct('tb_msghdr', {
        msg_name: 'void *',
        msg_namelen: 'uint32',
        msg_iov: 'tb_iovec *',
        msg_iovlen: 'size_t',
        msg_control: 'void *',
        msg_controllen: 'size_t',
        msg_flags: 'int',
      });
      return lib.func('long recvmsg(int, tb_msghdr *, int)') as Libc['recvmsg'];
    })(),
    ioctl: lib.func('int ioctl(int, unsigned long, void *)') as Libc['ioctl'],
    fcntlInt: (() => {
      const f = lib.func('int fcntl(int, int, ...)') as unknown as (fd: number, cmd: number, t: string, v: number) => number;
      return (fd: number, cmd: number, arg: number) => f(fd, cmd, 'int', arg);
    })(),
  };
  return libc;
}


export function setChildSubreaper(): void {
  const l = load();
  if (l.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0) throw new SysError('prctl(PR_SET_CHILD_SUBREAPER)', l.errno());
}

/** Exit status as containerd reports it: the code, or 128 + the signal. */
export function decodeWaitStatus(status: number): number {
  const sig = status & 0x7f;
  if (sig === 0) return (status >> 8) & 0xff;
  return 128 + sig;
}

export type WaitResult = { state: 'running' } | { state: 'exited'; status: number } | { state: 'gone' };

/** waitpid(pid, WNOHANG) for one pid (never -1: that would steal libuv's children). */
export function waitPidNoHang(pid: number): WaitResult {
  const l = load();
  const st = new Int32Array(1);
  for (;;) {
    const r = l.waitpid(pid, st, WNOHANG);
    if (r === pid) return { state: 'exited', status: decodeWaitStatus(st[0]!) };
    if (r === 0) return { state: 'running' };
    const e = l.errno();
    if (e === EINTR) continue;
    if (e === ECHILD) return { state: 'gone' };
    throw new SysError('waitpid', e);
  }
}

/** A real pipe (never a socketpair), both ends close-on-exec: [read, write]. */
export function pipe(): [number, number] {
  const l = load();
  const fds = new Int32Array(2);
  if (l.pipe2(fds, O_CLOEXEC) !== 0) throw new SysError('pipe2', l.errno());
  return [fds[0]!, fds[1]!];
}

export function fchown(fd: number, uid: number, gid: number): void {
  const l = load();
  if (l.fchown(fd, uid, gid) !== 0) throw new SysError('fchown', l.errno());
}

const MSG_DONTWAIT = 0x40;
const MSG_CMSG_CLOEXEC = 0x40000000;
const EAGAIN = 11;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;

/**
 * One non-blocking recvmsg on a unix socket carrying exactly one fd
 * (runc's console socket: data = pty name, SCM_RIGHTS = the master).
 * 'again' when nothing has arrived yet.
 */
export function recvFd(sock: number): { fd: number; name: string } | 'again' {
  const l = load();
  const data = Buffer.alloc(4096);
  const ctrl = Buffer.alloc(64);
  const hdr = {
    msg_name: null,
    msg_namelen: 0,
    msg_iov: [{ iov_base: data, iov_len: data.length }],
    msg_iovlen: 1,
    msg_control: ctrl,
    msg_controllen: ctrl.length,
    msg_flags: 0,
  };
  const n = Number(l.recvmsg(sock, hdr, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
  if (n < 0) {
    const e = l.errno();
    if (e === EAGAIN || e === EINTR) return 'again';
    throw new SysError('recvmsg', e);
  }
  // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; int fd[] }
  const len = Number(ctrl.readBigUInt64LE(0));
  if (len < 20 || ctrl.readInt32LE(8) !== SOL_SOCKET || ctrl.readInt32LE(12) !== SCM_RIGHTS) {
    throw new Error('console socket message carried no file descriptor');
  }
  return { fd: ctrl.readInt32LE(16), name: data.subarray(0, n).toString() };
}

const TIOCSWINSZ = 0x5414;

/** TIOCSWINSZ on a pty master. */
export function setWinsize(fd: number, rows: number, cols: number): void {
  const l = load();
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(rows & 0xffff, 0);
  ws.writeUInt16LE(cols & 0xffff, 2);
  if (l.ioctl(fd, TIOCSWINSZ, ws) !== 0) throw new SysError('ioctl(TIOCSWINSZ)', l.errno());
}

const F_DUPFD_CLOEXEC = 1030;

/** dup(2) with close-on-exec. */
export function dupCloexec(fd: number): number {
  const l = load();
  const r = l.fcntlInt(fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) throw new SysError('fcntl(F_DUPFD_CLOEXEC)', l.errno());
  return r;
}
