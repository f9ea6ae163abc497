// Directory entries as the kernel returns them (getdents64), shared by
// fd_readdir (fd-ops.ts) and wasi:filesystem's directory-entry-stream (../p2/).
import { sys } from './sys.js';

export interface Dirent {
  name: Buffer;
  ino: bigint;
  /** Linux d_type; DT_UNKNOWN (0) when the file system does not say (the caller stats). */
  dtype: number;
}

/** A buffer for readDirents: one getdents64 call fills it. */
export function direntBuffer(): Buffer {
  return Buffer.allocUnsafe(64 * 1024);
}

/**
 * The next entries of the open directory `fd` from its current offset (one
 * getdents64 call), "." and ".." left out; null at the end of the directory.
 */
export function readDirents(fd: number, buf: Buffer): Dirent[] | null {
  const n = sys().getdents64(fd, buf);
  if (n === 0) return null;
  const out: Dirent[] = [];
  for (let off = 0; off < n; ) {
    const ino = buf.readBigUInt64LE(off);
    const reclen = buf.readUInt16LE(off + 16);
    const dtype = buf[off + 18]!;
    const end = buf.indexOf(0, off + 19);
    const name = Buffer.from(buf.subarray(off + 19, end < 0 || end > off + reclen ? off + reclen : end));
    off += reclen;
    if ((name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) continue;
    out.push({ name, ino, dtype });
  }
  return out;
}
