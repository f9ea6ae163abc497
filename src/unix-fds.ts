// Messages on a unix socket that carry file descriptors (SCM_RIGHTS), through
// koffi's sendmsg/recvmsg: runc's console socket and the pod host's fds in
// the shim, the same fds received in the pod host. One struct msghdr and one
// cmsg layout for all of them (64-bit Linux).
import { declareNative, type Koffi } from './koffi-native.js';

const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const EINTR = 4;

type MsgFn = (fd: number, hdr: object, flags: number) => number | bigint;
let calls: { recvmsg: MsgFn; sendmsg: MsgFn; errno: () => number } | undefined;

function load(): NonNullable<typeof calls> {
  return (calls ??= declareNative(declare));
}

function declare(k: Koffi): NonNullable<typeof calls> {
  k.struct('tbu_iovec', { iov_base: 'void *', iov_len: 'size_t' });
  k.struct('tbu_msghdr', {
    msg_name: 'void *',
    msg_namelen: 'uint32',
    msg_iov: 'tbu_iovec *',
    msg_iovlen: 'size_t',
    msg_control: 'void *',
    msg_controllen: 'size_t',
    msg_flags: 'int',
  });
  const libc = k.load('libc.so.6');
  return {
    recvmsg: libc.func('long recvmsg(int, tbu_msghdr *, int)') as unknown as MsgFn,
    sendmsg: libc.func('long sendmsg(int, tbu_msghdr *, int)') as unknown as MsgFn,
    errno: () => k.errno(),
  };
}

/** CMSG_SPACE for n descriptors. */
function cmsgSpace(n: number): number {
  return 16 + ((4 * n + 7) & ~7);
}

function msghdr(data: Buffer, ctrl: Buffer | null): { msg_controllen: number } & Record<string, unknown> {
  return {
    msg_name: null,
    msg_namelen: 0,
    msg_iov: [{ iov_base: data, iov_len: data.length }],
    msg_iovlen: 1,
    msg_control: ctrl,
    msg_controllen: ctrl ? ctrl.length : 0,
    msg_flags: 0,
  };
}

/**
 * One non-blocking recvmsg of up to 4096 bytes and `maxFds` descriptors
 * (made close-on-exec); the failing errno otherwise.
 */
export function recvWithFds(sock: number, maxFds: number): { data: Buffer; fds: number[] } | { errno: number } {
  const l = load();
  const data = Buffer.alloc(4096);
  const ctrl = Buffer.alloc(cmsgSpace(maxFds));
  const hdr = msghdr(data, ctrl);
  const n = Number(l.recvmsg(sock, hdr, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
  if (n < 0) return { errno: l.errno() };
  // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; int fd[] }, possibly several
  const fds: number[] = [];
  const used = hdr.msg_controllen;
  for (let at = 0; at + 16 <= used; ) {
    const len = Number(ctrl.readBigUInt64LE(at));
    if (len < 16) break;
    if (ctrl.readInt32LE(at + 8) === SOL_SOCKET && ctrl.readInt32LE(at + 12) === SCM_RIGHTS) {
      for (let p = at + 16; p + 4 <= at + len; p += 4) fds.push(ctrl.readInt32LE(p));
    }
    at += (len + 7) & ~7;
  }
  return { data: data.subarray(0, n), fds };
}

/** One message with `fds` attached (retried on EINTR); 0, or the failing errno. The caller keeps its own copies. */
export function sendWithFds(sock: number, data: Buffer, fds: readonly number[]): number {
  const l = load();
  let ctrl: Buffer | null = null;
  if (fds.length > 0) {
    ctrl = Buffer.alloc(cmsgSpace(fds.length));
    ctrl.writeBigUInt64LE(BigInt(16 + 4 * fds.length), 0);
    ctrl.writeInt32LE(SOL_SOCKET, 8);
    ctrl.writeInt32LE(SCM_RIGHTS, 12);
    fds.forEach((fd, i) => ctrl!.writeInt32LE(fd, 16 + 4 * i));
  }
  const hdr = msghdr(data, ctrl);
  for (;;) {
    if (Number(l.sendmsg(sock, hdr, MSG_NOSIGNAL)) >= 0) return 0;
    const e = l.errno();
    if (e !== EINTR) return e;
  }
}
