// poll_oneoff: clock subscriptions and fd readiness. Regular files are always
// ready (with the bytes left to read), and one bad subscription gives that
// subscription an error event rather than failing the whole call. When
// nothing is ready the guest suspends until a clock expires or a stream's
// state changes.
import { CLOCK, E, EVENT_FD_READWRITE_HANGUP, EVENT_SIZE, EVENTTYPE, R, SUBSCRIPTION_CLOCK_ABSTIME, SUBSCRIPTION_SIZE, WHENCE } from './abi.js';
import type { Ctx, WasiFn } from './context.js';
import { errnoOf } from './errno.js';
import { need } from './fd-ops.js';
import { monotonicNs, Realtime } from './misc.js';
import { statFd } from './stat.js';
import { sys } from './sys.js';

interface Sub {
  userdata: bigint;
  type: number;
  /** Clocks: monotonic deadline in ns. */
  deadline?: bigint;
  fd?: number;
}

interface Ready {
  userdata: bigint;
  type: number;
  error: number;
  nbytes: bigint;
  flags: number;
}

type Waitable = { wait(signal: AbortSignal): Promise<void> };

export function pollOps(ctx: Ctx, realtime = new Realtime()): { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> } {
  const { mem, fds } = ctx;

  const parse = (inPtr: number, n: number): Sub[] | number => {
    const now = monotonicNs();
    const subs: Sub[] = [];
    for (let i = 0; i < n; i++) {
      const base = (inPtr >>> 0) + i * SUBSCRIPTION_SIZE;
      const userdata = mem.u64(base);
      const type = mem.u8At(base + 8);
      if (type === EVENTTYPE.CLOCK) {
        const id = mem.u32(base + 16);
        const timeout = mem.u64(base + 24);
        const abs = (mem.u16(base + 40) & SUBSCRIPTION_CLOCK_ABSTIME) !== 0;
        let deadline: bigint;
        if (id === CLOCK.MONOTONIC) deadline = abs ? timeout : now + timeout;
        else if (id === CLOCK.REALTIME) deadline = abs ? now + (timeout - realtime.now()) : now + timeout;
        else return E.INVAL;
        subs.push({ userdata, type, deadline });
      } else if (type === EVENTTYPE.FD_READ || type === EVENTTYPE.FD_WRITE) {
        subs.push({ userdata, type, fd: mem.u32(base + 16) });
      } else return E.INVAL;
    }
    return subs;
  };

  /** What is ready now; `waits` collects what to wait on when nothing is. */
  const evaluate = (subs: Sub[], waits: Waitable[]): { ready: Ready[]; nextDeadline: bigint | undefined } => {
    const now = monotonicNs();
    const ready: Ready[] = [];
    let nextDeadline: bigint | undefined;
    for (const s of subs) {
      if (s.type === EVENTTYPE.CLOCK) {
        if (s.deadline! <= now) ready.push({ userdata: s.userdata, type: s.type, error: E.SUCCESS, nbytes: 0n, flags: 0 });
        else if (nextDeadline === undefined || s.deadline! < nextDeadline) nextDeadline = s.deadline;
        continue;
      }
      const ev = { userdata: s.userdata, type: s.type, error: E.SUCCESS as number, nbytes: 0n, flags: 0 };
      try {
        const e = need(fds.get(s.fd!), R.POLL_FD_READWRITE);
        const h = e.handle;
        if (h.kind === 'file') {
          if (s.type === EVENTTYPE.FD_READ) {
            const left = statFd(h.fd).size - sys().lseek(h.fd, 0n, WHENCE.CUR);
            ev.nbytes = left > 0n ? left : 0n;
          }
          ready.push(ev);
        } else if (h.kind === 'stream') {
          const st = s.type === EVENTTYPE.FD_READ ? h.stream.readable() : h.stream.writable();
          if (!st.ready) {
            waits.push(h.stream);
            continue;
          }
          ev.nbytes = BigInt(st.bytes);
          if ('ended' in st && st.ended) ev.flags = EVENT_FD_READWRITE_HANGUP;
          ready.push(ev);
        } else if (h.kind === 'listener' && s.type === EVENTTYPE.FD_READ) {
          if (!h.listener.ready()) {
            waits.push(h.listener);
            continue;
          }
          ev.nbytes = 1n;
          ready.push(ev);
        } else {
          ev.error = E.BADF;
          ready.push(ev);
        }
      } catch (err) {
        ev.error = errnoOf(err);
        ready.push(ev);
      }
    }
    return { ready, nextDeadline };
  };

  const write = (outPtr: number, neventsPtr: number, ready: Ready[]): number => {
    ready.forEach((r, i) => {
      const base = (outPtr >>> 0) + i * EVENT_SIZE;
      mem.bytes(base, EVENT_SIZE).fill(0);
      mem.setU64(base, r.userdata);
      mem.setU16(base + 8, r.error);
      mem.setU8(base + 10, r.type);
      mem.setU64(base + 16, r.nbytes);
      mem.setU16(base + 24, r.flags);
    });
    mem.setU32(neventsPtr, ready.length);
    return E.SUCCESS;
  };

  const suspending = {
    poll_oneoff(inPtr: number, outPtr: number, nsubs: number, neventsPtr: number): number | Promise<number> {
      if (nsubs === 0) return E.INVAL;
      const subs = parse(inPtr, nsubs);
      if (typeof subs === 'number') return subs;
      const first = evaluate(subs, []);
      if (first.ready.length) return write(outPtr, neventsPtr, first.ready);
      return (async () => {
        for (;;) {
          const waits: Waitable[] = [];
          const { ready, nextDeadline } = evaluate(subs, waits);
          if (ready.length) return write(outPtr, neventsPtr, ready);
          if (ctx.signal.aborted) return E.CANCELED;
          const round = new AbortController();
          const stop = () => round.abort();
          ctx.signal.addEventListener('abort', stop, { once: true });
          const racers: Promise<void>[] = waits.map((w) => w.wait(round.signal));
          // A kill ends the wait at once (and with it the timer that would keep the host alive).
          racers.push(new Promise((r) => round.signal.addEventListener('abort', () => r(), { once: true })));
          let timer: NodeJS.Timeout | undefined;
          if (nextDeadline !== undefined) {
            const ms = Number((nextDeadline - monotonicNs() + 999_999n) / 1_000_000n);
            racers.push(new Promise((r) => (timer = setTimeout(r, Math.max(0, ms)))));
          }
          await Promise.race(racers);
          if (timer) clearTimeout(timer);
          round.abort();
          ctx.signal.removeEventListener('abort', stop);
        }
      })();
    },
  };
  return { sync: {}, suspending } as unknown as { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> };
}
