// The data root (`--root`, default /var/lib/tugboat) holds unpacked images
// with their setuid binaries and world-writable directories, image blobs,
// container bundles with their environment, and runc state. None of it may be
// reachable by another local user (Moby's CVE-2021-41091 is the same class):
// the root and every directory directly below it are 0700, owned by the user
// running Tugboat. Created so, and repaired so on the start of every command
// that writes, because stores made by older versions were 0755.
import { chmod, lstat, mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TugboatError } from '../errors.js';

export const PRIVATE_DIR_MODE = 0o700;

/** The directories directly below the root; each is made private when it exists. */
export const DATA_ROOT_DIRS = ['images', 'rootfs', 'containers', 'components', 'runc', 'locks', 'tmp'] as const;

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/**
 * Creates `root` (its parents as usual, itself 0700) or repairs an existing
 * one, and refuses a root that another user owns (they could change anything
 * in it under us).
 */
export async function prepareDataRoot(root: string): Promise<void> {
  await mkdir(dirname(root), { recursive: true });
  await mkdir(root, { mode: PRIVATE_DIR_MODE }).catch((err: unknown) => {
    if (code(err) !== 'EEXIST') throw err;
  });
  // Followed: a root that is a link to a bigger disk is common and fine.
  const st = await stat(root);
  if (!st.isDirectory()) throw new TugboatError(`data root ${root} is not a directory`);
  const uid = process.geteuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new TugboatError(`data root ${root} is owned by uid ${st.uid}, not by this user (uid ${uid}); refusing to use it`);
  }
  await chmod(root, PRIVATE_DIR_MODE);
  await Promise.all(
    DATA_ROOT_DIRS.map(async (name) => {
      const dir = join(root, name);
      // Never chmod through a link: only our own directories are repaired.
      const sub = await lstat(dir).catch(() => undefined);
      if (sub?.isDirectory() && (sub.mode & 0o777) !== PRIVATE_DIR_MODE) await chmod(dir, PRIVATE_DIR_MODE);
    }),
  );
}

/** A directory below the root, created private (the root itself must be prepared first). */
export async function privateDir(path: string): Promise<string> {
  await mkdir(path, { recursive: true, mode: PRIVATE_DIR_MODE });
  return path;
}
