// How many CPUs this process may use: the cgroup's CPU quota, which
// os.availableParallelism() does not know (it counts the CPUs of the
// affinity mask, i.e. cpusets only). cgroup v2: cpu.max ("max 100000" or
// "QUOTA PERIOD"); v1: cpu.cfs_quota_us / cpu.cfs_period_us (-1: none).
// Every level from this process's cgroup up to the root counts (a parent's
// limit binds its children); inside a container, whose cgroupfs shows its
// own cgroup as the root, the files at the mount's root are its own.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { posix } from 'node:path';

export interface CgroupFs {
  /** Contents of /proc/self/cgroup. */
  selfCgroup(): string;
  /** A file under the cgroup mount (/sys/fs/cgroup), or undefined when it cannot be read. */
  read(path: string): string | undefined;
}

const hostFs: CgroupFs = {
  selfCgroup: () => readFileSync('/proc/self/cgroup', 'utf8'),
  read: (path) => {
    try {
      return readFileSync(posix.join('/sys/fs/cgroup', path), 'utf8');
    } catch {
      return undefined;
    }
  },
};

/** The directory and its ancestors, deepest first ("/a/b" → "/a/b", "/a", "/"). */
function upwards(dir: string): string[] {
  const out: string[] = [];
  for (let d = posix.normalize(dir); ; d = posix.dirname(d)) {
    out.push(d);
    if (d === '/' || d === '.') return out;
  }
}

/** CPUs the quota of one cgroup directory allows (fractional), or undefined for none. */
function quotaAt(fs: CgroupFs, dir: string, v2: boolean): number | undefined {
  if (v2) {
    const [quota, period] = (fs.read(posix.join(dir, 'cpu.max')) ?? '').trim().split(/\s+/);
    if (!quota || quota === 'max' || !period) return undefined;
    const q = Number(quota);
    const p = Number(period);
    return q > 0 && p > 0 ? q / p : undefined;
  }
  const q = Number((fs.read(posix.join(dir, 'cpu.cfs_quota_us')) ?? '').trim());
  const p = Number((fs.read(posix.join(dir, 'cpu.cfs_period_us')) ?? '').trim());
  return q > 0 && p > 0 ? q / p : undefined;
}

/** The CPU quota of this process's cgroups (fractional CPUs), or undefined when there is none. */
export function cgroupCpuQuota(fs: CgroupFs = hostFs): number | undefined {
  let self: string;
  try {
    self = fs.selfCgroup();
  } catch {
    return undefined;
  }
  const limits: number[] = [];
  for (const line of self.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (path === undefined || controllers === undefined) continue;
    const v2 = controllers === '';
    const ctrl = controllers.split(',');
    if (!v2 && !ctrl.includes('cpu')) continue;
    // v1 mounts the cpu controller as "cpu", "cpu,cpuacct" or "cpuacct,cpu".
    const mounts = v2 ? [''] : ['cpu', 'cpu,cpuacct', 'cpuacct,cpu'];
    for (const mount of mounts) {
      for (const dir of [...upwards(posix.join('/', mount, path)), posix.join('/', mount)]) {
        const q = quotaAt(fs, dir, v2);
        if (q !== undefined) limits.push(q);
      }
    }
  }
  return limits.length > 0 ? Math.min(...limits) : undefined;
}

/** Handler threads by default: the CPUs the cgroup allows (rounded up), at most the CPUs of the affinity mask, at least 1. */
export function defaultHandlerThreads(fs: CgroupFs = hostFs, cpus: number = availableParallelism()): number {
  const quota = cgroupCpuQuota(fs);
  return Math.max(1, Math.min(cpus, quota === undefined ? cpus : Math.ceil(quota)));
}
