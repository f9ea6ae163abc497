// A container's cgroup, read from its files: the metrics containerd's Task
// Stats reports (io.containerd.cgroups.v1.Metrics on a v1 or hybrid host,
// v2.Metrics on a unified one) and the OOM-kill counter behind TaskOOM.
// Plain data in the shape of those messages (field for field); the shim
// packs them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NotFoundError } from '../errors.js';

/** io.containerd.cgroups.v1.MemoryStat field → memory.stat key. */
const V1_MEMORY = {
  cache: 'cache',
  rss: 'rss',
  rssHuge: 'rss_huge',
  mappedFile: 'mapped_file',
  dirty: 'dirty',
  writeback: 'writeback',
  pgPgIn: 'pgpgin',
  pgPgOut: 'pgpgout',
  pgFault: 'pgfault',
  pgMajFault: 'pgmajfault',
  inactiveAnon: 'inactive_anon',
  activeAnon: 'active_anon',
  inactiveFile: 'inactive_file',
  activeFile: 'active_file',
  unevictable: 'unevictable',
  hierarchicalMemoryLimit: 'hierarchical_memory_limit',
  hierarchicalSwapLimit: 'hierarchical_memsw_limit',
  totalCache: 'total_cache',
  totalRss: 'total_rss',
} as const;

type V1MemoryStat = { [K in keyof typeof V1_MEMORY]: bigint };

interface PidsStat {
  current: bigint;
  limit: bigint;
}

export interface CgroupV1Metrics {
  pids?: PidsStat;
  cpu?: {
    usage: { total: bigint; user: bigint; kernel: bigint; perCpu: bigint[] };
    throttling: { periods: bigint; throttledPeriods: bigint; throttledTime: bigint };
  };
  memory?: V1MemoryStat & { usage: { usage: bigint; max: bigint; limit: bigint; failcnt: bigint } };
  memoryOomControl?: { oomKillDisable: bigint; underOom: bigint; oomKill: bigint };
}

export interface CgroupV2Metrics {
  pids: PidsStat;
  cpu: { usageUsec: bigint; userUsec: bigint; systemUsec: bigint };
  memory: { anon: bigint; file: bigint; usage: bigint; usageLimit: bigint };
}

export type CgroupMetrics = { version: 1; metrics: CgroupV1Metrics } | { version: 2; metrics: CgroupV2Metrics };

const ROOT = '/sys/fs/cgroup';

function readNum(path: string): bigint | undefined {
  try {
    const t = readFileSync(path, 'utf8').trim();
    if (t === 'max') return undefined;
    return BigInt(t);
  } catch {
    return undefined;
  }
}

function readKV(path: string): Map<string, bigint> {
  const m = new Map<string, bigint>();
  try {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k && v && /^\d+$/.test(v)) m.set(k, BigInt(v));
    }
  } catch {
    // missing controller
  }
  return m;
}

/** The container's cgroup path relative to each hierarchy, from /proc/<pid>/cgroup (what runc placed it in). */
function procCgroups(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  try {
    for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
      const m = /^\d+:([^:]*):(.*)$/.exec(line);
      if (!m) continue;
      for (const ctl of (m[1] ?? '').split(',')) out.set(ctl, m[2] ?? '');
    }
  } catch {
    // process gone
  }
  return out;
}

/** The metrics of the cgroup `pid` is in (else `cgroupsPath`, the spec's). */
export function cgroupMetrics(cgroupsPath: string | undefined, pid: number): CgroupMetrics {
  const fromProc = pid > 0 ? procCgroups(pid) : new Map<string, string>();
  const unified = existsSync(join(ROOT, 'cgroup.controllers'));
  if (unified) {
    const rel = fromProc.get('') ?? cgroupsPath;
    if (rel === undefined) throw new NotFoundError('cgroup does not exist');
    const dir = join(ROOT, rel);
    if (!existsSync(dir)) throw new NotFoundError('cgroup does not exist');
    const cpu = readKV(join(dir, 'cpu.stat'));
    const mem = readKV(join(dir, 'memory.stat'));
    return {
      version: 2,
      metrics: {
        pids: { current: readNum(join(dir, 'pids.current')) ?? 0n, limit: readNum(join(dir, 'pids.max')) ?? 0n },
        cpu: { usageUsec: cpu.get('usage_usec') ?? 0n, userUsec: cpu.get('user_usec') ?? 0n, systemUsec: cpu.get('system_usec') ?? 0n },
        memory: {
          anon: mem.get('anon') ?? 0n,
          file: mem.get('file') ?? 0n,
          usage: readNum(join(dir, 'memory.current')) ?? 0n,
          usageLimit: readNum(join(dir, 'memory.max')) ?? 0n,
        },
      },
    };
  }
  const dirOf = (ctl: string): string | undefined => {
    const rel = fromProc.get(ctl) ?? cgroupsPath;
    if (rel === undefined) return undefined;
    const d = join(ROOT, ctl, rel);
    return existsSync(d) ? d : undefined;
  };
  const memDir = dirOf('memory');
  const cpuDir = dirOf('cpuacct') ?? dirOf('cpu,cpuacct');
  const pidsDir = dirOf('pids');
  if (!memDir && !cpuDir && !pidsDir) throw new NotFoundError('cgroup does not exist');
  const metrics: CgroupV1Metrics = {};
  if (pidsDir) metrics.pids = { current: readNum(join(pidsDir, 'pids.current')) ?? 0n, limit: readNum(join(pidsDir, 'pids.max')) ?? 0n };
  if (cpuDir) {
    const st = readKV(join(cpuDir, 'cpuacct.stat'));
    const hz = 100n;
    const toNs = (ticks: bigint | undefined) => ((ticks ?? 0n) * 1_000_000_000n) / hz;
    let perCpu: bigint[] = [];
    try {
      perCpu = readFileSync(join(cpuDir, 'cpuacct.usage_percpu'), 'utf8').trim().split(/\s+/).filter(Boolean).map((x) => BigInt(x));
    } catch {
      // optional
    }
    const thr = readKV(join(cpuDir, 'cpu.stat'));
    metrics.cpu = {
      usage: { total: readNum(join(cpuDir, 'cpuacct.usage')) ?? 0n, user: toNs(st.get('user')), kernel: toNs(st.get('system')), perCpu },
      throttling: { periods: thr.get('nr_periods') ?? 0n, throttledPeriods: thr.get('nr_throttled') ?? 0n, throttledTime: thr.get('throttled_time') ?? 0n },
    };
  }
  if (memDir) {
    const s = readKV(join(memDir, 'memory.stat'));
    const stat = Object.fromEntries(Object.entries(V1_MEMORY).map(([field, key]) => [field, s.get(key) ?? 0n])) as V1MemoryStat;
    metrics.memory = {
      ...stat,
      usage: {
        usage: readNum(join(memDir, 'memory.usage_in_bytes')) ?? 0n,
        max: readNum(join(memDir, 'memory.max_usage_in_bytes')) ?? 0n,
        limit: readNum(join(memDir, 'memory.limit_in_bytes')) ?? 0n,
        failcnt: readNum(join(memDir, 'memory.failcnt')) ?? 0n,
      },
    };
    const oom = readKV(join(memDir, 'memory.oom_control'));
    metrics.memoryOomControl = { oomKillDisable: oom.get('oom_kill_disable') ?? 0n, underOom: oom.get('under_oom') ?? 0n, oomKill: oom.get('oom_kill') ?? 0n };
  }
  return { version: 1, metrics };
}

/** Where the memory controller of `pid` lives, for OOM accounting; undefined if none. */
export function memoryCgroupDir(pid: number): string | undefined {
  const cg = procCgroups(pid);
  if (existsSync(join(ROOT, 'cgroup.controllers'))) {
    const rel = cg.get('');
    return rel === undefined ? undefined : join(ROOT, rel);
  }
  const rel = cg.get('memory');
  return rel === undefined ? undefined : join(ROOT, 'memory', rel);
}

/** The cgroup's oom_kill counter (v1 memory.oom_control, v2 memory.events); 0 when unreadable. */
export function oomKillCount(dir: string | undefined): bigint {
  if (!dir) return 0n;
  const v1 = readKV(join(dir, 'memory.oom_control')).get('oom_kill');
  if (v1 !== undefined) return v1;
  return readKV(join(dir, 'memory.events')).get('oom_kill') ?? 0n;
}

/** v1's "no limit" (PAGE_COUNTER_MAX × 4 KiB pages, rounded as the kernel reports it). */
const V1_UNLIMITED = 9223372036854771712n;

/** A guest of a shared host, for metrics shaped like its cgroup's would be. */
export interface GuestUsage {
  /** Linear memory of the container's guests (init and execs). */
  memoryBytes: number;
  /** Their memory limit, if any. */
  memoryLimit: number | undefined;
  /** Time they have run. */
  cpuMs: number;
  /** How many guests the container has running. */
  guests: number;
  /** Their share of the host process itself: its resident memory beyond every guest's linear memory, split evenly. */
  hostShareBytes: number;
}

/**
 * A shared host's guest has no cgroup of its own: its metrics say what a
 * cgroup holding just it would (its linear memory plus its share of the host,
 * its run time, its guests as processes), in the host's cgroup version.
 */
export function guestMetrics(u: GuestUsage): CgroupMetrics {
  const usage = BigInt(Math.round(u.memoryBytes + u.hostShareBytes));
  const cpuNs = BigInt(Math.round(u.cpuMs * 1e6));
  const pids = { current: BigInt(u.guests), limit: 0n };
  if (existsSync(join(ROOT, 'cgroup.controllers'))) {
    return {
      version: 2,
      metrics: {
        pids,
        cpu: { usageUsec: cpuNs / 1000n, userUsec: cpuNs / 1000n, systemUsec: 0n },
        memory: { anon: usage, file: 0n, usage, usageLimit: u.memoryLimit === undefined ? 0n : BigInt(u.memoryLimit) },
      },
    };
  }
  const zero = Object.fromEntries(Object.keys(V1_MEMORY).map((k) => [k, 0n])) as V1MemoryStat;
  const limit = u.memoryLimit === undefined ? V1_UNLIMITED : BigInt(u.memoryLimit);
  return {
    version: 1,
    metrics: {
      pids,
      cpu: { usage: { total: cpuNs, user: cpuNs, kernel: 0n, perCpu: [] }, throttling: { periods: 0n, throttledPeriods: 0n, throttledTime: 0n } },
      memory: { ...zero, rss: usage, totalRss: usage, activeAnon: usage, hierarchicalMemoryLimit: limit, usage: { usage, max: usage, limit, failcnt: 0n } },
      memoryOomControl: { oomKillDisable: 0n, underOom: 0n, oomKill: 0n },
    },
  };
}
