// The directories a guest starts with, opened beneath its root: shared by
// the preview1 Guest and wasi:filesystem's preopens (../p2/).
import type { Preopen } from '../guest-config.js';
import { errnoName, WasiError } from './errno.js';
import { openAt, type DirRef } from './resolve.js';
import { O, sys } from './sys.js';

export interface OpenedPreopen {
  preopen: Preopen;
  /** The directory itself (for stat, readdir, …). */
  fd: number;
  /** What the guest's paths are resolved against. */
  ref: DirRef;
}

/**
 * Opens each preopen's directory inside the root `rootFd` (a container root:
 * IN_ROOT, so no path in the configuration can lead out of it either). "/"
 * resolves like the container's root, so absolute links in the image stay in
 * it; "." is the working directory resolved from that root, so "../x" works
 * as in a container and stays inside; anything else is confined beneath
 * itself. On failure nothing stays open.
 */
export function openPreopens(rootFd: number, preopens: readonly Preopen[]): OpenedPreopen[] {
  const rootRef: DirRef = { fd: rootFd, mode: 'in-root' };
  const out: OpenedPreopen[] = [];
  try {
    for (const p of preopens) {
      let fd: number;
      try {
        fd = openAt(rootRef, Buffer.from(p.path), O.RDONLY | O.DIRECTORY, 0, true);
      } catch (err) {
        throw new Error(`cannot open ${p.path} (the guest's ${p.guest}): ${err instanceof WasiError ? errnoName(err.errno) : (err as Error).message}`);
      }
      const ref: DirRef =
        p.guest === '/' ? { fd, mode: 'in-root' }
        : p.guest === '.' ? { fd: rootFd, mode: 'in-root', prefix: Buffer.from(p.path) }
        : { fd, mode: 'beneath' };
      out.push({ preopen: p, fd, ref });
    }
  } catch (err) {
    for (const o of out) sys().close(o.fd);
    throw err;
  }
  return out;
}

/** A directory of the host, outside the guest's root (`tugboat run -v` at `process` level): a descriptor the caller holds. */
export interface HostDir {
  guest: string;
  fd: number;
  readonly?: boolean;
}

/**
 * Every directory a guest starts with, in registration order: the root's
 * preopens, then the host directories (duplicates of the caller's
 * descriptors, confined beneath themselves), then "." last (wasi-libc
 * resolves relative paths against the last preopen that matches). On failure
 * nothing stays open.
 */
export function openGuestDirs(rootFd: number, preopens: readonly Preopen[], hostDirs: readonly HostDir[] = []): OpenedPreopen[] {
  const dot = preopens.findIndex((p) => p.guest === '.');
  const out: OpenedPreopen[] = [];
  try {
    out.push(...openPreopens(rootFd, dot < 0 ? preopens : preopens.slice(0, dot)));
    for (const d of hostDirs) {
      const fd = sys().dup(d.fd);
      out.push({ preopen: { guest: d.guest, path: d.guest, readonly: d.readonly === true }, fd, ref: { fd, mode: 'beneath' } });
    }
    if (dot >= 0) out.push(...openPreopens(rootFd, preopens.slice(dot)));
  } catch (err) {
    for (const o of out) sys().close(o.fd);
    throw err;
  }
  return out;
}
