// The few system calls Node does not expose, through koffi (FFI, prebuilt
// binaries in the npm package). Loaded lazily: `start` and `delete` never
// need them, and they must stay fast and silent.
import { createRequire } from 'node:module';

interface Libc {
  prctl: (option: number, a2: number, a3: number, a4: number, a5: number) => number;
  waitpid: (pid: number, status: Int32Array, options: number) => number;
  pipe2: (fds: Int32Array, flags: number) => number;
  fchown: (fd: number, uid: number, gid: number) => number;
  errno: () => number;
}

const PR_SET_CHILD_SUBREAPER = 36;
export const WNOHANG = 1;
const O_CLOEXEC = 0o2000000;
const ECHILD = 10;
const EINTR = 4;

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  libc = {
    prctl: lib.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)') as Libc['prctl'],
    waitpid: lib.func('int waitpid(int, _Out_ int *, int)') as Libc['waitpid'],
    pipe2: lib.func('int pipe2(_Out_ int *, int)') as Libc['pipe2'],
    fchown: lib.func('int fchown(int, unsigned int, unsigned int)') as Libc['fchown'],
    errno: () => koffi.errno(),
  };
  return libc;
}

export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call} failed: errno ${errno}`);
  }
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
