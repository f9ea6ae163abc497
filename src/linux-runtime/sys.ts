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
  mount: (source: string | null, target: string, fstype: string | null, flags: number, data: string | null) => number;
  umount2: (target: string, flags: number) => number;
  sendmsg: (fd: number, hdr: object, flags: number) => number | bigint;
  socketpair: (domain: number, type: number, protocol: number, fds: Int32Array) => number;
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
    mount: lib.func('int mount(const char *, const char *, const char *, unsigned long, const char *)') as Libc['mount'],
    umount2: lib.func('int umount2(const char *, int)') as Libc['umount2'],
    sendmsg: lib.func('long sendmsg(int, tb_msghdr *, int)') as Libc['sendmsg'],
    socketpair: lib.func('int socketpair(int, int, int, _Out_ int *)') as Libc['socketpair'],
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

// mount(2) flags.
export const MS = {
  RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, REMOUNT: 0x20, NOATIME: 0x400, NODIRATIME: 0x800,
  BIND: 0x1000, REC: 0x4000, PRIVATE: 0x40000, RELATIME: 0x200000, STRICTATIME: 0x1000000,
} as const;

/** mount(2); a failure is a SysError naming what was mounted where. */
export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  const l = load();
  if (l.mount(source, target, fstype, flags, data) !== 0) throw new SysError(`mount ${source ?? fstype ?? ''} on ${target}`, l.errno());
}

const MNT_DETACH = 2;

/** umount2(2), lazily when `detach`. */
export function umount(target: string, detach = false): void {
  const l = load();
  if (l.umount2(target, detach ? MNT_DETACH : 0) !== 0) throw new SysError(`umount ${target}`, l.errno());
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;

/** A connected pair of unix sockets (close-on-exec): stream, or seqpacket (one message per send, fds attached). */
export function socketPair(kind: 'stream' | 'seqpacket'): [number, number] {
  const l = load();
  const fds = new Int32Array(2);
  if (l.socketpair(AF_UNIX, (kind === 'stream' ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC, 0, fds) !== 0) throw new SysError('socketpair', l.errno());
  return [fds[0]!, fds[1]!];
}

const MSG_NOSIGNAL = 0x4000;

/** One message on a unix socket with `fds` attached (SCM_RIGHTS); the caller keeps its own copies. */
export function sendFds(sock: number, data: Buffer, fds: readonly number[]): void {
  const l = load();
  const ctrl = Buffer.alloc(cmsgSpace(fds.length));
  if (fds.length > 0) {
    ctrl.writeBigUInt64LE(BigInt(16 + 4 * fds.length), 0);
    ctrl.writeInt32LE(SOL_SOCKET, 8);
    ctrl.writeInt32LE(SCM_RIGHTS, 12);
    fds.forEach((fd, i) => ctrl.writeInt32LE(fd, 16 + 4 * i));
  }
  const hdr = {
    msg_name: null,
    msg_namelen: 0,
    msg_iov: [{ iov_base: data, iov_len: data.length }],
    msg_iovlen: 1,
    msg_control: fds.length > 0 ? ctrl : null,
    msg_controllen: fds.length > 0 ? ctrl.length : 0,
    msg_flags: 0,
  };
  for (;;) {
    const n = Number(l.sendmsg(sock, hdr, MSG_NOSIGNAL));
    if (n >= 0) return;
    const e = l.errno();
    if (e !== EINTR) throw new SysError('sendmsg', e);
  }
}

/** CMSG_SPACE for n descriptors on 64-bit Linux. */
function cmsgSpace(n: number): number {
  return 16 + ((4 * n + 7) & ~7);
}
