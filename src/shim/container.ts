// One task's container in the shim: its processes, and the lifecycle that
// runs them (a runc container for Linux and for Wasm at `container`
// isolation; see src/linux-runtime/engine.ts). `Container.create` is the
// shim's whole Create path, in order:
//
//   runtime options → options.json → rootfs mounts → config.json →
//   image facts (containerd's API) → prepareWorkload (detect; Wasm: the
//   engine derives its bundle) → stdio → lifecycle.create (runc create)
//
// and on any failure undoes what it did, in reverse.
import { join } from 'node:path';
import { runtimeTmpDir, shimDerivedBundleDir } from '../defaults.js';
import { UnimplementedError } from '../errors.js';
import { log } from '../log.js';
import { readBundleSpec } from '../linux-runtime/bundle-spec.js';
import type { ContainerLifecycle, EngineSettings, IsolationLevel, PreparedWorkload, ProcessHandle, ProcessStdio } from '../linux-runtime/engine.js';
import type { Reaper } from '../linux-runtime/reaper.js';
import { Runc } from '../linux-runtime/runc.js';
import { prepareWorkload } from '../linux-runtime/workload.js';
import type { Process as OciProcess } from '../oci/runtime-spec.js';
import { ConsoleSocket } from './console.js';
import type { ImageFacts } from './containerd-api.js';
import { Process, type ProcessStdioPaths } from './process.js';
import { GROUP_ANNOTATIONS } from './address.js';
import { anyTypeName, runcOptions, runtimeOptions, unpackAny, type Any, type CreateTaskRequest, type Mount } from './proto/index.js';
import { readShimConfig, type ShimConfig } from './shim-config.js';
import { mountRootfs, unmountAll } from './rootfs.js';
import { runcConfigFor, saveShimOptions } from './runc-options.js';
import { openProcessIO, openTerminalIO, type ProcessIO } from './stdio.js';

/** Runtime options as containerd passes them (containerd.runc.v1.Options), or undefined (another type: ignored). */
export function parseRuncOptions(any: Any | undefined): runcOptions.Options | undefined {
  if (!any || any.typeUrl === '') return undefined;
  if (anyTypeName(any) === runcOptions.OptionsSchema.typeName) return unpackAny(any, runcOptions.OptionsSchema);
  if (anyTypeName(any) !== runtimeOptions.OptionsSchema.typeName) log().info({ type: any.typeUrl }, 'ignoring runtime options of another type');
  return undefined;
}

/** The shim's settings from runtimeoptions.v1.Options.config_path (CRI's ConfigPath, ctr --runtime-config-path), if given. */
export function shimConfigOf(any: Any | undefined): ShimConfig {
  if (!any || anyTypeName(any) !== runtimeOptions.OptionsSchema.typeName) return {};
  const o = unpackAny(any, runtimeOptions.OptionsSchema);
  return o?.configPath ? readShimConfig(o.configPath) : {};
}

/**
 * Where a Wasm container runs when it names no level (io.tugboat.isolation):
 * the runtime's configured level, else `pod` for a container of a group (a
 * CRI pod, io.containerd.runc.v2.group), else `container`.
 */
export function defaultIsolation(annotations: Record<string, string> | undefined, config: ShimConfig): IsolationLevel {
  if (config.isolation) return config.isolation;
  return GROUP_ANNOTATIONS.some((k) => annotations?.[k]) ? 'pod' : 'container';
}

export interface ContainerContext {
  namespace: string;
  reaper: Reaper;
  settings: EngineSettings;
  /** runc binary when Options.binary_name is empty. */
  runcBinary?: string;
  /** The image's facts from containerd (asked for at once; settles within its own bound). */
  imageFacts?: Promise<ImageFacts | undefined>;
}

/**
 * Opens a process's stdio and starts it through `start`: real pipes, or a
 * console socket whose pty master becomes the process's IO.
 */
async function withIO(
  paths: ProcessStdioPaths,
  owner: { uid: number; gid: number } | undefined,
  start: (stdio: ProcessStdio) => Promise<ProcessHandle>,
): Promise<{ handle: ProcessHandle; io: ProcessIO }> {
  if (paths.terminal) {
    const cs = await ConsoleSocket.create(runtimeTmpDir());
    try {
      const handle = await start({ stdio: ['ignore', 'ignore', 'ignore'], consoleSocket: cs.path });
      return { handle, io: await openTerminalIO(paths, await cs.master) };
    } finally {
      cs.close();
    }
  }
  const io = await openProcessIO(paths, owner);
  try {
    return { handle: await start({ stdio: io.childStdio, onSpawned: () => io.closeChildEnds() }), io };
  } catch (err) {
    io.close();
    throw err;
  }
}

export class Container {
  readonly execs = new Map<string, Process>();

  private constructor(
    readonly id: string,
    readonly bundle: string,
    readonly init: Process,
    readonly lifecycle: ContainerLifecycle,
    readonly prepared: PreparedWorkload,
    private readonly rootfsMounted: boolean,
  ) {}

  static async create(req: CreateTaskRequest, ctx: ContainerContext): Promise<Container> {
    const { id, bundle } = req;
    if (req.checkpoint) throw new UnimplementedError('checkpoint/restore is not supported by tugboat');
    const options = parseRuncOptions(req.options);
    const config = shimConfigOf(req.options);
    // `shim delete` runs without a daemon: everything it needs is on disk.
    const saved = saveShimOptions(bundle, options);
    const runc = new Runc(runcConfigFor(ctx.namespace, bundle, saved, ctx.runcBinary));
    const rootfsDir = join(bundle, 'rootfs');
    let rootfsMounted = false;
    let prepared: PreparedWorkload | undefined;
    try {
      if (req.rootfs.length > 0) {
        await mountRootfs(
          req.rootfs.map((m: Mount) => ({ type: m.type, source: m.source, options: m.options })),
          rootfsDir,
        );
        rootfsMounted = true;
      }
      const spec = readBundleSpec(bundle);
      // Image platform and Wasm artifact layers (detection rules 2–3); undefined when containerd cannot tell.
      const facts = await ctx.imageFacts;
      prepared = await prepareWorkload({
        id,
        spec,
        bundle,
        ...(facts ? { image: { name: facts.name, platform: facts.platform, wasmLayer: facts.wasmLayer } } : {}),
        home: shimDerivedBundleDir(bundle),
        settings: ctx.settings,
        isolation: { fallback: defaultIsolation(spec.annotations, config) },
      });
      const lifecycle = prepared.lifecycle({
        id,
        runc,
        reaper: ctx.reaper,
        stateDir: bundle,
        tmpDir: runtimeTmpDir(),
        ...(saved.no_pivot_root ? { noPivot: true } : {}),
        ...(saved.no_new_keyring ? { noNewKeyring: true } : {}),
      });
      const init = new Process(id, '', { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal });
      const owner = options ? { uid: options.ioUid, gid: options.ioGid } : undefined;
      const { handle, io } = await withIO(init.stdio, owner, (stdio) => lifecycle.create(stdio));
      init.handle = handle;
      init.pid = handle.pid;
      init.io = io;
      return new Container(id, bundle, init, lifecycle, prepared, rootfsMounted);
    } catch (err) {
      await prepared?.remove();
      if (rootfsMounted) await unmountAll(rootfsDir);
      throw err;
    }
  }

  /** The init for '', else the exec. */
  process(execId: string): Process | undefined {
    return execId ? this.execs.get(execId) : this.init;
  }

  /** Starts an exec'd process (runc exec --detach; for Wasm, one more guest). */
  async startExec(p: Process, spec: OciProcess): Promise<void> {
    const { handle, io } = await withIO(p.stdio, undefined, (stdio) => this.lifecycle.exec(p.execId, spec, stdio));
    p.handle = handle;
    p.pid = handle.pid;
    p.io = io;
  }

  /** After the container is gone: stdio closed, rootfs unmounted, derived files removed. */
  async release(): Promise<void> {
    this.init.io?.close();
    for (const x of this.execs.values()) x.io?.close();
    if (this.rootfsMounted) await unmountAll(join(this.bundle, 'rootfs'));
    await this.prepared.remove();
  }
}
