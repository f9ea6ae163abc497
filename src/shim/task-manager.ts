// The Task service as plain async functions over the shim's containers
// (semantics of containerd-shim-runc-v2 1.6, protocols.md §3). No ttrpc here:
// service.ts adapts these methods, tests call them directly. Every container
// is created by runc; a Wasm container from a derived bundle whose init is
// the Tugboat WASI host (the caller's bundle is never modified).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { anchorToBundle, readBundleSpec } from '../linux-runtime/bundle-spec.js';
import { log } from '../log.js';
import { detectWorkload, type Workload } from '../oci/detect.js';
import type { Process as OciProcess, Spec } from '../oci/runtime-spec.js';
import { componentRewriteOptions, defaultComponentCacheDir } from '../linux-runtime/component-cache.js';
import { loadKit, type Kit } from '../linux-runtime/kit.js';
import { rewriteSpecForWasm, wasmHostProcess } from '../linux-runtime/wasm-bundle.js';
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
  packAny,
  runcOptions,
  timestampFromMs,
  unpackAny,
  unpackJsonAny,
  type Any,
  type CreateTaskRequest,
  type Mount,
  type Timestamp,
} from './proto/index.js';
import type { ImageFacts } from './containerd-api.js';
import type { EventSink } from './publisher.js';
import type { Exit, Reaper } from './reaper.js';
import { mountRootfs, unmountAll } from './rootfs.js';
import { memoryCgroupDir, oomKillCount } from './stats.js';
import { RuncCommands } from './runc-process.js';
import { DERIVED_BUNDLE, runcConfigFor, type ShimOptionsFile } from './runc-config.js';
import { ConsoleSocket } from './console.js';
import { openProcessIO, openTerminalIO, UnsupportedIOError, type ProcessIO, type StdioPaths } from './stdio.js';
import { setWinsize } from './sys.js';
import { Code, TtrpcError } from './ttrpc/index.js';

export { Status };

/** Name of the directory, inside containerd's bundle, holding the derived bundle of a Wasm container. */

interface Proc {
  /** container id for init, exec id for execs */
  id: string;
  execId: string;
  pid: number;
  status: Status;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt: number | undefined;
  exited: Promise<void>;
  markExited: () => void;
  io: ProcessIO | undefined;
  /** set while Start runs: TaskExit must be queued after TaskStart / TaskExecStarted */
  starting: Promise<unknown> | undefined;
  spec?: OciProcess;
}

interface Container {
  id: string;
  bundle: string;
  runc: RuncCommands;
  init: Proc;
  execs: Map<string, Proc>;
  spec: Spec;
  workload: Workload;
  rootfsMounted: boolean;
  kit: Kit | undefined;
  /** init exit in a container without its own pid namespace: kill the rest (ShouldKillAllOnExit) */
  killAllOnExit: boolean;
  /** memory cgroup dir and its oom_kill count already reported */
  memCgroup: string | undefined;
  oomKills: bigint;
}

export interface TaskManagerOptions {
  namespace: string;
  events: EventSink;
  reaper: Reaper;
  /** runc binary when Options.binary_name is empty */
  runcBinary?: string;
  kitDir?: string;
  /** Called after a container was deleted (its bundle is about to be removed by containerd). */
  onContainerRemoved?: (bundle: string) => void;
  /** Called after a container was created. */
  onContainerAdded?: (bundle: string) => void;
  /** Image facts of a container, for detection (containerd's API in the daemon); never throws. */
  imageFacts?: (id: string) => Promise<ImageFacts | undefined>;
}

function notCreated(): TtrpcError {
  return new TtrpcError(Code.NOT_FOUND, 'container not created');
}

function newProc(id: string, execId: string, io: { stdin: string; stdout: string; stderr: string; terminal: boolean }): Proc {
  let markExited!: () => void;
  const exited = new Promise<void>((r) => (markExited = r));
  return { id, execId, pid: 0, status: Status.CREATED, ...io, exitStatus: 0, exitedAt: undefined, exited, markExited, io: undefined, starting: undefined };
}

function ts(ms: number | undefined): Timestamp | undefined {
  return ms === undefined ? undefined : timestampFromMs(ms);
}

/** Errors from runc kill that mean "already gone" (containerd pkg/process/utils.go checkKillError). */
function killError(err: unknown): TtrpcError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/container not running|no such process|os: process already finished|does not exist/.test(msg) || (err as NodeJS.ErrnoException).code === 'ESRCH') {
    return new TtrpcError(Code.NOT_FOUND, 'process already finished');
  }
  return new TtrpcError(Code.UNKNOWN, msg);
}

function asUnknown(err: unknown): TtrpcError {
  if (err instanceof TtrpcError) return err;
  return new TtrpcError(Code.UNKNOWN, err instanceof Error ? err.message : String(err));
}

/** Run a runc create/exec with --console-socket; the pty master becomes the process's IO. */
async function withConsole(runcCall: (socket: string) => Promise<number>, paths: StdioPaths): Promise<{ pid: number; io: ProcessIO }> {
  const cs = await ConsoleSocket.create();
  try {
    const pid = await runcCall(cs.path);
    const master = await cs.master;
    return { pid, io: openTerminalIO(paths, master) };
  } finally {
    cs.close();
  }
}

/** Runtime options as containerd passes them (containerd.runc.v1.Options), or defaults. */
export function parseRuncOptions(any: Any | undefined): runcOptions.Options | undefined {
  if (!any || any.typeUrl === '') return undefined;
  if (anyTypeName(any) === runcOptions.OptionsSchema.typeName) return unpackAny(any, runcOptions.OptionsSchema);
  log().info({ type: any.typeUrl }, 'ignoring runtime options of another type');
  return undefined;
}

export class TaskManager {
  private readonly containers = new Map<string, Container>();
  private readonly creating = new Set<string>();
  private kitCache: Kit | undefined;

  constructor(private readonly opts: TaskManagerOptions) {}

  count(): number {
    return this.containers.size + this.creating.size;
  }

  private kit(): Kit {
    this.kitCache ??= loadKit(this.opts.kitDir);
    return this.kitCache;
  }

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw notCreated();
    return c;
  }

  private proc(c: Container, execId: string): Proc {
    if (!execId) return c.init;
    const p = c.execs.get(execId);
    if (!p) throw new TtrpcError(Code.NOT_FOUND, `process does not exist ${execId}`);
    return p;
  }

  async create(req: CreateTaskRequest): Promise<{ pid: number }> {
    const { id } = req;
    if (!id) throw new TtrpcError(Code.INVALID_ARGUMENT, 'id cannot be empty');
    if (this.containers.has(id) || this.creating.has(id)) throw new TtrpcError(Code.ALREADY_EXISTS, `container ${id}: already exists`);
    this.creating.add(id);
    try {
      return await this.doCreate(req);
    } finally {
      this.creating.delete(id);
    }
  }

  private async doCreate(req: CreateTaskRequest): Promise<{ pid: number }> {
    const { id, bundle } = req;
    if (req.checkpoint) throw new TtrpcError(Code.UNIMPLEMENTED, 'checkpoint/restore is not supported by tugboat');
    const o = parseRuncOptions(req.options);
    const optsFile: ShimOptionsFile & { no_pivot_root?: boolean; no_new_keyring?: boolean } = {};
    if (o?.binaryName) optsFile.binary_name = o.binaryName;
    if (o?.root) optsFile.root = o.root;
    if (o?.systemdCgroup) optsFile.systemd_cgroup = true;
    if (o?.noPivotRoot) optsFile.no_pivot_root = true;
    if (o?.noNewKeyring) optsFile.no_new_keyring = true;
    // `shim delete` runs without a daemon: everything it needs is on disk.
    writeFileSync(join(bundle, 'options.json'), JSON.stringify(optsFile));
    writeFileSync(join(bundle, 'runtime'), optsFile.binary_name ?? '');
    const runc = new RuncCommands(runcConfigFor(this.opts.namespace, optsFile, this.opts.runcBinary), bundle);

    const rootfsDir = join(bundle, 'rootfs');
    let rootfsMounted = false;
    let io: ProcessIO | undefined;
    let derived: string | undefined;
    // Asked while the rootfs is mounted; it settles within its own bound.
    const factsLookup = this.opts.imageFacts?.(id).catch(() => undefined);
    try {
      if (req.rootfs.length > 0) {
        await mountRootfs(
          req.rootfs.map((m: Mount) => ({ type: m.type, source: m.source, options: m.options })),
          rootfsDir,
        );
        rootfsMounted = true;
      }
      const spec = readBundleSpec(bundle);
      const rootfs = resolve(bundle, spec.root!.path);
      // Image platform and Wasm artifact layers from containerd's API
      // (detection rules 2–3); undefined when containerd cannot tell.
      const facts = await factsLookup;
      const image = facts && { platform: facts.platform, wasmLayer: facts.wasmLayer };
      const workload = detectWorkload({ annotations: spec.annotations ?? {}, args: spec.process?.args ?? [], env: spec.process?.env ?? [], rootfs, ...(image ? { image } : {}) });
      log().info({ id, bundle, workload, image: facts && { name: facts.name, ...image } }, 'workload detected');
      let runBundle = bundle;
      let kit: Kit | undefined;
      if (workload.kind !== 'linux') {
        kit = this.kit();
        derived = join(bundle, DERIVED_BUNDLE);
        rmSync(derived, { recursive: true, force: true });
        mkdirSync(derived, { mode: 0o700 });
        // A component is transpiled once (cached by digest, shared with the OCI CLI) and mounted read-only.
        const wasmOptions = await componentRewriteOptions(rootfs, spec, defaultComponentCacheDir());
        writeFileSync(join(derived, 'config.json'), JSON.stringify(rewriteSpecForWasm(anchorToBundle(spec, bundle), kit, undefined, wasmOptions)));
        runBundle = derived;
      }
      const paths = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr };
      let pid: number;
      if (req.terminal) {
        const r = await withConsole((sock) => runc.create(id, runBundle, ['ignore', 'ignore', 'ignore'], () => undefined, sock), paths);
        pid = r.pid;
        io = r.io;
      } else {
        io = openProcessIO(paths, o ? { uid: o.ioUid, gid: o.ioGid } : undefined);
        const theIO = io;
        pid = await runc.create(id, runBundle, io.childStdio, () => theIO.closeChildEnds());
      }
      const init = newProc(id, '', { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal });
      init.pid = pid;
      init.io = io;
      const pidNs = spec.linux?.namespaces?.find((n) => n.type === 'pid');
      const c: Container = {
        id,
        bundle,
        runc,
        init,
        execs: new Map(),
        spec,
        workload,
        rootfsMounted,
        kit,
        killAllOnExit: !pidNs || !!pidNs.path,
        memCgroup: undefined,
        oomKills: 0n,
      };
      c.memCgroup = memoryCgroupDir(pid);
      c.oomKills = oomKillCount(c.memCgroup);
      this.containers.set(id, c);
      this.opts.onContainerAdded?.(bundle);
      void this.opts.reaper
        .track(pid)
        .then((e) => this.onExit(c, init, e))
        .catch((err: unknown) => log().error({ err, id }, 'handling init exit failed'));
      this.opts.events.publish(TaskCreateSchema, {
        containerId: id,
        bundle,
        rootfs: req.rootfs,
        io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
        checkpoint: req.checkpoint,
        pid,
      });
      return { pid };
    } catch (err) {
      io?.close();
      if (derived) rmSync(derived, { recursive: true, force: true });
      if (rootfsMounted) await unmountAll(rootfsDir);
      if (err instanceof UnsupportedIOError) throw new TtrpcError(Code.UNIMPLEMENTED, err.message);
      throw asUnknown(err);
    }
  }

  private async onExit(c: Container, p: Proc, e: Exit): Promise<void> {
    // TaskStart / TaskExecStarted first (containerd requires the order).
    if (p.starting) await p.starting.catch(() => undefined);
    if (p === c.init && c.killAllOnExit) {
      await c.runc.kill(c.id, 9, true).catch((err: unknown) => log().debug({ err }, 'kill --all after init exit'));
    }
    this.checkOom(c);
    p.status = Status.STOPPED;
    p.exitStatus = e.status;
    p.exitedAt = e.at;
    log().info({ id: c.id, execId: p.execId, pid: p.pid, status: e.status }, 'process exited');
    if (p === c.init) {
      // Execs cannot outlive the container's init.
      for (const x of c.execs.values()) {
        if (x.status === Status.RUNNING && x.pid > 0) {
          try {
            process.kill(x.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    }
    p.markExited();
    this.opts.events.publish(TaskExitSchema, { containerId: c.id, id: p.id, pid: p.pid, exitStatus: e.status, exitedAt: ts(e.at) });
  }

  /**
   * TaskOOM when the container's cgroup counted a new OOM kill. Checked at
   * every process exit (before its TaskExit) and by checkOomAll().
   */
  private checkOom(c: Container): void {
    const n = oomKillCount(c.memCgroup);
    if (n > c.oomKills) {
      c.oomKills = n;
      log().info({ id: c.id }, 'OOM kill in container');
      this.opts.events.publish(TaskOOMSchema, { containerId: c.id });
    }
  }

  /** Poll every running container for OOM kills of non-init processes. */
  checkOomAll(): void {
    for (const c of this.containers.values()) if (c.init.status !== Status.STOPPED) this.checkOom(c);
  }

  async start(id: string, execId: string): Promise<{ pid: number }> {
    const c = this.get(id);
    const p = this.proc(c, execId);
    if (p.status !== Status.CREATED || p.starting) {
      throw new TtrpcError(Code.FAILED_PRECONDITION, `cannot start a process in ${Status[p.status]?.toLowerCase()} state`);
    }
    const run = execId ? this.startExec(c, p) : this.startInit(c, p);
    p.starting = run;
    try {
      await run;
    } catch (err) {
      throw asUnknown(err);
    } finally {
      p.starting = undefined;
    }
    return { pid: p.pid };
  }

  private async startInit(c: Container, p: Proc): Promise<void> {
    await c.runc.start(c.id);
    if (p.status === Status.CREATED) p.status = Status.RUNNING;
    this.opts.events.publish(TaskStartSchema, { containerId: c.id, pid: p.pid });
  }

  private async startExec(c: Container, p: Proc): Promise<void> {
    if (c.init.status !== Status.RUNNING && c.init.status !== Status.CREATED) {
      throw new TtrpcError(Code.FAILED_PRECONDITION, `container ${c.id} is not running`);
    }
    let spec = p.spec!;
    if (c.workload.kind !== 'linux') spec = wasmHostProcess(spec, c.kit ?? this.kit());
    const dir = mkdtempSync(join(process.env.XDG_RUNTIME_DIR || tmpdir(), 'runc-process'));
    const file = join(dir, 'process.json');
    let io: ProcessIO | undefined;
    try {
      writeFileSync(file, JSON.stringify(spec), { mode: 0o600 });
      const paths = { stdin: p.stdin, stdout: p.stdout, stderr: p.stderr };
      if (p.terminal) {
        const r = await withConsole((sock) => c.runc.exec(c.id, p.execId, file, ['ignore', 'ignore', 'ignore'], () => undefined, sock), paths);
        io = r.io;
        p.io = io;
        p.pid = r.pid;
      } else {
        io = openProcessIO(paths);
        const theIO = io;
        p.io = io;
        p.pid = await c.runc.exec(c.id, p.execId, file, io.childStdio, () => theIO.closeChildEnds());
      }
    } catch (err) {
      io?.close();
      p.io = undefined;
      throw err;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    p.status = Status.RUNNING;
    void this.opts.reaper
      .track(p.pid)
      .then((e) => this.onExit(c, p, e))
      .catch((err: unknown) => log().error({ err, id: c.id, execId: p.execId }, 'handling exec exit failed'));
    this.opts.events.publish(TaskExecStartedSchema, { containerId: c.id, execId: p.execId, pid: p.pid });
  }

  async exec(req: { id: string; execId: string; terminal: boolean; stdin: string; stdout: string; stderr: string; spec?: Any | undefined }): Promise<void> {
    const c = this.get(req.id);
    if (!req.execId) throw new TtrpcError(Code.INVALID_ARGUMENT, 'exec id cannot be empty');
    if (c.execs.has(req.execId)) throw new TtrpcError(Code.ALREADY_EXISTS, `id ${req.execId}: already exists`);
    if (c.init.status === Status.STOPPED) throw new TtrpcError(Code.FAILED_PRECONDITION, 'container is stopped');
    if (!req.spec || anyTypeName(req.spec) !== OCI_TYPE_URL.Process) throw new TtrpcError(Code.INVALID_ARGUMENT, 'exec spec must be an OCI Process');
    let spec: OciProcess;
    try {
      spec = unpackJsonAny(req.spec) as OciProcess;
    } catch (err) {
      throw new TtrpcError(Code.INVALID_ARGUMENT, `bad exec spec: ${(err as Error).message}`);
    }
    spec.terminal = req.terminal;
    const p = newProc(req.execId, req.execId, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal });
    p.spec = spec;
    c.execs.set(req.execId, p);
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
      stdin: p.stdin,
      stdout: p.stdout,
      stderr: p.stderr,
      terminal: p.terminal,
      exitStatus: p.exitStatus,
      exitedAt: ts(p.exitedAt),
    };
  }

  async wait(id: string, execId: string): Promise<{ exitStatus: number; exitedAt: Timestamp | undefined }> {
    const c = this.get(id);
    const p = this.proc(c, execId);
    await p.exited;
    return { exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt) };
  }

  async kill(id: string, execId: string, signal: number, all: boolean): Promise<void> {
    const c = this.get(id);
    const p = this.proc(c, execId);
    if (p.status === Status.STOPPED) throw new TtrpcError(Code.NOT_FOUND, 'process already finished');
    if (execId) {
      if (p.pid === 0) throw new TtrpcError(Code.FAILED_PRECONDITION, 'process not created');
      try {
        process.kill(p.pid, signal);
      } catch (err) {
        throw killError(err);
      }
      return;
    }
    try {
      await c.runc.kill(c.id, signal, all);
    } catch (err) {
      throw killError(err);
    }
  }

  async delete(id: string, execId: string): Promise<{ pid: number; exitStatus: number; exitedAt: Timestamp | undefined }> {
    const c = this.get(id);
    const p = this.proc(c, execId);
    if (p.status === Status.RUNNING) throw new TtrpcError(Code.UNKNOWN, 'cannot delete a running process');
    if (p.status === Status.PAUSED) throw new TtrpcError(Code.UNKNOWN, 'cannot delete a paused process');
    if (execId) {
      p.io?.close();
      rmSync(join(c.bundle, `${execId}.pid`), { force: true });
      c.execs.delete(execId);
      return { pid: p.pid, exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt) };
    }
    if (p.status === Status.CREATED) {
      // runc delete of a created container kills its init; the reaper reports it.
      try {
        await c.runc.delete(c.id, true);
      } catch (err) {
        if (!/does not exist/.test((err as Error).message)) throw asUnknown(err);
      }
      await Promise.race([p.exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
    }
    if (p.io) await Promise.race([p.io.done, new Promise((r) => setTimeout(r, 2000).unref())]);
    try {
      await c.runc.delete(c.id, false);
    } catch (err) {
      if (!/does not exist/.test((err as Error).message)) throw asUnknown(err);
    }
    p.io?.close();
    for (const x of c.execs.values()) x.io?.close();
    if (c.rootfsMounted) await unmountAll(join(c.bundle, 'rootfs'));
    rmSync(join(c.bundle, DERIVED_BUNDLE), { recursive: true, force: true });
    this.containers.delete(id);
    this.opts.onContainerRemoved?.(c.bundle);
    const res = { pid: p.pid, exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt) };
    this.opts.events.publish(TaskDeleteSchema, { containerId: id, pid: p.pid, exitStatus: p.exitStatus, exitedAt: res.exitedAt, id: '' });
    return res;
  }

  async pids(id: string): Promise<{ pid: number; info?: Any }[]> {
    const c = this.get(id);
    let pids: number[];
    try {
      pids = await c.runc.ps(c.id);
    } catch (err) {
      throw asUnknown(err);
    }
    const byPid = new Map<number, string>();
    for (const x of c.execs.values()) if (x.pid) byPid.set(x.pid, x.execId);
    return pids.map((pid) => {
      const execId = byPid.get(pid);
      return execId === undefined ? { pid } : { pid, info: packAny(runcOptions.ProcessDetailsSchema, { execId }) };
    });
  }

  async pause(id: string): Promise<void> {
    const c = this.get(id);
    if (c.init.status !== Status.RUNNING) throw new TtrpcError(Code.UNKNOWN, `cannot pause task in ${Status[c.init.status]?.toLowerCase()} state`);
    c.init.status = Status.PAUSING;
    try {
      await c.runc.pause(c.id);
      c.init.status = Status.PAUSED;
    } catch (err) {
      if (c.init.status === Status.PAUSING) c.init.status = Status.RUNNING;
      throw asUnknown(err);
    }
    this.opts.events.publish(TaskPausedSchema, { containerId: id });
  }

  async resume(id: string): Promise<void> {
    const c = this.get(id);
    if (c.init.status !== Status.PAUSED) throw new TtrpcError(Code.UNKNOWN, `cannot resume task in ${Status[c.init.status]?.toLowerCase()} state`);
    try {
      await c.runc.resume(c.id);
    } catch (err) {
      throw asUnknown(err);
    }
    if (c.init.status === Status.PAUSED) c.init.status = Status.RUNNING;
    this.opts.events.publish(TaskResumedSchema, { containerId: id });
  }

  resizePty(id: string, execId: string, width: number, height: number): void {
    const c = this.get(id);
    const p = this.proc(c, execId);
    const master = (p.io as { master?: number } | undefined)?.master;
    if (master === undefined || p.status === Status.STOPPED) return; // no console: a no-op, as in runc's shim
    try {
      setWinsize(master, height, width);
    } catch (err) {
      throw asUnknown(err);
    }
  }

  closeIO(id: string, execId: string, stdin: boolean): void {
    const c = this.get(id);
    const p = this.proc(c, execId);
    if (stdin) p.io?.closeStdin();
  }

  async update(id: string, resources: Any | undefined): Promise<void> {
    const c = this.get(id);
    if (c.init.status === Status.STOPPED) throw new TtrpcError(Code.FAILED_PRECONDITION, 'container is stopped');
    if (!resources || anyTypeName(resources) !== OCI_TYPE_URL.LinuxResources) {
      throw new TtrpcError(Code.INVALID_ARGUMENT, 'update resources must be OCI LinuxResources');
    }
    try {
      await c.runc.update(c.id, new TextDecoder().decode(resources.value));
    } catch (err) {
      throw asUnknown(err);
    }
  }

  /** Bundles of the containers still managed. */
  bundles(): string[] {
    return [...this.containers.values()].map((c) => c.bundle);
  }

  /** The init pid of `id`, or 0. */
  taskPid(id: string): number {
    return this.containers.get(id)?.init.pid ?? 0;
  }

  cgroupsPath(id: string): string | undefined {
    return this.get(id).spec.linux?.cgroupsPath;
  }

  initPid(id: string): number {
    return this.get(id).init.pid;
  }
}
