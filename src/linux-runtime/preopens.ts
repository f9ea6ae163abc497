// Extra directories for Wasm guests: the `io.tugboat.wasm.preopens`
// annotation, `GUEST=CONTAINER[:ro]` entries separated by commas
// (`/data=/mnt/data:ro,/scratch=/tmp`), both paths absolute. The guest sees
// CONTAINER (a directory of its container) under the name GUEST.
//
// node:wasi cannot refuse writes below a preopen, so at `container` level a
// read-only preopen is made read-only by the kernel: the directory is
// bind-mounted read-only onto itself in the derived spec (or, when a mount of
// the caller's already sits exactly there, that mount gets `ro`).
import { statSync } from 'node:fs';
import { posix, relative } from 'node:path';
import { UsageError } from '../errors.js';
import type { Mount, Spec } from '../oci/runtime-spec.js';
import { resolveInRoot } from '../oci/scoped-path.js';
import type { Preopen } from '../wasi-host/guest-config.js';

export const PREOPENS_ANNOTATION = 'io.tugboat.wasm.preopens';

const SYNTAX = 'expected GUEST=CONTAINER[:ro], both absolute, comma-separated';

function bad(entry: string, why: string): UsageError {
  return new UsageError(`annotation ${PREOPENS_ANNOTATION}: ${why} in ${JSON.stringify(entry)} (${SYNTAX})`);
}

function absolutePath(entry: string, what: string, p: string): string {
  if (!p.startsWith('/')) throw bad(entry, `${what} path ${JSON.stringify(p)} is not absolute`);
  if (p.includes('\0')) throw bad(entry, `${what} path contains NUL`);
  if (p.split('/').includes('..')) throw bad(entry, `${what} path ${JSON.stringify(p)} contains ".."`);
  return posix.normalize(p).replace(/(.)\/$/, '$1');
}

/** The annotation's entries, in order; a bad entry is a UsageError naming it. */
export function parsePreopens(value: string | undefined): Preopen[] {
  if (value === undefined || value.trim() === '') return [];
  const out: Preopen[] = [];
  const seen = new Set<string>();
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') throw bad(value, 'empty entry');
    const eq = entry.indexOf('=');
    if (eq <= 0) throw bad(entry, 'no "="');
    let container = entry.slice(eq + 1);
    let readonly = false;
    const mode = /:(ro|rw)$/.exec(container);
    if (mode) {
      readonly = mode[1] === 'ro';
      container = container.slice(0, -3);
    }
    const guest = absolutePath(entry, 'guest', entry.slice(0, eq));
    const path = absolutePath(entry, 'container', container);
    if (guest === '/') throw bad(entry, 'the guest path "/" is always the container root');
    if (seen.has(guest)) throw bad(entry, `guest path ${guest} given twice`);
    seen.add(guest);
    out.push({ guest, path, ...(readonly ? { readonly: true } : {}) });
  }
  return out;
}

function isBind(m: Mount): boolean {
  return m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

function isDirectory(hostPath: string | undefined): boolean {
  if (hostPath === undefined) return false;
  try {
    return statSync(hostPath).isDirectory();
  } catch {
    return false;
  }
}

/** The mount whose destination is `path` or its nearest ancestor (the last one wins, as it is mounted last). */
function coveringMount(mounts: readonly Mount[], path: string): { index: number; rest: string } | undefined {
  let best: { index: number; rest: string; len: number } | undefined;
  mounts.forEach((m, index) => {
    const dest = posix.normalize(m.destination).replace(/(.)\/$/, '$1');
    const rest = path === dest ? '' : dest === '/' ? path.slice(1) : path.startsWith(`${dest}/`) ? path.slice(dest.length + 1) : undefined;
    if (rest !== undefined && (!best || dest.length >= best.len)) best = { index, rest, len: dest.length };
  });
  return best && { index: best.index, rest: best.rest };
}

/**
 * Checks that every preopened directory exists where it can be seen from
 * outside (the root filesystem or a bind mount's source), and makes the
 * read-only ones read-only for the kernel. `rootfs` is the container root on
 * the host. Paths are resolved inside their root or mount source, never
 * following a link out of it.
 */
export function withPreopenMounts(spec: Spec, rootfs: string, preopens: readonly Preopen[]): Spec {
  const mounts = [...(spec.mounts ?? [])];
  for (const p of preopens) {
    const what = `${PREOPENS_ANNOTATION}: ${p.guest}=${p.path}`;
    if (p.readonly && p.path === '/') throw new UsageError(`${what}: the whole root cannot be a read-only preopen (make the root filesystem read-only instead)`);
    const covering = coveringMount(mounts, p.path);
    if (covering) {
      const m = mounts[covering.index]!;
      if (covering.rest === '') {
        // The caller mounted something exactly there (a volume): make that mount read-only.
        if (p.readonly) mounts[covering.index] = { ...m, options: [...(m.options ?? []).filter((o) => o !== 'rw' && o !== 'ro'), 'ro'] };
        continue;
      }
      if (!isBind(m) || m.source === undefined) {
        if (p.readonly) throw new UsageError(`${what}: cannot be made read-only inside the ${m.type ?? 'non-bind'} mount at ${m.destination}`);
        continue; // its content appears only when the container starts
      }
      const host = resolveInRoot(m.source, covering.rest);
      if (!isDirectory(host)) throw new UsageError(`${what}: ${p.path} is not a directory in the container`);
      if (p.readonly) mounts.push(readonlyBind(host!, posix.join(m.destination, relative(m.source, host!))));
      continue;
    }
    const host = resolveInRoot(rootfs, p.path);
    if (!isDirectory(host)) throw new UsageError(`${what}: ${p.path} is not a directory in the container`);
    // A link inside the root may lead elsewhere in it: mount where it leads, as runc would.
    if (p.readonly) mounts.push(readonlyBind(host!, `/${relative(rootfs, host!)}`));
  }
  return { ...spec, mounts };
}

function readonlyBind(source: string, destination: string): Mount {
  return { destination, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev'] };
}
