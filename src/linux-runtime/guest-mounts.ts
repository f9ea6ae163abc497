// A shared host's guest has no mount namespace of its own: the OCI mounts of
// its container (volumes, configmaps, emptyDir, /etc/hosts, resolv.conf,
// service-account tokens, /dev/shm) are mounted by the shim under the
// guest's root filesystem, in the shim's mount namespace, before the guest
// gets its root directory as a descriptor. A descriptor reaches every mount
// below it whatever namespace its user is in, so a pod host in a runc
// container of its own sees them without any mount propagation.
//
// Every destination is resolved inside the root by the kernel (openat2
// RESOLVE_IN_ROOT, or the component walk), created there if missing, and
// mounted onto through /proc/self/fd/N of that descriptor: a symlink in the
// image cannot point a mount outside the root. Kernel file systems a guest
// cannot use (proc, sysfs, devpts, mqueue, cgroup) are skipped; they are
// what runc sets up for a process.
import { closeSync, readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { ConfigError } from '../errors.js';
import { log } from '../log.js';
import type { Mount } from '../oci/runtime-spec.js';
import { E } from '../wasi-host/preview1/abi.js';
import { WasiError } from '../wasi-host/preview1/errno.js';
import { openAt, parentOf, releaseParent, type DirRef } from '../wasi-host/preview1/resolve.js';
import { O, sys } from '../wasi-host/preview1/sys.js';
import { mount, MS, umount } from './sys.js';

const SKIPPED_TYPES = new Set(['proc', 'sysfs', 'devpts', 'mqueue', 'cgroup', 'cgroup2']);

/** mount(8) options that are flags; propagation options are ours to choose (private). */
const FLAG_OPTIONS: Record<string, number> = {
  ro: MS.RDONLY, nosuid: MS.NOSUID, nodev: MS.NODEV, noexec: MS.NOEXEC, noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME, relatime: MS.RELATIME, strictatime: MS.STRICTATIME,
};
const IGNORED_OPTIONS = new Set(['rw', 'bind', 'rbind', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'unbindable', 'runbindable', 'suid', 'dev', 'exec', 'async', 'atime', 'diratime', 'norelatime', 'nostrictatime']);

export function isBindMount(m: Mount): boolean {
  return m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

/** The mounts a guest of a shared host gets, in spec order. */
export function guestMounts(mounts: readonly Mount[] | undefined): Mount[] {
  return (mounts ?? []).filter((m) => isBindMount(m) || (m.type !== undefined && !SKIPPED_TYPES.has(m.type)));
}

function splitOptions(m: Mount): { flags: number; data: string[] } {
  let flags = 0;
  const data: string[] = [];
  for (const o of m.options ?? []) {
    if (FLAG_OPTIONS[o] !== undefined) flags |= FLAG_OPTIONS[o];
    else if (!IGNORED_OPTIONS.has(o)) data.push(o);
  }
  return { flags, data };
}

/** Creates every missing directory of `path` inside the root (as mkdir -p would, inside it). */
export function mkdirInRoot(root: DirRef, path: string): void {
  let sofar = '';
  for (const part of path.split('/').filter(Boolean)) {
    sofar += `/${part}`;
    const name = Buffer.from(sofar);
    try {
      closeSync(openAt(root, name, O.PATH | O.DIRECTORY, 0, true));
      continue;
    } catch (err) {
      if (!(err instanceof WasiError) || err.errno !== E.NOENT) throw err;
    }
    const parent = parentOf(root, name);
    try {
      sys().mkdirat(parent.fd, parent.name, 0o755);
    } catch (err) {
      if (!(err instanceof WasiError) || err.errno !== E.EXIST) throw err;
    } finally {
      releaseParent(parent);
    }
  }
}

/** An fd of the mount point inside the root, made if missing: a directory, or an empty file for a file. */
function mountPoint(root: DirRef, destination: string, file: boolean): number {
  const dest = posix.normalize(`/${destination}`);
  if (!file) {
    mkdirInRoot(root, dest);
    return openAt(root, Buffer.from(dest), O.PATH | O.DIRECTORY, 0, true);
  }
  mkdirInRoot(root, posix.dirname(dest));
  return openAt(root, Buffer.from(dest), O.RDONLY | O.CREAT | O.NONBLOCK, 0o644, true);
}

function describe(err: unknown): string {
  return err instanceof WasiError ? `errno ${err.errno}` : err instanceof Error ? err.message : String(err);
}

/**
 * Mounts `mounts` (already filtered with guestMounts) under the root whose
 * descriptor is `rootFd`. On failure, what was mounted stays for the caller's
 * unmount of the whole tree (rootfs.ts unmountTree).
 */
export function mountGuestMounts(rootFd: number, mounts: readonly Mount[]): void {
  const root: DirRef = { fd: rootFd, mode: 'in-root' };
  for (const m of mounts) {
    const bind = isBindMount(m);
    let sourceIsFile = false;
    if (bind) {
      if (!m.source) throw new ConfigError(`mount ${m.destination}: a bind mount needs a source`, { kind: 'InvalidArgument' });
      try {
        sourceIsFile = !statSync(m.source).isDirectory();
      } catch (err) {
        throw new ConfigError(`mount ${m.destination}: source ${m.source}: ${(err as NodeJS.ErrnoException).code ?? describe(err)}`, { kind: 'InvalidArgument' });
      }
    }
    let fd: number;
    try {
      fd = mountPoint(root, m.destination, sourceIsFile);
    } catch (err) {
      throw new ConfigError(`mount ${m.destination}: cannot make the mount point inside the root (${describe(err)})`, { kind: 'InvalidArgument' });
    }
    const { flags, data } = splitOptions(m);
    try {
      if (bind) mount(m.source!, `/proc/self/fd/${fd}`, null, MS.BIND | ((m.options ?? []).includes('rbind') ? MS.REC : 0));
      else mount(m.source || m.type!, `/proc/self/fd/${fd}`, m.type!, flags, data.length > 0 ? data.join(',') : null);
    } finally {
      closeSync(fd);
    }
    // The descriptor names what lies under the new mount: look again, through it.
    const top = openAt(root, Buffer.from(posix.normalize(`/${m.destination}`)), O.PATH, 0, true);
    try {
      // Flags of a bind mount take effect only on a remount.
      if (bind && flags !== 0) mount(null, `/proc/self/fd/${top}`, null, MS.REMOUNT | MS.BIND | flags);
      mount(null, `/proc/self/fd/${top}`, null, MS.PRIVATE | MS.REC);
    } finally {
      closeSync(top);
    }
    log().debug({ destination: m.destination, type: m.type, source: m.source }, 'guest mount');
  }
}

/** Mount points below `root` (not `root` itself), deepest first, from /proc/self/mountinfo (octal escapes decoded). */
function mountsBelow(root: string): string[] {
  const prefix = `${root.replace(/\/$/, '')}/`;
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p.startsWith(prefix));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Unmounts what mountGuestMounts mounted below `rootfs` (lazily where busy). */
export function unmountGuestMounts(rootfs: string): void {
  for (let round = 0; round < 8; round++) {
    const points = mountsBelow(rootfs);
    if (points.length === 0) return;
    for (const p of points) {
      try {
        umount(p);
      } catch {
        try {
          umount(p, true);
        } catch (err) {
          log().warn({ err, mount: p }, 'cannot unmount a guest mount');
        }
      }
    }
  }
}
