// statx(2) results as preview1 filestats (nanosecond times, the real device
// and inode numbers) and Linux file modes as preview1 filetypes.
import { FILETYPE, FILESTAT_SIZE, type Filetype } from './abi.js';
import type { GuestMemory } from './memory.js';
import { AT, sys } from './sys.js';

export interface Filestat {
  dev: bigint;
  ino: bigint;
  filetype: Filetype;
  /** st_mode: the file type bits tell a FIFO from a socket, which preview1's filetype cannot. */
  mode: number;
  nlink: bigint;
  size: bigint;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}

const S_IFMT = 0o170000;

export function filetypeOfMode(mode: number): Filetype {
  switch (mode & S_IFMT) {
    case 0o100000: return FILETYPE.REGULAR_FILE;
    case 0o040000: return FILETYPE.DIRECTORY;
    case 0o120000: return FILETYPE.SYMBOLIC_LINK;
    case 0o020000: return FILETYPE.CHARACTER_DEVICE;
    case 0o060000: return FILETYPE.BLOCK_DEVICE;
    case 0o140000: return FILETYPE.SOCKET_STREAM;
    default: return FILETYPE.UNKNOWN; // FIFOs have no preview1 type (wasmtime reports unknown too)
  }
}

/** Linux d_type (getdents64) → filetype; DT_UNKNOWN stays unknown (the caller stats). */
export function filetypeOfDtype(dtype: number): Filetype {
  switch (dtype) {
    case 8: return FILETYPE.REGULAR_FILE;
    case 4: return FILETYPE.DIRECTORY;
    case 10: return FILETYPE.SYMBOLIC_LINK;
    case 2: return FILETYPE.CHARACTER_DEVICE;
    case 6: return FILETYPE.BLOCK_DEVICE;
    case 12: return FILETYPE.SOCKET_STREAM;
    default: return FILETYPE.UNKNOWN;
  }
}

/** glibc's makedev, so dev matches what stat(2) reports. */
function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

function ts(buf: Buffer, off: number): bigint {
  return buf.readBigInt64LE(off) * 1_000_000_000n + BigInt(buf.readUInt32LE(off + 8));
}

const buf = Buffer.alloc(256);
const EMPTY = Buffer.from('\0');

function decode(): Filestat {
  return {
    dev: makedev(buf.readUInt32LE(136), buf.readUInt32LE(140)),
    ino: buf.readBigUInt64LE(32),
    filetype: filetypeOfMode(buf.readUInt16LE(28)),
    mode: buf.readUInt16LE(28),
    nlink: BigInt(buf.readUInt32LE(16)),
    size: buf.readBigUInt64LE(40),
    atim: ts(buf, 64),
    mtim: ts(buf, 112),
    ctim: ts(buf, 96),
  };
}

/** fstat of a descriptor the host holds (any kind, O_PATH included). */
export function statFd(fd: number): Filestat {
  sys().statx(fd, EMPTY, AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW, buf);
  return decode();
}

/** stat of `name` in `dirfd`, never following a final symlink. */
export function lstatAt(dirfd: number, name: Buffer): Filestat {
  sys().statx(dirfd, name, AT.SYMLINK_NOFOLLOW, buf);
  return decode();
}

export function writeFilestat(mem: GuestMemory, ptr: number, s: Filestat): void {
  mem.bytes(ptr, FILESTAT_SIZE).fill(0);
  mem.setU64(ptr, s.dev);
  mem.setU64(ptr + 8, s.ino);
  mem.setU8(ptr + 16, s.filetype);
  mem.setU64(ptr + 24, s.nlink);
  mem.setU64(ptr + 32, s.size);
  mem.setU64(ptr + 40, s.atim);
  mem.setU64(ptr + 48, s.mtim);
  mem.setU64(ptr + 56, s.ctim);
}
