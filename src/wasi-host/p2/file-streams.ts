// wasi:io streams over a file descriptor: read-via-stream, write-via-stream
// and append-via-stream. Each stream holds its own duplicate of the
// descriptor, so a stream the guest keeps after dropping its descriptor
// never reaches a descriptor number the host has since given to something
// else. Reads and writes are synchronous (regular files never block; a FIFO
// or device blocks only this guest's thread, as the shim's worker did).
import { fstatSync, readSync, writeSync } from 'node:fs';
import { procFdPath } from '../preview1/resolve.js';
import { O, sys } from '../preview1/sys.js';
import type { HostFds } from './host-fds.js';
import { hostInputStream, hostOutputStream, type InputStream, type OutputStream } from './io.js';

const AT_FDCWD = -100;

/** A file offset Node's write calls take (they silently ignore a bigint position). */
function writeOffset(pos: bigint): number {
  if (pos > BigInt(Number.MAX_SAFE_INTEGER)) throw 'file-too-large';
  return Number(pos);
}

/** Writes all of `data` at `pos` (null: at the descriptor's own offset); returns the new position. */
function writeAll(fd: number, data: Uint8Array, pos: bigint | null): bigint | null {
  for (let off = 0; off < data.length; ) {
    const n = writeSync(fd, data, off, data.length - off, pos === null ? null : writeOffset(pos));
    off += n;
    if (pos !== null) pos += BigInt(n);
  }
  return pos;
}

/** `offset` null: a descriptor with no offset of its own to honour (FIFO, device). */
export function fileInputStream(fds: HostFds, fd: number, offset: bigint | null): InputStream {
  const own = fds.add(sys().dup(fd));
  let pos = offset;
  return hostInputStream({
    read(max) {
      const buf = Buffer.allocUnsafe(max);
      const n = readSync(own.fd, buf, 0, max, pos);
      if (n === 0) return null;
      if (pos !== null) pos += BigInt(n);
      return buf.subarray(0, n);
    },
    dispose: own.close,
  });
}

export function fileOutputStream(fds: HostFds, fd: number, offset: bigint | null): OutputStream {
  const own = fds.add(sys().dup(fd));
  let pos = offset;
  return hostOutputStream({
    write(data) {
      pos = writeAll(own.fd, data, pos);
    },
    dispose: own.close,
  });
}

/**
 * Writes that always land at the end of the file, atomically with respect to
 * other writers: an O_APPEND open file description of the same file, reopened
 * through the host's own /proc/self/fd link. Without /proc, at the end as it
 * is at each write.
 */
export function appendStream(fds: HostFds, fd: number): OutputStream {
  let reopened: number | undefined;
  try {
    reopened = sys().openat(AT_FDCWD, procFdPath(fd), O.WRONLY | O.APPEND | O.CLOEXEC, 0);
  } catch {
    // No /proc: writes go where the end is when each is made.
  }
  const own = fds.add(reopened ?? sys().dup(fd));
  return hostOutputStream({
    write(data) {
      writeAll(own.fd, data, reopened !== undefined ? null : BigInt(fstatSync(own.fd).size));
    },
    dispose: own.close,
  });
}
