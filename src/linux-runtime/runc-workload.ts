// A workload that is a runc container of its own: every Linux workload, and
// a Wasm workload at `container` isolation (whose bundle is the derived one
// and whose exec'd processes become more guests of the host). RuncContainer
// is its ContainerLifecycle, as containerd-shim-runc-v2 drives runc.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NotFoundError, TugboatError } from '../errors.js';
import { log } from '../log.js';
import type { Process, Spec } from '../oci/runtime-spec.js';
import type { Workload } from '../oci/detect.js';
import { cgroupMetrics, memoryCgroupDir, oomKillCount, type CgroupMetrics } from './cgroup-stats.js';
import type { ContainerLifecycle, IsolationLevel, LifecycleContext, PreparedWorkload, ProcessHandle, ProcessStdio } from './engine.js';

export interface RuncWorkloadParts {
  workload: Workload;
  isolation: IsolationLevel | undefined;
  /** The spec runc reads from `bundle`. */
  spec: Spec;
  /** The container's process as the caller described it; default: the spec's. */
  process?: Process;
  bundle: string;
  /** How an exec'd process is run (identity for Linux). */
  execProcess?: (process: Process) => Process;
  /** Removes what was derived for this workload. */
  remove?: () => Promise<void>;
}

export function runcWorkload(parts: RuncWorkloadParts): PreparedWorkload {
  const execProcess = parts.execProcess ?? ((p: Process) => p);
  return {
    workload: parts.workload,
    isolation: parts.isolation,
    spec: parts.spec,
    process: parts.process ?? parts.spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' },
    runcBundle: parts.bundle,
    execProcess,
    lifecycle: (ctx) => new RuncContainer(ctx, parts.bundle, parts.spec, execProcess),
    runForeground: (runc, id) => runc.runForeground(id, parts.bundle),
    remove: parts.remove ?? (() => Promise.resolve()),
  };
}

/** runc's and the kernel's ways of saying "that process is gone" (containerd pkg/process/utils.go checkKillError). */
function killError(err: unknown): unknown {
  const msg = err instanceof Error ? err.message : String(err);
  const gone =
    (err instanceof TugboatError && err.kind === 'NotFound') ||
    /container not running|no such process|process already finished/.test(msg) ||
    (err as NodeJS.ErrnoException).code === 'ESRCH';
  return gone ? new NotFoundError('process already finished', { cause: err }) : err;
}

function isNotFound(err: unknown): boolean {
  return err instanceof TugboatError && err.kind === 'NotFound';
}

export class RuncContainer implements ContainerLifecycle {
  private initPid = 0;
  private memCgroup: string | undefined;
  private oomKills = 0n;

  constructor(
    private readonly ctx: LifecycleContext,
    private readonly bundle: string,
    private readonly spec: Spec,
    private readonly execProcess: (process: Process) => Process,
  ) {}

  async create(io: ProcessStdio): Promise<ProcessHandle> {
    const { id, runc } = this.ctx;
    const pid = await runc.create(id, this.bundle, {
      pidFile: join(this.ctx.stateDir, 'init.pid'),
      io,
      ...(this.ctx.noPivot ? { noPivot: true } : {}),
      ...(this.ctx.noNewKeyring ? { noNewKeyring: true } : {}),
    });
    this.initPid = pid;
    this.memCgroup = memoryCgroupDir(pid);
    this.oomKills = oomKillCount(this.memCgroup);
    // Without a pid namespace of its own, the container's other processes
    // outlive its init: kill them when it ends (containerd's ShouldKillAllOnExit).
    const pidNs = this.spec.linux?.namespaces?.find((n) => n.type === 'pid');
    const killAllOnExit = !pidNs || !!pidNs.path;
    const exited = this.ctx.reaper.track(pid).then(async (e) => {
      if (killAllOnExit) await runc.kill(id, 9, { all: true }).catch((err: unknown) => log().debug({ err }, 'kill --all after init exit'));
      return e;
    });
    return { pid, exited };
  }

  async start(): Promise<void> {
    await this.ctx.runc.start(this.ctx.id);
  }

  async kill(signal: number, all: boolean): Promise<void> {
    await this.ctx.runc.kill(this.ctx.id, signal, { all }).catch((err: unknown) => {
      throw killError(err);
    });
  }

  signal(process: ProcessHandle, signal: number): void {
    try {
      globalThis.process.kill(process.pid, signal);
    } catch (err) {
      throw killError(err);
    }
  }

  async pause(): Promise<void> {
    await this.ctx.runc.pause(this.ctx.id);
  }

  async resume(): Promise<void> {
    await this.ctx.runc.resume(this.ctx.id);
  }

  pids(): Promise<number[]> {
    return this.ctx.runc.ps(this.ctx.id);
  }

  stats(): CgroupMetrics {
    return cgroupMetrics(this.spec.linux?.cgroupsPath, this.initPid);
  }

  oomKilled(): boolean {
    const n = oomKillCount(this.memCgroup);
    if (n <= this.oomKills) return false;
    this.oomKills = n;
    return true;
  }

  async update(resourcesJson: string): Promise<void> {
    await this.ctx.runc.update(this.ctx.id, resourcesJson);
  }

  async exec(execId: string, process: Process, io: ProcessStdio): Promise<ProcessHandle> {
    const dir = mkdtempSync(join(this.ctx.tmpDir, 'runc-process'));
    const pidFile = join(this.ctx.stateDir, `${execId}.pid`);
    try {
      const file = join(dir, 'process.json');
      writeFileSync(file, JSON.stringify(this.execProcess(process)), { mode: 0o600 });
      const pid = await this.ctx.runc.exec(this.ctx.id, file, { pidFile, io });
      return { pid, exited: this.ctx.reaper.track(pid) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(pidFile, { force: true });
    }
  }

  async delete(force: boolean): Promise<void> {
    await this.ctx.runc.delete(this.ctx.id, { force }).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
}
