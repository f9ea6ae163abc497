// args, environment, clocks, randomness, proc_* and sched_yield.
import { CLOCK, E } from './abi.js';
import type { Ctx, WasiFn } from './context.js';

/** Nanoseconds on the monotonic clock (also the timebase of poll_oneoff's deadlines). */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

/** Wall-clock nanoseconds: Date's millisecond epoch carried forward by the monotonic clock. */
export class Realtime {
  private base = BigInt(Date.now()) * 1_000_000n - monotonicNs();
  now(): bigint {
    const t = this.base + monotonicNs();
    // Re-anchor when the wall clock moved (NTP step, suspend) by more than a millisecond.
    const wall = BigInt(Date.now()) * 1_000_000n;
    if (t - wall > 1_000_000n || wall - t > 1_000_000n) {
      this.base = wall - monotonicNs();
      return wall;
    }
    return t;
  }
}

function writeList(ctx: Ctx, list: readonly Buffer[], ptrs: number, buf: number): void {
  let at = buf >>> 0;
  for (let i = 0; i < list.length; i++) {
    ctx.mem.setU32(ptrs + i * 4, at);
    ctx.mem.write(at, list[i]!);
    at += list[i]!.length;
  }
}

function sizes(ctx: Ctx, list: readonly Buffer[], countPtr: number, sizePtr: number): void {
  ctx.mem.setU32(countPtr, list.length);
  ctx.mem.setU32(sizePtr, list.reduce((n, b) => n + b.length, 0));
}

function cpuNs(): bigint {
  const u = process.cpuUsage();
  return BigInt(u.user + u.system) * 1000n;
}

const RANDOM_CHUNK = 65536; // getRandomValues' limit per call

export function miscOps(ctx: Ctx, realtime = new Realtime()): { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> } {
  const { mem } = ctx;
  const sync = {
    args_get: (argv: number, buf: number) => (writeList(ctx, ctx.args, argv, buf), E.SUCCESS),
    args_sizes_get: (count: number, size: number) => (sizes(ctx, ctx.args, count, size), E.SUCCESS),
    environ_get: (envp: number, buf: number) => (writeList(ctx, ctx.env, envp, buf), E.SUCCESS),
    environ_sizes_get: (count: number, size: number) => (sizes(ctx, ctx.env, count, size), E.SUCCESS),
    clock_res_get(id: number, ptr: number): number {
      if (id === CLOCK.REALTIME || id === CLOCK.MONOTONIC) mem.setU64(ptr, 1n);
      else if (id === CLOCK.PROCESS_CPUTIME_ID || id === CLOCK.THREAD_CPUTIME_ID) mem.setU64(ptr, 1000n);
      else return E.INVAL;
      return E.SUCCESS;
    },
    clock_time_get(id: number, _precision: bigint, ptr: number): number {
      if (id === CLOCK.REALTIME) mem.setU64(ptr, realtime.now());
      else if (id === CLOCK.MONOTONIC) mem.setU64(ptr, monotonicNs());
      // One process may host many guests: CPU time is the host's, the closest preview1 can say.
      else if (id === CLOCK.PROCESS_CPUTIME_ID || id === CLOCK.THREAD_CPUTIME_ID) mem.setU64(ptr, cpuNs());
      else return E.INVAL;
      return E.SUCCESS;
    },
    random_get(buf: number, len: number): number {
      const out = mem.bytes(buf, len);
      for (let off = 0; off < out.length; off += RANDOM_CHUNK) {
        crypto.getRandomValues(out.subarray(off, Math.min(out.length, off + RANDOM_CHUNK)));
      }
      return E.SUCCESS;
    },
    // A guest never signals its host (uvwasi's proc_raise would kill the host process).
    proc_raise: () => E.NOTSUP,
  };
  const suspending = {
    // Records the code and never returns: the guest's stack is dropped, so it
    // cannot catch its own exit (no exception unwinds through its frames).
    proc_exit: (code: number) => ctx.exit(code >>> 0),
    sched_yield: () => new Promise<number>((resolve) => setImmediate(() => resolve(E.SUCCESS))),
  };
  return { sync, suspending } as unknown as { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> };
}
