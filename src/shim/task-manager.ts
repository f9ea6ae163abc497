// The Task service as plain async functions over the shim's containers
// (semantics of containerd-shim-runc-v2 1.6, protocols.md §3). No ttrpc here:
// service.ts adapts these methods and maps their errors (TugboatErrors with a
// kind) to status codes; tests call them directly.
//
// TaskManager keeps the registry, publishes the events and routes each
// process's exit; a Container creates and runs its processes (container.ts),
// a Process holds its state machine and lock (process.ts).
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { log } from '../log.js';
import type { EngineSettings } from '../linux-runtime/engine.js';
import type { Exit, Reaper } from '../linux-runtime/reaper.js';
import { engineSettings } from '../linux-runtime/workload.js';
import type { Process as OciProcess } from '../oci/runtime-spec.js';
import { Container } from './container.js';
import type { ImageFacts } from './containerd-api.js';
import { Process } from './process.js';
import {
  OCI_TYPE_URL,
  Status,
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
  anyTypeName,
  cgroupsV1,
  cgroupsV2,
  packAny,
  runcOptions,
  timestampFromMs,
  unpackJsonAny,
  type Any,
  type CreateTaskRequest,
  type ExecProcessRequest,
  type Timestamp,
} from './proto/index.js';
import type { EventSink } from './publisher.js';
import { setWinsize } from '../linux-runtime/sys.js';

export { Status };

export interface TaskManagerOptions {
  namespace: string;
  events: EventSink;
  reaper: Reaper;
  /** runc binary when Options.binary_name is empty */
  runcBinary?: string;
  /** Where engines find the kit and the component cache; from src/defaults.ts by default. */
  settings?: EngineSettings;
  /** Called after a container was deleted (its bundle is about to be removed by containerd). */
  onContainerRemoved?: (bundle: string) => void;
  /** Called after a container was created. */
  onContainerAdded?: (bundle: string) => void;
  /** Image facts of a container, for detection (containerd's API in the daemon); never throws. */
  imageFacts?: (id: string) => Promise<ImageFacts | undefined>;
}

/** The fields of containerd's ExecProcessRequest that Exec reads (tests pass plain objects). */
export type ExecRequest = Pick<ExecProcessRequest, 'id' | 'execId' | 'terminal' | 'stdin' | 'stdout' | 'stderr' | 'spec'>;

function ts(ms: number | undefined): Timestamp | undefined {
  return ms === undefined ? undefined : timestampFromMs(ms);
}

/** `p` within `ms`, or undefined. */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([p, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
}

export class TaskManager {
  private readonly containers = new Map<string, Container>();
  private readonly creating = new Set<string>();
  private readonly settings: EngineSettings;

  constructor(private readonly opts: TaskManagerOptions) {
    this.settings = opts.settings ?? engineSettings();
  }

  count(): number {
    return this.containers.size + this.creating.size;
  }

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError('container not created');
    return c;
  }

  private proc(c: Container, execId: string): Process {
    const p = c.process(execId);
    if (!p) throw new NotFoundError(`process does not exist ${execId}`);
    return p;
  }

  async create(req: CreateTaskRequest): Promise<{ pid: number }> {
    const { id } = req;
    if (!id) throw new InvalidArgumentError('id cannot be empty');
    if (this.containers.has(id) || this.creating.has(id)) throw new AlreadyExistsError(`container ${id}: already exists`);
    this.creating.add(id);
    let c: Container;
    try {
      c = await Container.create(req, {
        namespace: this.opts.namespace,
        reaper: this.opts.reaper,
        settings: this.settings,
        ...(this.opts.runcBinary ? { runcBinary: this.opts.runcBinary } : {}),
        // Asked at once, while the rootfs is mounted.
        ...(this.opts.imageFacts ? { imageFacts: this.opts.imageFacts(id).catch(() => undefined) } : {}),
      });
    } finally {
      this.creating.delete(id);
    }
    this.containers.set(id, c);
    this.opts.onContainerAdded?.(c.bundle);
    this.routeExit(c, c.init);
    this.opts.events.publish(TaskCreateSchema, {
      containerId: id,
      bundle: c.bundle,
      rootfs: req.rootfs,
      io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      checkpoint: req.checkpoint,
      pid: c.init.pid,
    });
    return { pid: c.init.pid };
  }

  /** The process's end is handled under its lock: after a Start in flight has published its event. */
  private routeExit(c: Container, p: Process): void {
    void p
      .handle!.exited.then((e) => p.serialized(() => this.exited(c, p, e)))
      .catch((err: unknown) => log().error({ err, id: c.id, execId: p.execId }, 'handling process exit failed'));
  }

  /** Records an exit and publishes TaskExit (once); the caller holds p's lock. */
  private exited(c: Container, p: Process, e: Exit): void {
    if (!p.recordExit(e)) return;
    this.checkOom(c);
    log().info({ id: c.id, execId: p.execId, pid: p.pid, status: e.status }, 'process exited');
    if (p === c.init) {
      // Execs cannot outlive the container's init.
      for (const x of c.execs.values()) {
        if (x.state === 'running' && x.handle) {
          try {
            c.lifecycle.signal(x.handle, 9);
          } catch {
            // gone
          }
        }
      }
    }
    this.opts.events.publish(TaskExitSchema, { containerId: c.id, id: p.id, pid: p.pid, exitStatus: e.status, exitedAt: ts(e.at) });
  }

  /** TaskOOM when the container's cgroup counted a new OOM kill (at every exit, and by checkOomAll). */
  private checkOom(c: Container): void {
    if (!c.lifecycle.oomKilled()) return;
    log().info({ id: c.id }, 'OOM kill in container');
    this.opts.events.publish(TaskOOMSchema, { containerId: c.id });
  }

  /** Poll every running container for OOM kills of non-init processes. */
  checkOomAll(): void {
    for (const c of this.containers.values()) if (c.init.state !== 'stopped') this.checkOom(c);
  }

  async start(id: string, execId: string): Promise<{ pid: number }> {
    const c = this.get(id);
    const p = this.proc(c, execId);
    return p.serialized(async () => {
      p.check('start');
      if (p === c.init) {
        await c.lifecycle.start();
        p.transition('start');
        this.opts.events.publish(TaskStartSchema, { containerId: c.id, pid: p.pid });
        return { pid: p.pid };
      }
      if (c.init.state !== 'running' && c.init.state !== 'created') throw new FailedPreconditionError(`container ${c.id} is not running`);
      await c.startExec(p, p.spec!);
      p.transition('start');
      this.routeExit(c, p);
      this.opts.events.publish(TaskExecStartedSchema, { containerId: c.id, execId: p.execId, pid: p.pid });
      return { pid: p.pid };
    });
  }

  async exec(req: ExecRequest): Promise<void> {
    const c = this.get(req.id);
    if (!req.execId) throw new InvalidArgumentError('exec id cannot be empty');
    if (c.execs.has(req.execId)) throw new AlreadyExistsError(`id ${req.execId}: already exists`);
    if (c.init.state === 'stopped') throw new FailedPreconditionError('container is stopped');
    if (!req.spec || anyTypeName(req.spec) !== OCI_TYPE_URL.Process) throw new InvalidArgumentError('exec spec must be an OCI Process');
    let spec: OciProcess;
    try {
      spec = unpackJsonAny(req.spec) as OciProcess;
    } catch (err) {
      throw new InvalidArgumentError(`bad exec spec: ${(err as Error).message}`);
    }
    spec.terminal = req.terminal;
    c.execs.set(req.execId, new Process(c.id, req.execId, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal }, spec));
    this.opts.events.publish(TaskExecAddedSchema, { containerId: c.id, execId: req.execId });
  }

  state(id: string, execId: string) {
    const c = this.get(id);
    const p = this.proc(c, execId);
    return {
      id: p.id,
      bundle: c.bundle,
      pid: p.pid,
      status: p.status,
      stdin: p.stdio.stdin,
      stdout: p.stdio.stdout,
      stderr: p.stdio.stderr,
      terminal: p.stdio.terminal,
      exitStatus: p.exitStatus,
      exitedAt: ts(p.exitedAt),
    };
  }

  async wait(id: string, execId: string): Promise<{ exitStatus: number; exitedAt: Timestamp | undefined }> {
    const p = this.proc(this.get(id), execId);
    await p.exited;
    return { exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt) };
  }

  async kill(id: string, execId: string, signal: number, all: boolean): Promise<void> {
    const c = this.get(id);
    const p = this.proc(c, execId);
    await p.serialized(async () => {
      p.check('kill');
      if (p === c.init) return c.lifecycle.kill(signal, all);
      if (!p.handle) throw new FailedPreconditionError('process not created');
      c.lifecycle.signal(p.handle, signal);
    });
  }

  async delete(id: string, execId: string): Promise<{ pid: number; exitStatus: number; exitedAt: Timestamp | undefined }> {
    const c = this.get(id);
    const p = this.proc(c, execId);
    return p.serialized(async () => {
      p.check('delete');
      const res = () => ({ pid: p.pid, exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt) });
      if (p !== c.init) {
        // What the process wrote reaches the client before its FIFOs close, as
        // for the init below and in runc's shim (pkg/process/exec.go delete).
        if (p.io) await within(p.io.done, 2000);
        p.io?.close();
        p.transition('delete');
        c.execs.delete(p.execId);
        return res();
      }
      if (p.state === 'created') {
        // Deleting a created container kills its init; its exit is recorded
        // here (we hold the lock its exit handler waits for).
        await c.lifecycle.delete(true);
        const e = await within(p.handle!.exited, 10_000);
        if (e) this.exited(c, p, e);
      }
      if (p.io) await within(p.io.done, 2000);
      await c.lifecycle.delete(false);
      await c.release();
      p.transition('delete');
      this.containers.delete(id);
      this.opts.onContainerRemoved?.(c.bundle);
      this.opts.events.publish(TaskDeleteSchema, { containerId: id, pid: p.pid, exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt), id: '' });
      return res();
    });
  }

  async pids(id: string): Promise<{ pid: number; info?: Any }[]> {
    const c = this.get(id);
    const pids = await c.lifecycle.pids();
    const byPid = new Map<number, string>();
    for (const x of c.execs.values()) if (x.pid) byPid.set(x.pid, x.execId);
    return pids.map((pid) => {
      const execId = byPid.get(pid);
      return execId === undefined ? { pid } : { pid, info: packAny(runcOptions.ProcessDetailsSchema, { execId }) };
    });
  }

  async pause(id: string): Promise<void> {
    const c = this.get(id);
    await c.init.serialized(async () => {
      c.init.check('pause');
      await c.lifecycle.pause();
      c.init.transition('pause');
    });
    this.opts.events.publish(TaskPausedSchema, { containerId: id });
  }

  async resume(id: string): Promise<void> {
    const c = this.get(id);
    await c.init.serialized(async () => {
      c.init.check('resume');
      await c.lifecycle.resume();
      c.init.transition('resume');
    });
    this.opts.events.publish(TaskResumedSchema, { containerId: id });
  }

  resizePty(id: string, execId: string, width: number, height: number): void {
    const p = this.proc(this.get(id), execId);
    const master = (p.io as { master?: number } | undefined)?.master;
    if (master === undefined || p.state === 'stopped') return; // no console: a no-op, as in runc's shim
    setWinsize(master, height, width);
  }

  closeIO(id: string, execId: string, stdin: boolean): void {
    const p = this.proc(this.get(id), execId);
    if (stdin) p.io?.closeStdin();
  }

  async update(id: string, resources: Any | undefined): Promise<void> {
    const c = this.get(id);
    if (c.init.state === 'stopped') throw new FailedPreconditionError('container is stopped');
    if (!resources || anyTypeName(resources) !== OCI_TYPE_URL.LinuxResources) {
      throw new InvalidArgumentError('update resources must be OCI LinuxResources');
    }
    await c.lifecycle.update(new TextDecoder().decode(resources.value));
  }

  /** io.containerd.cgroups.v1/v2.Metrics of the container. */
  async stats(id: string): Promise<Any> {
    const m = await this.get(id).lifecycle.stats();
    return m.version === 1 ? packAny(cgroupsV1.MetricsSchema, m.metrics) : packAny(cgroupsV2.MetricsSchema, m.metrics);
  }

  /** Bundles of the containers still managed. */
  bundles(): string[] {
    return [...this.containers.values()].map((c) => c.bundle);
  }

  /** The init pid of `id`, or 0. */
  taskPid(id: string): number {
    return this.containers.get(id)?.init.pid ?? 0;
  }
}
