// Temp space under the data root, never /tmp: a command's temp files live on
// the store's own file system (so they rename into place and count against
// the store's disk, not a tmpfs), in private directories, named after their
// owner (src/owner.ts). What an interrupted command made is undone on the
// signal (src/interrupt.ts); what a killed one left is swept by the start of
// the next command that writes (sweepTempSpace below).
//
//   <root>/tmp/<purpose>-<pid>-<start>-<rand>/       archive contents, pull staging, container claims
//   <root>/rootfs/<hex>.tmp-<pid>-<start>-<rand>/    an unpack in progress
//   <root>/images/blobs/sha256/<hex>.tmp-…          an import's blobs, before they are verified
//   <root>/images/<file>.tmp-…                      index.json being replaced
//   <root>/components/.tmp-…, .old-…                a transpile in progress, a stale entry on its way out
import { rmSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { undoOnInterrupt } from '../interrupt.js';
import { log } from '../log.js';
import { ownedName, ownerGone, processStartTime } from '../owner.js';
import { PRIVATE_DIR_MODE } from './data-root.js';

export function tempSpace(root: string): string {
  return join(root, 'tmp');
}

export interface TempDir {
  readonly path: string;
  /** Removes the directory; idempotent. */
  remove(): Promise<void>;
}

/**
 * Removes `path` (recursively) when the command is interrupted, until the
 * returned function says it has been committed or removed.
 */
export function removeOnInterrupt(path: string): () => void {
  return undoOnInterrupt(() => rmSync(path, { recursive: true, force: true, maxRetries: 3 }));
}

/** A new private directory `<parent>/<purpose>-<owner>-<rand>`, removed on an interruption. */
export async function makeOwnedDir(parent: string, purpose: string): Promise<TempDir> {
  await mkdir(parent, { recursive: true, mode: PRIVATE_DIR_MODE });
  const path = join(parent, ownedName(`${purpose}-`));
  await mkdir(path, { mode: PRIVATE_DIR_MODE });
  const forget = removeOnInterrupt(path);
  return {
    path,
    async remove(): Promise<void> {
      await rm(path, { recursive: true, force: true, maxRetries: 3 });
      forget();
    },
  };
}

/** A private temp dir under the data root (`<root>/tmp/…`). */
export function makeTempDir(root: string, purpose: string): Promise<TempDir> {
  return makeOwnedDir(tempSpace(root), purpose);
}

/** Removes the entries of `dir` that `re` matches and whose owner is gone (each a file or a directory tree). */
async function sweepOwned(dir: string, re: RegExp, what: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!re.test(name) || !ownerGone(name)) continue;
    log().info({ path: join(dir, name) }, `removing ${what} of a command that was killed`);
    await rm(join(dir, name), { recursive: true, force: true, maxRetries: 3 });
    n++;
  }
  return n;
}

const OWNED = '\\d+-\\d+-[0-9a-f]{8}';
const HEX_TMP = new RegExp(`^[0-9a-f]{64}\\.tmp-${OWNED}$`);
const COMPONENT_TMP = new RegExp(`^\\.(?:tmp|old)-${OWNED}$`);

/** Builds before the owner tags (src/owner.ts) named the cgroup `tugboat-transpile-<pid>-<rand>`, without a start time: gone when the pid is. */
function legacyOwnerGone(name: string): boolean {
  const m = /^tugboat-transpile-(\d+)-[0-9a-f]{8}$/.exec(name);
  return m !== null && processStartTime(Number(m[1])) === undefined;
}

/**
 * Memory cgroups of transpiling children (component-cache.ts) whose parent
 * is gone: a child still in one is killed (it would only write into a temp
 * dir that is removed anyway), then the cgroup is removed.
 */
async function sweepTranspileCgroups(): Promise<number> {
  let n = 0;
  for (const parent of ['/sys/fs/cgroup/memory', '/sys/fs/cgroup']) {
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      if (!name.startsWith('tugboat-transpile-') || !(ownerGone(name) || legacyOwnerGone(name))) continue;
      const dir = join(parent, name);
      const procs = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const pid of procs.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone already
        }
      }
      for (let i = 0; i < 50; i++) {
        if (await rmdir(dir).then(() => true, (err: NodeJS.ErrnoException) => err.code === 'ENOENT')) {
          n++;
          break;
        }
        await sleep(10);
      }
    }
  }
  return n;
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * What versions before this one left when killed, in names without an owner:
 * archive dirs in the system temp dir (`tugboat-archive-*`), unpacks and
 * blobs (`<hex>.tmp-<12 hex>`), transpile dirs (`.tmp-<16 hex>-<12 hex>`).
 * Their owner is unknown, so only entries of this user untouched for a day go.
 */
async function sweepStale(dir: string, re: RegExp, what: string): Promise<number> {
  const uid = process.geteuid?.();
  let n = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!re.test(name)) continue;
    const st = await lstat(join(dir, name)).catch(() => undefined);
    if (!st || st.isSymbolicLink() || st.uid !== uid || Date.now() - st.mtimeMs < DAY_MS) continue;
    log().info({ path: join(dir, name) }, `removing ${what} an older version left`);
    await rm(join(dir, name), { recursive: true, force: true });
    n++;
  }
  return n;
}

const LEGACY_HEX_TMP = /^[0-9a-f]{64}\.tmp-[0-9a-f]{12}$/;

/**
 * Removes what killed commands left in the data root: temp dirs, partial
 * unpacks and blobs, half-written index files, transpile dirs, pull staging
 * (also at its older place, `<root>/registry-staging/`), and the memory
 * cgroups of transpiles; never anything whose owner still runs. Also what
 * older versions left (sweepStale). Returns how many entries were removed.
 */
export async function sweepTempSpace(root: string): Promise<number> {
  // Orphaned transpilers first: they write into a transpile dir removed below.
  const cgroups = await sweepTranspileCgroups();
  const counts = await Promise.all([
    sweepOwned(tempSpace(root), new RegExp(`-${OWNED}$`), 'a temp dir'),
    sweepOwned(join(root, 'rootfs'), HEX_TMP, 'a partial unpack'),
    sweepOwned(join(root, 'images', 'blobs', 'sha256'), HEX_TMP, 'a partial blob'),
    sweepOwned(join(root, 'images'), new RegExp(`\\.tmp-${OWNED}$`), 'a half-written file'),
    sweepComponentTemp(join(root, 'components')),
    sweepOwned(join(root, 'registry-staging'), new RegExp(`^${OWNED}$`), 'the staging dir of a pull'),
    sweepStale(tmpdir(), /^tugboat-archive-/, 'an archive dir'),
    sweepStale(join(root, 'rootfs'), LEGACY_HEX_TMP, 'a partial unpack'),
    sweepStale(join(root, 'images', 'blobs', 'sha256'), LEGACY_HEX_TMP, 'a partial blob'),
    sweepStale(join(root, 'components'), /^\.(?:tmp|old)-[0-9a-f]{16}-[0-9a-f]{12}$/, 'a transpile dir'),
  ]);
  return counts.reduce((a, b) => a + b, cgroups);
}

/** The sweep of one component cache dir (the shim and the OCI CLI transpile into the default root's). */
export function sweepComponentTemp(cacheDir: string): Promise<number> {
  return sweepOwned(cacheDir, COMPONENT_TMP, 'a transpile dir');
}
