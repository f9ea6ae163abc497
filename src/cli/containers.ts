// The containers of `tugboat run`: `<root>/containers/<id>/`, and who owns
// each one. Whatever runs a container (runc today, the calling process for
// `--isolation process`) goes through the same claim, record and collection:
//
//   runner.lock      flock(2)ed exclusively by the `tugboat run` that made the
//                    container, for its whole life, and released by the kernel
//                    however it ends; it holds that process's pid and start time
//   container.json   the record: image, workload, --rm, and once the runner saw
//                    the container end, its exit status
//
// A name is claimed atomically: the directory is made (lock taken, file
// written) in the data root's temp space and renamed into place, so two runs
// of one name cannot both get it and nobody ever sees a claimed directory
// without its held lock. Each run then removes only what it made.
//
// A container whose runner is gone (killed, crashed) is `dead` in `tugboat
// ps`. `tugboat rm` collects it; so does the next run of that name when the
// container no longer runs; and one made with --rm is stopped and removed by
// the next command that writes to the store, or at once by the run's watcher
// (run-lifecycle.ts). Collecting takes the runner's lock, so two collectors,
// or a collector and a new run of the name, never act at once.
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError, RuntimeError, UsageError } from '../errors.js';
import { undoOnInterrupt } from '../interrupt.js';
import { log } from '../log.js';
import { isAlive, processStartTime } from '../owner.js';
import { privateDir } from '../oci/data-root.js';
import { lockFileWithin, tryLockFile, type FileLock } from '../oci/file-lock.js';
import { writeFileAtomic } from '../oci/image-writer.js';
import { checkContainerId, isValidContainerId } from '../oci/names.js';
import { makeTempDir } from '../oci/temp-space.js';
import { removeContainerDir, removeContainerDirSync, unmountContainerRootfs } from '../linux-runtime/overlay.js';
import { runcFor, runcRoot, type Paths } from './paths.js';

export const RUNNER_LOCK = 'runner.lock';
const RECORD = 'container.json';

/** container.json */
export interface ContainerRecord {
  id: string;
  image: string;
  digest: string;
  platform: string;
  workload: string;
  reason: string;
  created: string;
  /** Made with --rm: removed when it ends, stopped and removed when its runner dies. */
  rm?: boolean;
  /** Set by the runner once it saw the container end. */
  exitCode?: number;
  finished?: string;
}

/** What became of the `tugboat run` that made a container. */
export type RunnerState = 'alive' | 'ended' | 'dead' | 'unknown';

export function containersDir(root: string): string {
  return join(root, 'containers');
}

export function containerDir(root: string, id: string, what = 'container'): string {
  return join(containersDir(root), checkContainerId(id, what));
}

export async function readRecord(dir: string): Promise<ContainerRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, RECORD), 'utf8')) as ContainerRecord;
  } catch {
    return undefined;
  }
}

/** Writes the record in one rename (a kill never leaves half of one). */
export async function writeRecord(dir: string, record: ContainerRecord): Promise<void> {
  await writeFileAtomic(join(dir, RECORD), JSON.stringify(record, null, 2), 0o600);
}

/** True when the open `fd` is still the file at `path` (it was not removed or replaced meanwhile). */
function isFileAt(fd: number, path: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = statSync(path);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** The runner's pid and start time, as its lock file says. */
function runnerOf(dir: string): { pid: number; start: string } | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(join(dir, RUNNER_LOCK), 'r');
    const buf = Buffer.alloc(64);
    const text = buf.subarray(0, readSync(fd, buf)).toString('utf8');
    const m = /^(\d+) (\d+)\n/.exec(text);
    return m ? { pid: Number(m[1]), start: m[2]! } : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Whether the container's runner still runs (a shared lock for an instant: never in a runner's way). */
export function runnerState(dir: string, record: ContainerRecord | undefined): RunnerState {
  const lockPath = join(dir, RUNNER_LOCK);
  if (!existsSync(lockPath)) return 'unknown'; // made by a version before runner locks
  const probe = tryLockFile(lockPath, 'shared', false);
  if (!probe) return existsSync(lockPath) ? 'alive' : 'unknown';
  probe.release();
  return record?.exitCode !== undefined ? 'ended' : 'dead';
}

/** A container name this process holds, from the claim until `remove` or `keep`. */
export class ContainerClaim {
  private forgetUndo: (() => void) | undefined;

  private constructor(
    readonly id: string,
    readonly dir: string,
    private readonly lock: FileLock,
  ) {
    // Interrupted before the container runs: everything in its directory (mount included) is ours to remove.
    this.forgetUndo = undoOnInterrupt(() => removeContainerDirSync(dir));
  }

  /**
   * Claims `id` under `paths.root`. A name in use is AlreadyExists, unless
   * the container there is dead and no longer runs: then it is collected
   * first, and the name taken.
   */
  static async claim(paths: Paths, id: string): Promise<ContainerClaim> {
    const dir = containerDir(paths.root, id, '--name');
    await privateDir(containersDir(paths.root));
    const temp = await makeTempDir(paths.root, 'claim');
    // A fresh file: nobody else can hold its lock.
    const lock = tryLockFile(join(temp.path, RUNNER_LOCK), 'exclusive')!;
    try {
      writeSync(lock.fd, `${process.pid} ${processStartTime(process.pid) ?? 0}\n`);
      for (let attempt = 0; ; attempt++) {
        try {
          await rename(temp.path, dir);
          return new ContainerClaim(id, dir, lock);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
          if (attempt > 0 || !(await collectDead(paths, id, 'a new run of its name'))) {
            throw new UsageError(`container name ${id} is already in use (tugboat rm ${id})`, { kind: 'AlreadyExists' });
          }
        }
      }
    } catch (err) {
      lock.release();
      throw err;
    } finally {
      // Renamed into place, or removed: either way nothing of it is left in the temp space.
      await temp.remove();
    }
  }

  /** The container runs now: from here a signal is the container's, and `remove` or `keep` cleans up. */
  started(): void {
    this.forgetUndo?.();
    this.forgetUndo = undefined;
  }

  /** Removes the container (unmount, files) and lets go of the name. */
  async remove(): Promise<void> {
    await removeContainerDir(this.dir);
    this.started();
    this.lock.release();
  }

  /** Keeps the container (unmounted), with its exit status in the record, and lets go of the name. */
  async keep(exitCode: number): Promise<void> {
    await unmountContainerRootfs(this.dir);
    const record = await readRecord(this.dir);
    if (record) await writeRecord(this.dir, { ...record, exitCode, finished: new Date().toISOString() });
    this.started();
    this.lock.release();
  }
}

/** Whether runc still has container `id` (its state dir exists). */
function runcHas(paths: Paths, id: string): boolean {
  return existsSync(join(runcRoot(paths), id));
}

/** Stops (SIGKILL) and deletes the container's runc state if any, then removes its directory. */
async function collect(paths: Paths, id: string, dir: string, why: string): Promise<void> {
  log().info({ id, why }, 'removing a container whose tugboat run is gone');
  if (runcHas(paths, id)) await runcFor(paths).delete(id, { force: true }).catch((err: unknown) => log().debug({ err }, 'runc delete'));
  await removeContainerDir(dir);
}

async function runcStatus(paths: Paths, id: string): Promise<string | undefined> {
  if (!runcHas(paths, id)) return undefined;
  return (await runcFor(paths).state(id).catch(() => undefined))?.status;
}

const ACTIVE = new Set(['creating', 'created', 'running', 'paused']);

/**
 * Runs `fn` holding the runner lock of container `id` when its runner is
 * gone (waiting briefly: a `ps` may be probing it); undefined when the runner
 * is alive, or the container is gone or predates runner locks.
 */
async function withDeadRunner<T>(paths: Paths, id: string, fn: (dir: string, record: ContainerRecord | undefined) => Promise<T>, waitMs = 250): Promise<T | undefined> {
  const dir = containerDir(paths.root, id);
  const lockPath = join(dir, RUNNER_LOCK);
  const lock = await lockFileWithin(lockPath, 'exclusive', `container ${id}`, waitMs);
  if (!lock) return undefined;
  try {
    // The directory may have been removed, and the name claimed anew, while we waited.
    if (!isFileAt(lock.fd, lockPath)) return undefined;
    return await fn(dir, await readRecord(dir));
  } finally {
    lock.release();
  }
}

/**
 * Collects container `id` if its runner died and it no longer runs (one made
 * with --rm is stopped); a container that ended normally is kept. True when
 * the name is free now.
 */
async function collectDead(paths: Paths, id: string, why: string): Promise<boolean> {
  const freed = await withDeadRunner(paths, id, async (dir, record) => {
    if (record?.exitCode !== undefined && !record.rm) return false;
    if (!record?.rm && ACTIVE.has((await runcStatus(paths, id)) ?? '')) return false;
    await collect(paths, id, dir, why);
    return true;
  });
  return freed ?? !existsSync(containerDir(paths.root, id));
}

/**
 * The sweep at the start of a command that writes: stops and removes every
 * container made with --rm whose runner died, and every container whose
 * runner died before its record was written (it never ran). Returns their names.
 */
export async function collectDeadContainers(paths: Paths): Promise<string[]> {
  const collectedIds: string[] = [];
  for (const id of await readdir(containersDir(paths.root)).catch(() => [] as string[])) {
    if (!isValidContainerId(id)) continue;
    // One try: a runner, or another command's sweep, holds the lock: not ours to collect.
    const collected = await withDeadRunner(
      paths,
      id,
      async (dir, record) => {
        if (record && !record.rm) return false;
        await collect(paths, id, dir, record ? 'its --rm run was killed' : 'its run was killed before it started');
        return true;
      },
      0,
    );
    if (collected) collectedIds.push(id);
  }
  return collectedIds;
}

export interface ContainerRow {
  id: string;
  image: string;
  workload: string;
  created: string;
  status: string;
}

export async function listContainers(paths: Paths): Promise<ContainerRow[]> {
  const states = new Map((await runcFor(paths).list().catch(() => [])).map((s) => [s.id, s.status]));
  const out: ContainerRow[] = [];
  for (const id of await readdir(containersDir(paths.root)).catch(() => [] as string[])) {
    if (!isValidContainerId(id)) continue;
    const dir = containerDir(paths.root, id);
    const record = await readRecord(dir);
    const runner = runnerState(dir, record);
    let status: string;
    if (runner === 'alive') status = states.get(id) ?? 'creating';
    else if (runner === 'ended') status = `exited (${record!.exitCode})`;
    else if (runner === 'dead') status = 'dead';
    else status = record ? (states.get(id) ?? 'exited') : 'broken';
    out.push({ id, image: record?.image ?? '?', workload: record?.workload ?? '?', created: record?.created ?? '?', status });
  }
  return out;
}

/** Waits this long for a live runner to stop after `rm --force` stopped its container. */
const RUNNER_STOP_MS = 30_000;

/**
 * `tugboat rm`: a container whose runner ended or died is removed (one that
 * still runs needs `force`); one whose runner is alive needs `force`, which
 * stops the container (or, while it is being created, its runner, with
 * SIGTERM) and lets the runner finish before the rest is removed.
 */
export async function removeContainer(paths: Paths, id: string, force: boolean): Promise<void> {
  const dir = containerDir(paths.root, id, 'rm');
  if (!existsSync(dir)) throw new NotFoundError(`container ${id} not found`);
  if (!existsSync(join(dir, RUNNER_LOCK))) return removeUnlocked(paths, id, dir, force);

  const remove = (why: string) => async (d: string) => {
    const status = await runcStatus(paths, id);
    if (status !== undefined && ACTIVE.has(status) && !force) {
      throw new UsageError(`container ${id} is ${status} (its tugboat run is gone); use rm --force`, { kind: 'FailedPrecondition' });
    }
    await collect(paths, id, d, why);
    return true;
  };
  if (await withDeadRunner(paths, id, remove('tugboat rm'))) return;
  if (!existsSync(dir)) return; // its runner finished (--rm) meanwhile

  // Its runner is alive: it stops when its container does.
  const status = await runcStatus(paths, id);
  if (status !== 'stopped') {
    if (!force) throw new UsageError(`container ${id} is ${status ?? 'being created'}; stop it first or use --force`, { kind: 'FailedPrecondition' });
    if (status !== undefined) {
      await runcFor(paths).kill(id, 'KILL', { all: true }).catch((err: unknown) => log().debug({ err }, 'runc kill'));
    } else {
      // Not running yet: its runner undoes what it made on SIGTERM.
      const runner = runnerOf(dir);
      if (runner && isAlive(runner)) process.kill(runner.pid, 'SIGTERM');
    }
  }
  if (await withDeadRunner(paths, id, remove('tugboat rm --force'), RUNNER_STOP_MS)) return;
  if (!existsSync(dir)) return;
  throw new RuntimeError(`container ${id}: its tugboat run did not stop within ${RUNNER_STOP_MS / 1000} s`);
}

/** A container made by a version before runner locks: runc alone says whether it runs. */
async function removeUnlocked(paths: Paths, id: string, dir: string, force: boolean): Promise<void> {
  const runc = runcFor(paths);
  const state = await runc.state(id).catch(() => undefined);
  if (state && state.status !== 'stopped' && !force) {
    throw new UsageError(`container ${id} is ${state.status}; stop it first or use --force`, { kind: 'FailedPrecondition' });
  }
  if (state) await runc.delete(id, { force: true });
  await removeContainerDir(dir);
}
