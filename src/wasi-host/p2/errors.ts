// Failures as wasi:filesystem error codes. The preview1 layer underneath
// reports every failure as a WASI errno (errno.ts); this maps it once, the way
// wasmtime maps the same Linux errnos. jco's glue turns a thrown string into
// the function's result::err; anything else thrown is a host bug and traps.
import { E, type Errno } from '../preview1/abi.js';
import { errnoOf } from '../preview1/errno.js';
import type { ErrorCode } from './types.js';

const CODES = new Map<Errno, ErrorCode>([
  [E.ACCES, 'access'], [E.AGAIN, 'would-block'], [E.ALREADY, 'already'], [E.BADF, 'bad-descriptor'],
  [E.BUSY, 'busy'], [E.DEADLK, 'deadlock'], [E.DQUOT, 'quota'], [E.EXIST, 'exist'], [E.FBIG, 'file-too-large'],
  [E.ILSEQ, 'illegal-byte-sequence'], [E.INPROGRESS, 'in-progress'], [E.INTR, 'interrupted'],
  [E.INVAL, 'invalid'], [E.IO, 'io'], [E.ISDIR, 'is-directory'], [E.LOOP, 'loop'], [E.MLINK, 'too-many-links'],
  [E.MSGSIZE, 'message-size'], [E.NAMETOOLONG, 'name-too-long'], [E.NODEV, 'no-device'], [E.NOENT, 'no-entry'],
  [E.NOLCK, 'no-lock'], [E.NOMEM, 'insufficient-memory'], [E.NOSPC, 'insufficient-space'],
  [E.NOTDIR, 'not-directory'], [E.NOTEMPTY, 'not-empty'], [E.NOTRECOVERABLE, 'not-recoverable'],
  [E.NOTSUP, 'unsupported'], [E.NOSYS, 'unsupported'], [E.NOTTY, 'no-tty'], [E.NXIO, 'no-such-device'],
  [E.OVERFLOW, 'overflow'], [E.PERM, 'not-permitted'], [E.NOTCAPABLE, 'not-permitted'], [E.PIPE, 'pipe'],
  [E.ROFS, 'read-only'], [E.SPIPE, 'invalid-seek'], [E.TXTBSY, 'text-file-busy'], [E.XDEV, 'cross-device'],
]);

/** The error code of a failed call; a host bug (not an errno) is rethrown. */
export function errorCode(err: unknown): ErrorCode {
  if (typeof err === 'string') return err as ErrorCode;
  return CODES.get(errnoOf(err)) ?? 'io';
}

/** Runs one filesystem call, throwing its failure as an error code (jco's result::err). */
export function fsCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw errorCode(err);
  }
}
