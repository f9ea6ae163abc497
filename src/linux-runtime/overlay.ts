// A container's writable root: an overlay of the shared, read-only unpacked
// image and a private upper dir, so starting a container copies nothing and
// the image cache is never modified. Falls back to a plain copy where overlayfs
// is not available (e.g. inside another overlay).
import { execFile, execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RuntimeError } from '../errors.js';
import { log } from '../log.js';

const run = promisify(execFile);

export interface RootfsMount {
  target: string;
  kind: 'overlay' | 'copy';
}

export async function mountContainerRootfs(imageRootfs: string, containerDir: string): Promise<RootfsMount> {
  const target = join(containerDir, 'rootfs');
  const upper = join(containerDir, 'upper');
  const work = join(containerDir, 'work');
  await Promise.all([mkdir(target, { recursive: true }), mkdir(upper, { recursive: true }), mkdir(work, { recursive: true })]);
  try {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${imageRootfs},upperdir=${upper},workdir=${work}`, target]);
    return { target, kind: 'overlay' };
  } catch (err) {
    log().info({ err: (err as Error).message }, 'overlayfs unavailable; copying the image rootfs');
  }
  try {
    await run('cp', ['-a', '--reflink=auto', `${imageRootfs}/.`, target]);
  } catch (err) {
    throw new RuntimeError(`cannot prepare container rootfs: ${(err as Error).message}`);
  }
  return { target, kind: 'copy' };
}

/** umount's way of saying there was nothing to unmount. */
function notMounted(err: unknown): boolean {
  const msg = String((err as { stderr?: string | Buffer }).stderr ?? (err as Error).message);
  return /not mounted|no mount point|not found/i.test(msg);
}

/** Unmounts (if mounted) and leaves the directory in place; tolerant of "not mounted". */
export async function unmountContainerRootfs(containerDir: string): Promise<void> {
  const target = join(containerDir, 'rootfs');
  try {
    await run('umount', [target]);
  } catch (err) {
    // Lazy detach as a last resort so that removal below cannot hit a busy mount.
    if (!notMounted(err)) await run('umount', ['-l', target]).catch(() => undefined);
  }
}

export async function removeContainerDir(containerDir: string): Promise<void> {
  await unmountContainerRootfs(containerDir);
  await rm(containerDir, { recursive: true, force: true });
}

/** removeContainerDir, synchronously: for a command cleaning up on a signal (src/interrupt.ts). */
export function removeContainerDirSync(containerDir: string): void {
  const target = join(containerDir, 'rootfs');
  try {
    execFileSync('umount', [target], { stdio: 'pipe' });
  } catch (err) {
    if (!notMounted(err)) {
      try {
        execFileSync('umount', ['-l', target], { stdio: 'pipe' });
      } catch {
        // nothing more to try; rm below removes what it can
      }
    }
  }
  rmSync(containerDir, { recursive: true, force: true, maxRetries: 3 });
}
