// Finds and reads the guest's module inside its root, as execvp would find
// an executable: a name with a slash is a path (relative to the working
// directory), a bare name is looked up in the guest's PATH. Every candidate is
// opened by the kernel beneath the root (RESOLVE_IN_ROOT), so a link in the
// image cannot lead the host to read a file outside it.
import { closeSync, fstatSync } from 'node:fs';
import { posix } from 'node:path';
import { readUpTo } from '../read-fd.js';
import { EXIT_MODULE_NOT_FOUND, EXIT_NOT_RUNNABLE } from './exit-status.js';
import { envListToObject } from './guest-config.js';
import { E } from './preview1/abi.js';
import { WasiError } from './preview1/errno.js';
import { openAt, type DirRef } from './preview1/resolve.js';
import { O } from './preview1/sys.js';

/** execvp's default search path when PATH is unset. */
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

export type LoadedModule = { path: string; bytes: Buffer } | { status: number; message: string };

/** One candidate: bytes, or why not (ENOENT-like: try the next PATH entry). */
function tryOpen(root: DirRef, path: string): Buffer | { errno: number } {
  let fd: number;
  try {
    fd = openAt(root, Buffer.from(path), O.RDONLY | O.NONBLOCK, 0, true);
  } catch (err) {
    if (err instanceof WasiError) return { errno: err.errno };
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { errno: E.ACCES };
    return readUpTo(fd, st.size);
  } finally {
    closeSync(fd);
  }
}

/**
 * `root` is the guest's root (IN_ROOT); `cwd` a path inside it. Not found:
 * 127; found but not a readable regular file: 126.
 */
export function loadModule(root: DirRef, name: string, env: readonly string[], cwd: string): LoadedModule {
  if (name === '') return { status: EXIT_MODULE_NOT_FOUND, message: 'no module named (empty argv[0])' };
  const candidates = name.includes('/')
    ? [posix.resolve(cwd, name)]
    : (envListToObject(env).PATH ?? DEFAULT_PATH).split(':').map((dir) => posix.resolve(cwd, dir || '.', name));
  let denied: string | undefined;
  for (const path of candidates) {
    const r = tryOpen(root, path);
    if (Buffer.isBuffer(r)) return { path, bytes: r };
    if (r.errno !== E.NOENT && r.errno !== E.NOTDIR && r.errno !== E.LOOP) denied ??= path;
  }
  if (denied) return { status: EXIT_NOT_RUNNABLE, message: `${denied}: cannot read wasm module (not a readable regular file)` };
  return { status: EXIT_MODULE_NOT_FOUND, message: `${name}: wasm module not found` };
}

/** The module at `path` beneath `dir` (a host directory a guest was given), with the same statuses as loadModule. */
export function loadModuleAt(dir: DirRef, path: string, shown: string): LoadedModule {
  const r = tryOpen(dir, path);
  if (Buffer.isBuffer(r)) return { path: shown, bytes: r };
  if (r.errno !== E.NOENT && r.errno !== E.NOTDIR && r.errno !== E.LOOP) return { status: EXIT_NOT_RUNNABLE, message: `${shown}: cannot read wasm module (not a readable regular file)` };
  return { status: EXIT_MODULE_NOT_FOUND, message: `${shown}: wasm module not found` };
}
