// Thin ttrpc adapter: containerd.task.v2.Task → TaskManager. Connect and
// Shutdown are the shim's own; Checkpoint answers UNIMPLEMENTED. The one
// place where a domain error's kind becomes a status code (containerd's
// errdefs.ToGRPC): containerd turns the code back into its error class.
import { kindOf, type ErrorKind } from '../errors.js';
import { log } from '../log.js';
import { Task } from './proto/index.js';
import type { TaskManager } from './task-manager.js';
import { Code, registerService, TtrpcError, type TtrpcServer } from './ttrpc/index.js';

export interface ShimControl {
  /** Shutdown with no containers left: stop serving and exit. */
  shutdown(): void;
}

/**
 * Internal errors (runc's own failures, I/O) answer UNKNOWN, as the runc
 * shim's plain Go errors do: containerd shows their message unchanged.
 */
const CODES: Record<ErrorKind, Code> = {
  NotFound: Code.NOT_FOUND,
  AlreadyExists: Code.ALREADY_EXISTS,
  InvalidArgument: Code.INVALID_ARGUMENT,
  FailedPrecondition: Code.FAILED_PRECONDITION,
  Unimplemented: Code.UNIMPLEMENTED,
  Internal: Code.UNKNOWN,
};

export function ttrpcError(err: unknown): TtrpcError {
  if (err instanceof TtrpcError) return err;
  return new TtrpcError(CODES[kindOf(err)], err instanceof Error ? err.message : String(err), { cause: err });
}

/** Logs each call's outcome at debug, failures at info; failures leave as status codes. */
async function traced<T>(method: string, id: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    const r = await fn();
    log().debug({ method, id }, 'task call ok');
    return r;
  } catch (err) {
    const e = ttrpcError(err);
    log().info({ method, id, code: e.code, msg: e.message }, 'task call failed');
    throw e;
  }
}

export function registerTaskService(server: TtrpcServer, m: TaskManager, ctl: ShimControl): void {
  registerService(server, Task, {
    state: (r) => traced('State', r.id, () => m.state(r.id, r.execId)),
    create: (r) => traced('Create', r.id, () => m.create(r)),
    start: (r) => traced('Start', r.id, () => m.start(r.id, r.execId)),
    delete: (r) => traced('Delete', r.id, () => m.delete(r.id, r.execId)),
    pids: (r) => traced('Pids', r.id, async () => ({ processes: await m.pids(r.id) })),
    pause: (r) => traced('Pause', r.id, async () => (await m.pause(r.id), {})),
    resume: (r) => traced('Resume', r.id, async () => (await m.resume(r.id), {})),
    checkpoint: (r) =>
      traced('Checkpoint', r.id, () => {
        throw new TtrpcError(Code.UNIMPLEMENTED, 'checkpoint is not supported by containerd-shim-tugboat-v1');
      }),
    kill: (r) => traced('Kill', r.id, async () => (await m.kill(r.id, r.execId, r.signal, r.all), {})),
    exec: (r) => traced('Exec', r.id, async () => (await m.exec(r), {})),
    resizePty: (r) => traced('ResizePty', r.id, () => (m.resizePty(r.id, r.execId, r.width, r.height), {})),
    closeIO: (r) => traced('CloseIO', r.id, () => (m.closeIO(r.id, r.execId, r.stdin), {})),
    update: (r) => traced('Update', r.id, async () => (await m.update(r.id, r.resources), {})),
    wait: (r) => traced('Wait', r.id, () => m.wait(r.id, r.execId)),
    stats: (r) => traced('Stats', r.id, async () => ({ stats: await m.stats(r.id) })),
    connect: (r) => traced('Connect', r.id, () => ({ shimPid: process.pid, taskPid: m.taskPid(r.id), version: '' })),
    shutdown: (r) =>
      traced('Shutdown', r.id, () => {
        if (m.count() === 0) setImmediate(() => ctl.shutdown());
        return {};
      }),
  });
}
