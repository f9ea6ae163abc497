// A Wasm workload whose guests run in a shared host (the `process` and `pod`
// isolation levels): no runc container of its own, no derived bundle. The
// shim drives it through HostedContainer, a ContainerLifecycle over a
// GuestHost (this process, or the group's pod host); `tugboat run` runs it in
// the foreground in its own process (process-engine.ts).
//
// Every guest of a container (its init and each exec'd module) shares the
// container's root directory, mounts and preopens, and has its own args, env,
// stdio, memory and fate. Their keys in the host are the container id and
// "<container id>/<exec id>".
import { closeSync, constants as fsc, openSync } from 'node:fs';
import { ConfigError, UnimplementedError, UsageError } from '../errors.js';
import { log } from '../log.js';
import type { Workload } from '../oci/detect.js';
import type { LinuxResources, Process, Spec } from '../oci/runtime-spec.js';
import { DEFAULT_HTTP_PORT, servingOptions } from '../wasi-host/http/settings.js';
import { defaultPreopens, envListToObject, type Preopen } from '../wasi-host/guest-config.js';
import { WasiError } from '../wasi-host/preview1/errno.js';
import { openAt } from '../wasi-host/preview1/resolve.js';
import { O } from '../wasi-host/preview1/sys.js';
import type { HostedGuestSpec } from '../wasi-host/shared/hosted-guest.js';
import type { GuestHost, GuestSpec } from '../wasi-host/shared/local-host.js';
import { guestMetrics, type CgroupMetrics } from './cgroup-stats.js';
import { anchorToBundle } from './bundle-spec.js';
import type { ContainerLifecycle, ForegroundOptions, IsolationLevel, LifecycleContext, PreparedWorkload, ProcessHandle, ProcessStdio, WasmPrepareInput } from './engine.js';
import { componentForWorkload, COMPONENT_MOUNT_POINT } from './component-cache.js';
import { parsePreopens, PREOPENS_ANNOTATION } from './preopens.js';
import { wasiBackendOf } from './wasm-bundle.js';
import { guestMounts, mkdirInRoot, mountGuestMounts, unmountGuestMounts } from './guest-mounts.js';
import { componentMount } from './wasm-bundle.js';

export interface HostedWorkloadParts {
  workload: Workload;
  isolation: Extract<IsolationLevel, 'process' | 'pod'>;
  /** The caller's spec, paths anchored to its bundle. */
  spec: Spec;
  /** The container's root filesystem on the host. */
  rootfs: string;
  /** io.tugboat.wasm.preopens: directories inside the root. */
  preopens: Preopen[];
  /** A component: its transpiled cache entry. */
  component?: HostedComponentInfo;
  /** The shim's host for this container's guests. */
  host(ctx: LifecycleContext, spec: Spec): Promise<GuestHost>;
  /** `tugboat run`: the container in the foreground, in this process. */
  runForeground(options?: ForegroundOptions): Promise<number>;
}

/** A component container's transpiled cache entry and how it is served. */
export interface HostedComponentInfo {
  /** The cache entry on the host (read-only to guests: mounted read-only, or read through a descriptor). */
  source: string;
  entry: string;
  world: 'command' | 'http' | 'unknown';
  /** HTTP: the port it serves on (io.tugboat.http.port, else PORT, else 8080). */
  port: number;
  /** HTTP: instances per handler thread, handler threads (io.tugboat.http.*), reusable instances (the component's declaration). */
  pool?: number;
  threads?: number;
  reuse?: boolean;
  reset?: boolean;
}

/** The container's memory limit in bytes (none when unset, 0 or negative). */
export function memoryLimitOf(resources: LinuxResources | undefined): number | undefined {
  const limit = resources?.memory?.limit;
  return limit !== undefined && limit > 0 ? limit : undefined;
}

/** What the host needs to run `process` as a guest of a container whose root is `rootFd`. */
export function hostedGuestSpec(
  process: Process,
  o: { module?: string | undefined; preopens: readonly Preopen[]; memoryLimit: number | undefined; rootFd: number; stdio: [number, number, number] },
): HostedGuestSpec {
  const cwd = process.cwd || '/';
  return {
    args: process.args ?? [],
    env: process.env ?? [],
    rootFd: o.rootFd,
    cwd,
    ...(o.module !== undefined ? { module: o.module } : {}),
    preopens: defaultPreopens(cwd, o.preopens),
    stdio: o.stdio,
    ...(o.memoryLimit !== undefined ? { memoryLimit: o.memoryLimit } : {}),
  };
}

/** The working directory inside the root, made if missing (as runc makes a process's cwd). */
export function ensureCwd(rootFd: number, cwd: string): void {
  try {
    mkdirInRoot({ fd: rootFd, mode: 'in-root' }, cwd);
  } catch (err) {
    const why = err instanceof WasiError ? `errno ${err.errno}` : (err as Error).message;
    throw new ConfigError(`working directory ${cwd}: cannot be made inside the container (${why})`, { kind: 'InvalidArgument' });
  }
}

/** The init of a component container: a component guest over its cache entry's descriptor. */
export function withComponent(guest: HostedGuestSpec, component: HostedComponentInfo | undefined, componentFd: number, port?: number): GuestSpec {
  if (!component || componentFd < 0) return guest;
  const { module: _module, ...rest } = guest;
  return { ...rest, preopens: rest.preopens ?? [], componentFd, entry: component.entry, world: component.world, port: port ?? component.port, ...servingOptions(component) };
}

/** Every preopen must name a directory inside the root (after the mounts are in place); else one clear line. */
export function checkPreopens(rootFd: number, preopens: readonly Preopen[]): void {
  for (const p of preopens) {
    try {
      closeSync(openAt({ fd: rootFd, mode: 'in-root' }, Buffer.from(p.path), O.PATH | O.DIRECTORY, 0, true));
    } catch (err) {
      if (!(err instanceof WasiError)) throw err;
      // As at `container` level (preopens.ts), where the same check runs before runc.
      throw new UsageError(`annotation ${PREOPENS_ANNOTATION}: ${p.path} is not a directory in the container`);
    }
  }
}

/**
 * What both shared-host engines check and derive before a container exists:
 * bad input first, then a component's transpiled entry (the component cache
 * is the only thing written).
 */
export async function prepareHosted(
  input: WasmPrepareInput,
  isolation: HostedWorkloadParts['isolation'],
): Promise<{ spec: Spec; preopens: Preopen[]; component?: HostedComponentInfo }> {
  if (!input.spec.process) throw new ConfigError('a Wasm container needs a process to run (process.args)', { kind: 'InvalidArgument' });
  const preopens = parsePreopens(input.spec.annotations?.[PREOPENS_ANNOTATION]);
  if (wasiBackendOf(input.spec.annotations) === 'uvwasi') {
    throw new UsageError(`annotation io.tugboat.wasi=uvwasi: node:wasi is no sandbox and runs only at container isolation, not ${isolation}`);
  }
  const spec = anchorToBundle(input.spec, input.bundle);
  const { component } = await componentForWorkload(input);
  if (!component) return { spec, preopens };
  const fromEnv = Number(envListToObject(spec.process?.env ?? []).PORT);
  const port = component.port ?? (Number.isInteger(fromEnv) && fromEnv > 0 && fromEnv < 65536 ? fromEnv : DEFAULT_HTTP_PORT);
  return { spec, preopens, component: { source: component.source, entry: component.entry, world: component.world, port, ...servingOptions(component) } };
}

export function hostedWorkload(parts: HostedWorkloadParts): PreparedWorkload {
  const process = parts.spec.process!;
  return {
    workload: parts.workload,
    isolation: parts.isolation,
    spec: parts.spec,
    process,
    runcBundle: undefined,
    execProcess: (p) => p,
    lifecycle: (ctx) => new HostedContainer(ctx, parts),
    runForeground: (_runc, _id, options) => parts.runForeground(options),
    remove: () => Promise.resolve(),
  };
}

/** The guest's stdio from the shim's: its fds, or /dev/null (opened here) for what containerd does not attach. */
function stdioFds(io: ProcessStdio): { fds: [number, number, number]; opened: number[] } {
  const given = Array.isArray(io.stdio) ? io.stdio : [];
  const opened: number[] = [];
  const fds = [0, 1, 2].map((i) => {
    const v = given[i];
    if (typeof v === 'number') return v;
    const fd = openSync('/dev/null', fsc.O_RDWR);
    opened.push(fd);
    return fd;
  }) as [number, number, number];
  return { fds, opened };
}

export class HostedContainer implements ContainerLifecycle {
  private host: GuestHost | undefined;
  private rootFd = -1;
  private readonly keys = new Map<ProcessHandle, string>();
  /** Guests created and not yet ended. */
  private readonly live = new Set<string>();
  private memoryLimit: number | undefined;
  private oomSeen = false;
  private oomReported = false;

  constructor(
    private readonly ctx: LifecycleContext,
    private readonly parts: HostedWorkloadParts,
  ) {
    this.memoryLimit = memoryLimitOf(parts.spec.linux?.resources);
  }

  private need(): GuestHost {
    if (!this.host) throw new ConfigError('the container was not created');
    return this.host;
  }

  async create(io: ProcessStdio): Promise<ProcessHandle> {
    if (io.consoleSocket) throw new UnimplementedError(`a terminal (tty) is not available at ${this.parts.isolation} isolation (io.tugboat.isolation=container has one)`);
    const rootFd = openSync(this.parts.rootfs, fsc.O_RDONLY | fsc.O_DIRECTORY);
    let componentFd = -1;
    try {
      const component = this.parts.component;
      // A component's transpiled entry is mounted read-only in the guest's root, as at `container` level:
      // the host reads it through that mount, so even the host cannot change the shared cache.
      const mounts = [...guestMounts(this.parts.spec.mounts), ...(component ? [componentMount(component.source, COMPONENT_MOUNT_POINT)] : [])];
      mountGuestMounts(rootFd, mounts);
      checkPreopens(rootFd, this.parts.preopens);
      if (component) componentFd = openAt({ fd: rootFd, mode: 'in-root' }, Buffer.from(COMPONENT_MOUNT_POINT), O.RDONLY | O.DIRECTORY, 0, false);
      this.host = await this.parts.host(this.ctx, this.parts.spec);
      this.rootFd = rootFd;
      return await this.add(this.ctx.id, this.parts.spec.process!, io, this.parts.workload.entrypoint, componentFd);
    } catch (err) {
      this.rootFd = -1;
      closeSync(rootFd);
      unmountGuestMounts(this.parts.rootfs);
      this.host?.release?.();
      this.host = undefined;
      throw err;
    } finally {
      if (componentFd >= 0) closeSync(componentFd);
    }
  }

  private async add(key: string, process: Process, io: ProcessStdio, module?: string, componentFd = -1): Promise<ProcessHandle> {
    const host = this.need();
    ensureCwd(this.rootFd, process.cwd || '/');
    const { fds, opened } = stdioFds(io);
    try {
      const guest = hostedGuestSpec(process, { module, preopens: this.parts.preopens, memoryLimit: this.memoryLimit, rootFd: this.rootFd, stdio: fds });
      await host.create(key, withComponent(guest, this.parts.component, componentFd));
    } finally {
      for (const fd of opened) closeSync(fd);
    }
    io.onSpawned?.();
    this.live.add(key);
    const handle: ProcessHandle = {
      pid: host.pid,
      exited: host.ended(key).then((e) => {
        this.live.delete(key);
        if (e.oom) this.oomSeen = true;
        return { status: e.status, at: e.at };
      }),
    };
    this.keys.set(handle, key);
    return handle;
  }

  async start(): Promise<void> {
    await this.need().start(this.ctx.id);
  }

  async kill(signal: number, all: boolean): Promise<void> {
    const host = this.need();
    await host.kill(this.ctx.id, signal);
    if (all) for (const key of this.live) if (key !== this.ctx.id) await host.kill(key, signal);
  }

  signal(process: ProcessHandle, signal: number): void {
    const key = this.keys.get(process);
    if (key === undefined) return;
    this.need()
      .kill(key, signal)
      .catch((err: unknown) => log().debug({ err, key }, 'signal to a guest that is gone'));
  }

  async pause(): Promise<void> {
    for (const key of this.live) await this.need().pause(key);
  }

  async resume(): Promise<void> {
    for (const key of this.live) await this.need().resume(key);
  }

  async pids(): Promise<number[]> {
    return [this.need().pid];
  }

  async stats(): Promise<CgroupMetrics> {
    const host = this.need();
    const usage = await host.usage();
    let memoryBytes = 0;
    let cpuMs = 0;
    const keys = [...this.keys.values()].filter((k) => this.live.has(k));
    for (const key of keys) {
      const s = await host.stats(key);
      memoryBytes += s.memoryBytes;
      cpuMs += s.cpuMs;
    }
    const hostShareBytes = (Math.max(0, usage.rssBytes - usage.guestMemoryBytes) / Math.max(1, usage.guests)) * keys.length;
    return guestMetrics({ memoryBytes, memoryLimit: this.memoryLimit, cpuMs, guests: keys.length, hostShareBytes });
  }

  oomKilled(): boolean {
    if (!this.oomSeen || this.oomReported) return false;
    this.oomReported = true;
    return true;
  }

  async update(resourcesJson: string): Promise<void> {
    let resources: LinuxResources;
    try {
      resources = JSON.parse(resourcesJson) as LinuxResources;
    } catch (err) {
      throw new ConfigError(`update: resources are not JSON: ${(err as Error).message}`, { kind: 'InvalidArgument' });
    }
    if (resources.memory?.limit === undefined) return;
    this.memoryLimit = memoryLimitOf(resources);
    for (const key of this.live) await this.need().setMemoryLimit(key, this.memoryLimit);
  }

  async exec(execId: string, process: Process, io: ProcessStdio): Promise<ProcessHandle> {
    if (io.consoleSocket) throw new UnimplementedError(`a terminal (tty) is not available at ${this.parts.isolation} isolation`);
    const key = `${this.ctx.id}/${execId}`;
    const handle = await this.add(key, process, io);
    await this.need().start(key);
    return handle;
  }

  async delete(_force: boolean): Promise<void> {
    const host = this.host;
    if (host) for (const key of new Set(this.keys.values())) await host.delete(key).catch((err: unknown) => log().warn({ err, key }, 'deleting a guest failed'));
    this.keys.clear();
    host?.release?.();
    this.host = undefined;
    if (this.rootFd >= 0) closeSync(this.rootFd);
    this.rootFd = -1;
    unmountGuestMounts(this.parts.rootfs);
  }
}
