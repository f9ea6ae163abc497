// Reaps the container processes that runc leaves orphaned: the shim is their
// subreaper, so they become its children when `runc create` / `runc exec
// --detach` exit. On SIGCHLD (and on a slow fallback tick) each tracked pid
// is polled with waitpid(pid, WNOHANG) — never waitpid(-1), which would steal
// the exit statuses of the runc processes libuv spawned itself.
import { existsSync, readFileSync } from 'node:fs';
import { log } from '../log.js';
import { waitPidNoHang, type WaitResult } from './sys.js';

export interface Exit {
  status: number;
  /** ms since the epoch, sub-millisecond precision */
  at: number;
}

type Poll = (pid: number) => WaitResult;

export class Reaper {
  private readonly tracked = new Map<number, (e: Exit) => void>();
  private timer: NodeJS.Timeout | undefined;
  private readonly onSignal = () => this.poll();

  constructor(
    private readonly waitFn: Poll = waitPidNoHang,
    private readonly fallbackMs = 1000,
  ) {}

  start(): void {
    process.on('SIGCHLD', this.onSignal);
  }

  stop(): void {
    process.off('SIGCHLD', this.onSignal);
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Resolves with the pid's exit; checks at once (it may already be a zombie). */
  track(pid: number): Promise<Exit> {
    return new Promise((resolve) => {
      this.tracked.set(pid, resolve);
      this.timer ??= setInterval(() => this.poll(), this.fallbackMs).unref();
      this.poll();
    });
  }

  /** Check every tracked pid once. */
  poll(): void {
    for (const [pid, resolve] of [...this.tracked]) {
      let r: WaitResult;
      try {
        r = this.waitFn(pid);
      } catch (err) {
        log().warn({ err, pid }, 'reaper: waitpid failed');
        continue;
      }
      if (r.state === 'running') continue;
      if (r.state === 'gone') {
        // Not our child (subreaper unavailable?): only its disappearance is
        // observable, and its status is lost. 255 like containerd's "unknown".
        if (existsSync(`/proc/${pid}`) && !isZombieOfOther(pid)) continue;
        log().warn({ pid }, 'reaper: process is not a child of the shim; exit status unknown');
        this.finish(pid, resolve, 255);
        continue;
      }
      this.finish(pid, resolve, r.status);
    }
    if (this.tracked.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private finish(pid: number, resolve: (e: Exit) => void, status: number): void {
    this.tracked.delete(pid);
    resolve({ status, at: performance.timeOrigin + performance.now() });
  }
}

function isZombieOfOther(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z';
  } catch {
    return true;
  }
}
