// Private scratch directories for pulls, under the data root (same file
// system as the store, never /tmp): `<root>/registry-staging/<pid>-<start>-<rand>`.
// A pull downloads and verifies every blob here before the store sees any of
// them, so a pull that fails or is killed leaves the store untouched; the
// next pull removes directories whose owner process is gone.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from '../../log.js';

const NAME_RE = /^(\d+)-(\d+)-[0-9a-f]+$/;

export function stagingRoot(root: string): string {
  return join(root, 'registry-staging');
}

/** Start time of a process (clock ticks since boot), which tells a reused pid apart; undefined if it is gone. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Removes staging directories of processes that no longer exist (killed pulls). */
export async function sweepStaging(root: string): Promise<void> {
  const dir = stagingRoot(root);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = NAME_RE.exec(name);
    if (m && processStart(Number(m[1])) === m[2]) continue;
    log().info({ dir: join(dir, name) }, 'removing the staging directory of an interrupted pull');
    await rm(join(dir, name), { recursive: true, force: true });
  }
}

export async function makeStagingDir(root: string): Promise<string> {
  const parent = stagingRoot(root);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  const dir = join(parent, `${process.pid}-${processStart(process.pid) ?? 0}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  return dir;
}
