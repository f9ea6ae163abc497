// Advisory file locks (flock(2)) through koffi, for the store: shared for
// "I am using blobs and unpacked roots", exclusive for index changes and
// garbage collection. flock locks belong to the open file description, so
// they are released by the kernel when the holder exits however it exits
// (kill -9 included), and two opens in one process exclude each other just
// as two processes do.
//
// The lock is taken with LOCK_NB and retried with a short back-off, never by
// a blocking call: a blocking flock would hold a libuv pool thread (or the
// event loop) while the holder may need that very pool to finish and unlock.
import { closeSync, openSync } from 'node:fs';
import { declareNative } from '../koffi-native.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { TugboatError } from '../errors.js';
import { log } from '../log.js';

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;

interface Flock {
  flock: (fd: number, op: number) => number;
  errno: () => number;
}

let lib: Flock | undefined;

function flockLib(): Flock {
  if (lib) return lib;
  lib = declareNative((koffi) => ({ flock: koffi.load('libc.so.6').func('int flock(int, int)') as Flock['flock'], errno: () => koffi.errno() }));
  return lib;
}

export type LockMode = 'shared' | 'exclusive';

export interface FileLock {
  /** The locked open file (for fstat: is it still the file at its path?). */
  readonly fd: number;
  /** Idempotent. */
  release(): void;
}

/** Tries once; true when the lock is held. */
function tryLock(fd: number, mode: LockMode): boolean {
  const l = flockLib();
  for (;;) {
    if (l.flock(fd, (mode === 'shared' ? LOCK_SH : LOCK_EX) | LOCK_NB) === 0) return true;
    const errno = l.errno();
    if (errno === EINTR) continue;
    if (errno === EWOULDBLOCK) return false;
    throw new TugboatError(`cannot lock ${mode}: flock failed with errno ${errno}`);
  }
}

function held(fd: number): FileLock {
  let open = true;
  return {
    fd,
    release(): void {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

function openLockFile(file: string, create: boolean): number | undefined {
  try {
    return openSync(file, create ? 'a' : 'r', 0o600);
  } catch (err) {
    if (!create && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * One try, without waiting: the lock, or undefined when another holder has
 * it. Without `create`, a missing file is undefined too.
 */
export function tryLockFile(file: string, mode: LockMode, create = true): FileLock | undefined {
  const fd = openLockFile(file, create);
  if (fd === undefined) return undefined;
  try {
    if (tryLock(fd, mode)) return held(fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  closeSync(fd);
  return undefined;
}

const WAIT_NOTICE_MS = 2000;

/**
 * Waits for the lock on `file` (created 0600 if missing, unless `create` is
 * false: then a missing file is undefined) for at most `maxWaitMs`; undefined
 * when it is still held then.
 */
async function waitForLock(file: string, mode: LockMode, what: string, maxWaitMs: number, create: boolean): Promise<FileLock | undefined> {
  const fd = openLockFile(file, create);
  if (fd === undefined) return undefined;
  try {
    let delay = 1;
    let waited = 0;
    let noticed = false;
    while (!tryLock(fd, mode)) {
      if (waited >= maxWaitMs) {
        closeSync(fd);
        return undefined;
      }
      if (!noticed && waited >= WAIT_NOTICE_MS) {
        noticed = true;
        log().warn({ lock: file, mode }, `waiting for another tugboat command to finish with ${what}`);
      }
      await sleep(delay);
      waited += delay;
      delay = Math.min(delay * 2, 50);
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return held(fd);
}

/** Waits for the lock on `file` (created 0600 if missing). */
export async function lockFile(file: string, mode: LockMode, what: string): Promise<FileLock> {
  return (await waitForLock(file, mode, what, Infinity, true))!;
}

/** Waits at most `maxWaitMs` for the lock on an existing `file`; undefined when it is still held then, or the file is missing. */
export function lockFileWithin(file: string, mode: LockMode, what: string, maxWaitMs: number): Promise<FileLock | undefined> {
  return waitForLock(file, mode, what, maxWaitMs, false);
}

/** Runs `fn` holding the lock; released however `fn` ends. */
export async function withFileLock<T>(file: string, mode: LockMode, what: string, fn: () => Promise<T>): Promise<T> {
  const lock = await lockFile(file, mode, what);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
