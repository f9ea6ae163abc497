// Path resolution by the kernel. Every path a guest names is resolved
// relative to a directory descriptor the host holds:
//   - openat2(2) with RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS for ordinary
//     directories (any escape through "..", an absolute name or a symlink
//     fails with EXDEV), or RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS for a
//     container's root, where ".." stops at the root and absolute symlinks in
//     the image resolve inside it, as they would under chroot;
//   - where openat2 is missing (ENOSYS) or refused by a seccomp profile
//     (EPERM), a component-by-component walk: every step is an openat(2) with
//     O_NOFOLLOW of one name in a directory fd the walk already holds, symlinks
//     are read and spliced in by the walk itself, ".." pops the walk's own
//     stack of directory fds (never the kernel's ".."), so the same rules hold.
// Operations on a final component that must not be followed (unlink, mkdir,
// rename, readlink, lstat, …) run as *at() calls on the resolved parent.
// Nothing here joins strings to make a host path; the one exception is the
// "/proc/self/fd/N" form of a descriptor the host itself opened.
import { E } from './abi.js';
import { WasiError } from './errno.js';
import { AT, O, RESOLVE, sys } from './sys.js';

export type ResolveMode = 'beneath' | 'in-root';

/** A directory a guest path is resolved against. */
export interface DirRef {
  fd: number;
  mode: ResolveMode;
  /** For the working directory preopen: resolve `prefix/path` from the root fd (IN_ROOT). */
  prefix?: Buffer;
}

/** A parent directory and the final component of a path. */
export interface Parent {
  fd: number;
  /** NUL-terminated final component, with a trailing "/" kept when the path had one. */
  name: Buffer;
  /** The final component is "." or "..": it names a directory that cannot be created, removed or renamed. */
  dots: boolean;
  /** Close fd when done (false when fd is the DirRef's own). */
  owned: boolean;
}

const SLASH = 0x2f;
const MAX_SYMLINKS = 40;
const DOT = Buffer.from('.\0');

let openat2Usable: boolean | undefined;

/** Forces the component walk (tests run the same matrix both ways); also TUGBOAT_WASI_NO_OPENAT2=1. */
export function setOpenat2(enabled: boolean | undefined): void {
  openat2Usable = enabled;
}

function useOpenat2(): boolean {
  if (openat2Usable === undefined) openat2Usable = process.env.TUGBOAT_WASI_NO_OPENAT2 !== '1';
  return openat2Usable;
}

export function resolveFlags(mode: ResolveMode): number {
  return RESOLVE.NO_MAGICLINKS | (mode === 'in-root' ? RESOLVE.IN_ROOT : RESOLVE.BENEATH);
}

function cstr(bytes: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(bytes.length + 1);
  b.set(bytes);
  b[bytes.length] = 0;
  return b;
}

/** A NUL-terminated copy in a buffer reused by every call: only for a path the kernel consumes at once. */
let scratch = Buffer.allocUnsafe(4096);
function scratchCstr(bytes: Uint8Array): Buffer {
  if (bytes.length + 1 > scratch.length) scratch = Buffer.allocUnsafe(bytes.length + 1);
  scratch.set(bytes);
  scratch[bytes.length] = 0;
  return scratch;
}

function join(prefix: Buffer | undefined, path: Uint8Array): Uint8Array {
  if (!prefix || path[0] === SLASH) return path;
  return Buffer.concat([prefix, Buffer.from('/'), path]);
}

/** Escapes are the guest's lack of permission, as with wasmtime (cap-std): EPERM, not EXDEV. */
function escape(): never {
  throw new WasiError(E.PERM);
}

/**
 * Opens `path` relative to `dir`. `follow` says whether a symlink as the
 * final component is followed (lookupflags SYMLINK_FOLLOW); intermediate
 * links always are, within the rules of the mode.
 */
export function openAt(dir: DirRef, path: Uint8Array, flags: number, mode: number, follow: boolean): number {
  if (path.length === 0) throw new WasiError(E.NOENT);
  const full = join(dir.prefix, path);
  const f = (flags | O.CLOEXEC | (follow ? 0 : O.NOFOLLOW)) >>> 0;
  // openat2 refuses a mode without O_CREAT (EINVAL).
  mode = flags & O.CREAT ? mode : 0;
  if (useOpenat2()) {
    try {
      return sys().openat2(dir.fd, scratchCstr(full), f, mode, resolveFlags(dir.mode));
    } catch (err) {
      if (!(err instanceof WasiError)) throw err;
      if (err.errno === E.XDEV) escape();
      // ENOSYS: an old kernel; EPERM: a seccomp profile (Docker's default) refuses openat2.
      if (err.errno !== E.NOSYS && err.errno !== E.PERM) throw err;
      if (!probeOpenat2Refused(dir.fd)) throw err;
      openat2Usable = false;
    }
  }
  return walk(dir, full, f, mode, follow);
}

/** Tells a seccomp refusal (EPERM for every openat2) from a genuine EPERM on this path. */
function probeOpenat2Refused(dirfd: number): boolean {
  try {
    sys().close(sys().openat2(dirfd, DOT, O.PATH | O.CLOEXEC, 0, RESOLVE.BENEATH));
    return false;
  } catch (err) {
    return err instanceof WasiError && (err.errno === E.NOSYS || err.errno === E.PERM);
  }
}

/** Splits at "/" into components, dropping empty ones; reports a trailing slash. */
function components(path: Uint8Array): { parts: Buffer[]; absolute: boolean; trailingSlash: boolean } {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === SLASH) {
      if (i > start) parts.push(Buffer.from(path.subarray(start, i)));
      start = i + 1;
    }
  }
  return { parts, absolute: path[0] === SLASH, trailingSlash: path.length > 0 && path[path.length - 1] === SLASH };
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;
const statBuf = Buffer.alloc(256);
const EMPTY = Buffer.from('\0');

function modeOf(fd: number): number {
  sys().statx(fd, EMPTY, AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW, statBuf);
  return statBuf.readUInt16LE(28) & S_IFMT;
}

function readLink(dirfd: number, name: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(4096);
  const n = sys().readlinkat(dirfd, name, buf);
  return buf.subarray(0, n);
}

/** The openat2-free walk (see the file comment). */
function walk(dir: DirRef, path: Uint8Array, flags: number, mode: number, follow: boolean): number {
  const stack: number[] = [];
  const cur = () => (stack.length ? stack[stack.length - 1]! : dir.fd);
  const toRoot = () => {
    while (stack.length) sys().close(stack.pop()!);
  };
  let { parts, absolute, trailingSlash } = components(path);
  if (absolute) {
    if (dir.mode === 'beneath') escape();
  }
  let links = 0;
  const queue = parts;
  /** Puts a symlink's target in front of what is left of the path, within the mode's rules. */
  const splice = (target: Buffer, last: boolean) => {
    if (++links > MAX_SYMLINKS) throw new WasiError(E.LOOP);
    const t = components(target);
    if (t.absolute) {
      if (dir.mode === 'beneath') escape();
      toRoot();
    }
    queue.unshift(...t.parts);
    if (last && t.trailingSlash) trailingSlash = true;
  };
  try {
    for (;;) {
      const comp = queue.shift();
      const last = queue.length === 0;
      if (comp === undefined || comp.equals(Buffer.from('.'))) {
        if (comp === undefined || last) return sys().openat(cur(), DOT, flags & ~O.NOFOLLOW, mode);
        continue;
      }
      if (comp.equals(Buffer.from('..'))) {
        if (stack.length) sys().close(stack.pop()!);
        else if (dir.mode === 'beneath') escape();
        if (last) return sys().openat(cur(), DOT, flags & ~O.NOFOLLOW, mode);
        continue;
      }
      const name = cstr(comp);
      if (!last || trailingSlash) {
        // An intermediate component (or a final one that must be a directory): never followed by the kernel.
        const fd = sys().openat(cur(), name, O.PATH | O.NOFOLLOW | O.CLOEXEC, 0);
        const type = modeOf(fd);
        if (type === S_IFLNK) {
          const target = readLink(fd, EMPTY);
          sys().close(fd);
          splice(target, last);
          if (queue.length === 0) return sys().openat(cur(), DOT, flags & ~O.NOFOLLOW, mode);
          continue;
        }
        if (last) {
          // "name/": must be a directory; open it for real through the fd we hold.
          if (type !== S_IFDIR) {
            sys().close(fd);
            throw new WasiError(E.NOTDIR);
          }
          try {
            return sys().openat(fd, DOT, (flags & ~O.NOFOLLOW & ~O.CREAT) | O.DIRECTORY, mode);
          } finally {
            sys().close(fd);
          }
        }
        if (type !== S_IFDIR) {
          sys().close(fd);
          throw new WasiError(E.NOTDIR);
        }
        stack.push(fd);
        continue;
      }
      // The final component: opened with O_NOFOLLOW; a symlink there is ours to follow or refuse.
      try {
        const fd = sys().openat(cur(), name, flags | O.NOFOLLOW, mode);
        if (!(flags & O.PATH) || !follow || modeOf(fd) !== S_IFLNK) return fd;
        sys().close(fd);
      } catch (err) {
        if (!(err instanceof WasiError) || !follow) throw err;
        // ELOOP: the final component is a symlink (ENOTDIR with O_DIRECTORY on one).
        if (err.errno !== E.LOOP && err.errno !== E.NOTDIR) throw err;
        if (err.errno === E.NOTDIR && !isSymlinkAt(cur(), name)) throw err;
      }
      splice(readLink(cur(), name), true);
    }
  } finally {
    for (const fd of stack) sys().close(fd);
  }
}

function isSymlinkAt(dirfd: number, name: Buffer): boolean {
  try {
    sys().statx(dirfd, name, AT.SYMLINK_NOFOLLOW, statBuf);
    return (statBuf.readUInt16LE(28) & S_IFMT) === S_IFLNK;
  } catch {
    return false;
  }
}

/**
 * The parent directory of `path` and its final component, for the *at()
 * calls that act on a name without following it.
 */
export function parentOf(dir: DirRef, path: Uint8Array): Parent {
  if (path.length === 0) throw new WasiError(E.NOENT);
  let end = path.length;
  while (end > 1 && path[end - 1] === SLASH) end--;
  const trailing = end < path.length;
  const slash = path.lastIndexOf(SLASH, end - 1);
  const last = path.subarray(slash + 1, end);
  const lastName = trailing ? Buffer.concat([last, Buffer.from('/')]) : Buffer.from(last);
  const dots = last.length === 0 || (last.length === 1 && last[0] === 0x2e) || (last.length === 2 && last[0] === 0x2e && last[1] === 0x2e);
  if (slash < 0 && !dir.prefix && !dots) return { fd: dir.fd, name: cstr(lastName), dots, owned: false };
  if (dots) {
    // "x/.." and friends: the directory the whole path names; the caller refuses to create/remove it.
    const fd = openAt(dir, path, O.PATH | O.DIRECTORY, 0, true);
    return { fd, name: Buffer.from(DOT), dots, owned: true };
  }
  const parentPath = slash < 0 ? Buffer.from('.') : slash === 0 ? Buffer.from('/') : path.subarray(0, slash);
  const fd = openAt(dir, parentPath, O.PATH | O.DIRECTORY, 0, true);
  return { fd, name: cstr(lastName), dots, owned: true };
}

export function releaseParent(p: Parent): void {
  if (p.owned) sys().close(p.fd);
}

/** A host path naming an fd the host opened (for the few calls that need one: linkat and utimensat of an O_PATH fd). */
export function procFdPath(fd: number): Buffer {
  return cstr(Buffer.from(`/proc/self/fd/${fd}`));
}

