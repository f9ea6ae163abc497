// Resolves a path inside a root directory the way the kernel would after
// chroot(root): symlinks are followed, but an absolute target or a ".." can
// never leave the root. Used to look at an image's files from outside the
// container without being led onto the host by a hostile link.
import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';

const MAX_SYMLINK_HOPS = 40;

/** Returns the host path of `path` (absolute, container view) or undefined when it does not exist or loops. */
export function resolveInRoot(root: string, path: string): string | undefined {
  let pending = posix.normalize(`/${path}`).split('/').filter(Boolean);
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const host = posix.join(root, ...resolved, part);
    let st;
    try {
      st = lstatSync(host);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) return undefined;
      const target = readlinkSync(host);
      if (target.startsWith('/')) resolved.length = 0;
      pending = [...target.split('/').filter(Boolean), ...pending];
      continue;
    }
    resolved.push(part);
  }
  return posix.join(root, ...resolved);
}
