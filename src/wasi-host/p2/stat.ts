// statx results (../preview1/stat.ts) as wasi:filesystem types.
import type { TimeSpec } from '../preview1/path-calls.js';
import type { Filestat } from '../preview1/stat.js';
import type { Datetime, DescriptorStat, DescriptorType, MetadataHashValue, NewTimestamp } from './types.js';

const NS = 1_000_000_000n;

const BY_MODE = new Map<number, DescriptorType>([
  [0o100000, 'regular-file'], [0o040000, 'directory'], [0o120000, 'symbolic-link'], [0o020000, 'character-device'],
  [0o060000, 'block-device'], [0o010000, 'fifo'], [0o140000, 'socket'],
]);

const BY_DTYPE = new Map<number, DescriptorType>([
  [8, 'regular-file'], [4, 'directory'], [10, 'symbolic-link'], [2, 'character-device'], [6, 'block-device'],
  [1, 'fifo'], [12, 'socket'],
]);

export function typeOfMode(mode: number): DescriptorType {
  return BY_MODE.get(mode & 0o170000) ?? 'unknown';
}

/** Linux d_type; undefined for DT_UNKNOWN (the caller stats). */
export function typeOfDtype(dtype: number): DescriptorType | undefined {
  return BY_DTYPE.get(dtype);
}

/** None before the epoch: a wall-clock datetime has unsigned seconds (wasmtime does the same). */
function datetime(ns: bigint): Datetime | undefined {
  if (ns < 0n) return undefined;
  return { seconds: ns / NS, nanoseconds: Number(ns % NS) };
}

export function descriptorStat(s: Filestat): DescriptorStat {
  return {
    type: typeOfMode(s.mode),
    linkCount: s.nlink,
    size: s.size,
    dataAccessTimestamp: datetime(s.atim),
    dataModificationTimestamp: datetime(s.mtim),
    statusChangeTimestamp: datetime(s.ctim),
  };
}

/**
 * The object's identity, (device, inode), as wasmtime hashes it: it does not
 * change when the file is written, which the preview1 adapter relies on (it
 * reports `lower` as the inode number). Unhashed: the preview1 host shows
 * guests the same numbers.
 */
export function metadataHash(s: Filestat): MetadataHashValue {
  return { lower: s.ino, upper: s.dev };
}

export function timeSpec(t: NewTimestamp): TimeSpec {
  if (t.tag === 'no-change') return 'omit';
  if (t.tag === 'now') return 'now';
  return t.val.seconds * NS + BigInt(t.val.nanoseconds);
}
