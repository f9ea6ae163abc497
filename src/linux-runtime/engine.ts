// What the front ends (the shim, the OCI CLI, `tugboat run`) know about
// running a workload, whatever runs it. A Linux workload and a Wasm workload
// at `container` isolation are both runc containers; the `pod` and `process`
// levels (guests of a shared host, or of the calling process) come as one
// more WasmEngine each (one file each), registered in select-engine.ts, and
// the front ends do not change:
//
//   prepareWorkload (workload.ts) ─ Linux ─────────────▶ runc workload (runc-workload.ts)
//                                 └ Wasm ─ selectEngine(level).prepare ─▶ PreparedWorkload
//
// A PreparedWorkload is what a front end holds: the shim drives it through
// ContainerLifecycle, `tugboat run` calls runForeground, the OCI CLI (which
// hands every other runc command to runc itself) needs its runc bundle.
import type { Process, Spec } from '../oci/runtime-spec.js';
import type { Workload } from '../oci/detect.js';
import type { CgroupMetrics } from './cgroup-stats.js';
import type { Exit, Reaper } from './reaper.js';
import type { Runc, RuncIO } from './runc.js';

export type IsolationLevel = 'container' | 'pod' | 'process';
/** Chooses the level per container; the default is `container`. */
export const ISOLATION_ANNOTATION = 'io.tugboat.isolation';

/** Where engines find their parts; from src/defaults.ts unless a front end was told otherwise. */
export interface EngineSettings {
  /** Absolute directory of the runtime kit (defaults.ts kitDir). */
  kitDir: string;
  /** Transpiled components (defaults.ts componentCacheDir). */
  componentCacheDir: string;
}

export interface WasmPrepareInput {
  id: string;
  workload: Workload;
  /** The caller's spec, as the caller wrote it (bundle-relative paths allowed). */
  spec: Spec;
  /** The caller's bundle directory (relative paths of `spec` are relative to it). */
  bundle: string;
  /** The container's root filesystem on the host (absolute). */
  rootfs: string;
  /** Where this engine may write what it derives (the front end's choice; it removes it via `remove`). */
  home: string;
  settings: EngineSettings;
}

export interface WasmEngine {
  readonly level: IsolationLevel;
  /** Everything that must exist before the container does. Writes only under `input.home`. */
  prepare(input: WasmPrepareInput): Promise<PreparedWorkload>;
  /** A workload this engine prepared earlier in `home` (another process of the OCI CLI), or undefined. */
  reopen(home: string, settings: EngineSettings): PreparedWorkload | undefined;
  /** One line for `tugboat version`: what this engine runs guests with. */
  describe(settings: EngineSettings): string;
}

/** A process a lifecycle started: its pid, and its end. */
export interface ProcessHandle {
  pid: number;
  /** Resolves once the process is gone, with its exit status (128+N for signal N). */
  exited: Promise<Exit>;
}

/** How the shim hands a process its stdio (see src/shim/stdio.ts). */
export type ProcessStdio = RuncIO;

/**
 * One container's life, driven by the shim. Errors are TugboatErrors with a
 * kind (NotFound for a process already gone, …).
 */
export interface ContainerLifecycle {
  /** Creates the container and its init process, not started yet. */
  create(io: ProcessStdio): Promise<ProcessHandle>;
  start(): Promise<void>;
  /** A signal to the init (all: to every process of the container). */
  kill(signal: number, all: boolean): Promise<void>;
  /** A signal to a process exec'd into the container. */
  signal(process: ProcessHandle, signal: number): void;
  pause(): Promise<void>;
  resume(): Promise<void>;
  pids(): Promise<number[]>;
  stats(): CgroupMetrics | Promise<CgroupMetrics>;
  /** True when the container counted an OOM kill since the last call. */
  oomKilled(): boolean;
  /** OCI LinuxResources as JSON. */
  update(resourcesJson: string): Promise<void>;
  /** Another process in the running container, started at once. */
  exec(execId: string, process: Process, io: ProcessStdio): Promise<ProcessHandle>;
  /** Removes the container (force: kills it first); a container already gone is fine. */
  delete(force: boolean): Promise<void>;
}

/** What the lifecycle of a runc-backed workload needs from the shim. */
export interface LifecycleContext {
  id: string;
  runc: Runc;
  reaper: Reaper;
  /** Directory for pid files (init.pid, <exec id>.pid): containerd's bundle. */
  stateDir: string;
  /** Private temp dirs (exec process files). */
  tmpDir: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
}

/** What `tugboat run` asks of a container beyond its spec. */
export interface ForegroundOptions {
  /** `-p HOST:CONTAINER`: an HTTP component's port, served on the host's network (process isolation). */
  ports?: readonly PortMapping[];
}

export interface PortMapping {
  host: number;
  container: number;
}

export interface PreparedWorkload {
  readonly workload: Workload;
  /** The engine's level; undefined for Linux. */
  readonly isolation: IsolationLevel | undefined;
  /** The spec as it runs: the caller's for Linux, the derived one for Wasm. */
  readonly spec: Spec;
  /** The container's process as its caller described it (for Wasm: the guest's argv, env, cwd). */
  readonly process: Process;
  /** Where runc reads that spec; undefined for engines that run no runc container of their own. */
  readonly runcBundle: string | undefined;
  /** The process to run for `process` when it is exec'd into this container. */
  execProcess(process: Process): Process;
  /** The shim's handle on the container. */
  lifecycle(ctx: LifecycleContext): ContainerLifecycle;
  /** `tugboat run`: runs the container to its end with our stdio; resolves to its exit status. */
  runForeground(runc: Runc, id: string, options?: ForegroundOptions): Promise<number>;
  /** Removes what preparing wrote; safe to call twice. */
  remove(): Promise<void>;
}
