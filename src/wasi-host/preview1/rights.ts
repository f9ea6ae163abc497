// Which rights each kind of descriptor starts with, and the ones a
// read-only preopen never hands out. Rights only ever shrink: a descriptor
// opened through a directory gets at most that directory's inheriting rights.
import { R } from './abi.js';

const r = (...bits: bigint[]) => bits.reduce((a, b) => a | b, 0n);

export const FILE_RIGHTS = r(
  R.FD_DATASYNC, R.FD_READ, R.FD_SEEK, R.FD_FDSTAT_SET_FLAGS, R.FD_SYNC, R.FD_TELL, R.FD_WRITE, R.FD_ADVISE,
  R.FD_ALLOCATE, R.FD_FILESTAT_GET, R.FD_FILESTAT_SET_SIZE, R.FD_FILESTAT_SET_TIMES, R.POLL_FD_READWRITE,
);

export const DIR_RIGHTS = r(
  R.FD_FDSTAT_SET_FLAGS, R.FD_SYNC, R.FD_ADVISE, R.PATH_CREATE_DIRECTORY, R.PATH_CREATE_FILE,
  R.PATH_LINK_SOURCE, R.PATH_LINK_TARGET, R.PATH_OPEN, R.FD_READDIR, R.PATH_READLINK, R.PATH_RENAME_SOURCE,
  R.PATH_RENAME_TARGET, R.PATH_FILESTAT_GET, R.PATH_FILESTAT_SET_SIZE, R.PATH_FILESTAT_SET_TIMES,
  R.FD_FILESTAT_GET, R.FD_FILESTAT_SET_TIMES, R.PATH_SYMLINK, R.PATH_REMOVE_DIRECTORY, R.PATH_UNLINK_FILE,
);

/** What a directory passes on to what is opened through it. */
export const DIR_INHERITING = DIR_RIGHTS | FILE_RIGHTS;

/** Pipes, terminals, character devices: no seeking, no sizes. */
export const STREAM_RIGHTS = r(R.FD_READ, R.FD_WRITE, R.FD_FDSTAT_SET_FLAGS, R.FD_FILESTAT_GET, R.POLL_FD_READWRITE, R.FD_SYNC, R.FD_DATASYNC);
export const SOCKET_RIGHTS = STREAM_RIGHTS | R.SOCK_SHUTDOWN;
export const LISTENER_RIGHTS = r(R.SOCK_ACCEPT, R.FD_FDSTAT_SET_FLAGS, R.FD_FILESTAT_GET, R.POLL_FD_READWRITE);

/** Everything that changes the file system: absent from a read-only preopen and all it opens. */
export const WRITE_RIGHTS = r(
  R.FD_DATASYNC, R.FD_WRITE, R.FD_ALLOCATE, R.FD_FILESTAT_SET_SIZE, R.FD_FILESTAT_SET_TIMES,
  R.PATH_CREATE_DIRECTORY, R.PATH_CREATE_FILE, R.PATH_LINK_SOURCE, R.PATH_LINK_TARGET, R.PATH_RENAME_SOURCE,
  R.PATH_RENAME_TARGET, R.PATH_FILESTAT_SET_SIZE, R.PATH_FILESTAT_SET_TIMES, R.PATH_SYMLINK,
  R.PATH_REMOVE_DIRECTORY, R.PATH_UNLINK_FILE,
);

export function preopenRights(readonly: boolean): { base: bigint; inheriting: bigint } {
  const mask = readonly ? ~WRITE_RIGHTS : ~0n;
  return { base: DIR_RIGHTS & mask, inheriting: DIR_INHERITING & mask };
}

/** True when every bit of `wanted` is in `held`. */
export function holds(held: bigint, wanted: bigint): boolean {
  return (held & wanted) === wanted;
}
