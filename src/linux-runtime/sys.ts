// The few system calls Node does not expose, through koffi (FFI, prebuilt
// binaries in the npm package). Loaded lazily: `start` and `delete` never
// need them, and they must stay fast and silent.
import { declareNative, type Koffi } from '../koffi-native.js';
import { SysError } from '../errors.js';
import { recvWithFds, sendWithFds } from '../unix-fds.js';

interface Libc {
  prctl: (option: number, a2: number, a3: number, a4: number, a5: number) => number;
  waitpid: (pid: number, status: Int32Array, options: number) => number;
  pipe2: (fds: Int32Array, flags: number) => number;
  fchown: (fd: number, uid: number, gid: number) => number;
  errno: () => number;
  ioctl: (fd: number, req: number, arg: Buffer) => number;
  fcntlInt: (fd: number, cmd: number, arg: number) => number;
  mount: (source: string | null, target: string, fstype: string | null, flags: number, data: string | null) => number;
  umount2: (target: string, flags: number) => number;
  socketpair: (domain: number, type: number, protocol: number, fds: Int32Array) => number;
}

const PR_SET_CHILD_SUBREAPER = 36;
export const WNOHANG = 1;
const O_CLOEXEC = 0o2000000;
const ECHILD = 10;
const EINTR = 4;

let libc: Libc | undefined;

function load(): Libc {
  return (libc ??= declareNative(declareLibc));
}

function declareLibc(koffi: Koffi): Libc {
  const lib = koffi.load('libc.so.6');
  return {
    prctl: lib.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)') as Libc['prctl'],
    waitpid: lib.func('int waitpid(int, _Out_ int *, int)') as Libc['waitpid'],
    pipe2: lib.func('int pipe2(_Out_ int *, int)') as Libc['pipe2'],
    fchown: lib.func('int fchown(int, unsigned int, unsigned int)') as Libc['fchown'],
    errno: () => koffi.errno(),
    ioctl: lib.func('int ioctl(int, unsigned long, void *)') as Libc['ioctl'],
    mount: lib.func('int mount(const char *, const char *, const char *, unsigned long, const char *)') as Libc['mount'],
    umount2: lib.func('int umount2(const char *, int)') as Libc['umount2'],
    socketpair: lib.func('int socketpair(int, int, int, _Out_ int *)') as Libc['socketpair'],
    fcntlInt: (() => {
      const f = lib.func('int fcntl(int, int, ...)') as unknown as (fd: number, cmd: number, t: string, v: number) => number;
      return (fd: number, cmd: number, arg: number) => f(fd, cmd, 'int', arg);
    })(),
  };
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

const EAGAIN = 11;

/**
 * One non-blocking recvmsg on a unix socket carrying exactly one fd
 * (runc's console socket: data = pty name, SCM_RIGHTS = the master).
 * 'again' when nothing has arrived yet.
 */
export function recvFd(sock: number): { fd: number; name: string } | 'again' {
  const got = recvWithFds(sock, 1);
  if ('errno' in got) {
    if (got.errno === EAGAIN || got.errno === EINTR) return 'again';
    throw new SysError('recvmsg', got.errno);
  }
  if (got.fds.length === 0) throw new Error('console socket message carried no file descriptor');
  return { fd: got.fds[0]!, name: got.data.toString() };
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

/** One message on a unix socket with `fds` attached (SCM_RIGHTS); the caller keeps its own copies. */
export function sendFds(sock: number, data: Buffer, fds: readonly number[]): void {
  const e = sendWithFds(sock, data, fds);
  if (e !== 0) throw new SysError('sendmsg', e);
}

