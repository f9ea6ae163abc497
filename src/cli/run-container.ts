// `tugboat run`: image → unpacked rootfs → bundle → prepared workload → run
// in the foreground, for hosts without containerd. Plain async functions; the
// commander adapter lives in main.ts.
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runcBinary } from '../defaults.js';
import { ExecutableNotFoundError, NotFoundError, UsageError } from '../errors.js';
import type { Workload } from '../oci/detect.js';
import { openImageSource, parseImageRef, resolveImage, type ImageSource, type ResolvedImage } from '../oci/image-source.js';
import type { LayerLimits } from '../oci/layers.js';
import { checkContainerId } from '../oci/names.js';
import { withSeccomp, type SeccompChoice } from '../oci/seccomp.js';
import { formatPlatform } from '../oci/platform.js';
import type { Spec } from '../oci/runtime-spec.js';
import { DEFAULT_PATH } from '../oci/runtime-spec.js';
import { mergeEnv, specFromImage } from '../oci/spec-from-image.js';
import { artifactModulePath, ImageStore } from '../oci/store.js';
import { WASM_LAYER_TYPES, type Platform } from '../oci/types.js';
import type { PreparedWorkload } from '../linux-runtime/engine.js';
import { removeContainerDir, mountContainerRootfs, unmountContainerRootfs } from '../linux-runtime/overlay.js';
import { Runc } from '../linux-runtime/runc.js';
import {
  withAnnotations,
  withCgroupsPath,
  withHostname,
  withMemoryLimit,
  withNetwork,
  withTerminal,
  withVolumes,
  type NetworkMode,
  type Volume,
} from '../linux-runtime/spec-edits.js';
import { engineSettings, prepareWorkload } from '../linux-runtime/workload.js';

export interface Paths {
  /** Data root: image store and containers (absolute; defaults.ts dataRoot). */
  root: string;
  runcBinary?: string;
  kitDir?: string;
  /** Bounds on unpacking image layers (--layer-limits). */
  layerLimits?: Partial<LayerLimits>;
}

export interface RunOptions extends Paths {
  image: string;
  args: string[];
  platform?: Platform;
  rm: boolean;
  name?: string;
  env: string[];
  volumes: Volume[];
  workdir?: string;
  memoryBytes?: number;
  network: NetworkMode;
  entrypoint?: string;
  tty: boolean;
  user?: string;
  /** OCI annotations for the container (io.tugboat.wasm.preopens, …). */
  annotations?: Record<string, string>;
  /** --security-opt seccomp=…; Docker's default profile when absent. */
  seccomp?: SeccompChoice;
}

export interface PreparedContainer {
  id: string;
  dir: string;
  /** The spec in the container's bundle (before any Wasm rewrite). */
  spec: Spec;
  workload: Workload;
  image: ResolvedImage;
  /** What runs it. */
  prepared: PreparedWorkload;
}

/** Where a Wasm container's derived bundle goes: inside the container's own directory. */
const DERIVED = 'tugboat-wasm';

const TRANSPORTS = ['oci:', 'oci-archive:', 'docker-archive:'];

export function containersDir(root: string): string {
  return join(root, 'containers');
}

export function runcRoot(paths: Paths): string {
  return join(paths.root, 'runc');
}

export function runcFor(paths: Paths): Runc {
  return new Runc({ root: runcRoot(paths), binary: runcBinary(paths.runcBinary) });
}

/** An image argument is a transport reference or a name in the local store. */
export async function openImageArgument(image: string, store: ImageStore): Promise<{ source: ImageSource; tag?: string }> {
  if (TRANSPORTS.some((t) => image.startsWith(t))) {
    const ref = parseImageRef(image);
    return { source: await openImageSource(ref), ...(ref.tag !== undefined ? { tag: ref.tag } : {}) };
  }
  if (!(await store.has(image))) {
    throw new NotFoundError(`image ${image} not found in the store (tugboat image ls); use oci:DIR, oci-archive:FILE or docker-archive:FILE to run from a file`);
  }
  return { source: store.source(), tag: image };
}

function newContainerId(): string {
  // crypto is loaded here, not with the module: `ps` and `rm` import this file too.
  return process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex');
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, JSON.stringify(value, null, 2));
}

/** Everything up to (not including) runc: image, rootfs, bundle, detection. */
export async function prepareContainer(opts: RunOptions): Promise<PreparedContainer> {
  const store = new ImageStore(opts.root, opts.layerLimits);
  const { source, tag } = await openImageArgument(opts.image, store);
  const image = await resolveImage(source, tag, opts.platform);
  const imageRootfs = await store.unpack(image);

  const id = opts.name !== undefined ? checkContainerId(opts.name, '--name') : newContainerId();
  const dir = join(containersDir(opts.root), id);
  if (existsSync(dir)) throw new UsageError(`container name ${id} is already in use (tugboat rm ${id})`, { kind: 'AlreadyExists' });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    const mount = await mountContainerRootfs(imageRootfs, dir);
    const wasmLayer = image.manifest.layers.find((l) => WASM_LAYER_TYPES.includes(l.mediaType));
    const entrypoint = opts.entrypoint !== undefined ? [opts.entrypoint] : wasmLayer && !image.config.config?.Entrypoint ? [artifactModulePath(wasmLayer)] : undefined;
    // The default PATH is a Linux process's (as Docker gives it); a WASI
    // guest sees exactly the image's Env and the user's, so it is added
    // below, once detection said Linux.
    let spec = specFromImage(image.config, mount.target, {
      defaultPath: false,
      ...(opts.args.length > 0 ? { args: opts.args } : {}),
      ...(entrypoint ? { entrypoint } : {}),
      env: opts.env,
      ...(opts.workdir !== undefined ? { cwd: opts.workdir } : {}),
      ...(opts.user !== undefined ? { user: opts.user } : {}),
    });
    spec = { ...spec, root: { path: mount.target, readonly: false } };
    spec = withHostname(spec, id.slice(0, 63));
    spec = withCgroupsPath(spec, `/tugboat/${id}`);
    spec = withNetwork(spec, opts.network, { resolvConf: existsSync('/etc/resolv.conf'), hosts: existsSync('/etc/hosts') && hasDir(mount.target, 'etc') });
    spec = withVolumes(spec, opts.volumes);
    spec = withTerminal(spec, opts.tty);
    if (opts.memoryBytes !== undefined) spec = withMemoryLimit(spec, opts.memoryBytes);
    spec = withSeccomp(spec, opts.seccomp);
    spec = withAnnotations(spec, {
      ...opts.annotations,
      'io.tugboat.image': opts.image,
      'io.tugboat.image.digest': image.manifestDescriptor.digest,
      'io.tugboat.image.platform': formatPlatform(image.platform),
    });

    const prepared = await prepareWorkload({
      id,
      spec,
      bundle: dir,
      rootfs: mount.target,
      image: { platform: image.platform, wasmLayer: wasmLayer !== undefined },
      home: join(dir, DERIVED),
      settings: engineSettings({ kitDir: opts.kitDir, root: opts.root }),
    });
    const { workload } = prepared;
    if (workload.kind === 'linux') {
      spec = withDefaultPath(spec);
      checkExecutable(spec, workload, opts.volumes);
    }
    spec = withAnnotations(spec, { 'io.tugboat.workload.reason': workload.reason });
    await writeJson(join(dir, 'config.json'), spec);
    await writeJson(join(dir, 'container.json'), {
      id,
      image: opts.image,
      digest: image.manifestDescriptor.digest,
      platform: formatPlatform(image.platform),
      workload: workload.kind,
      reason: workload.reason,
      created: new Date().toISOString(),
    });
    return { id, dir, spec, workload, image, prepared };
  } catch (err) {
    await removeContainerDir(dir);
    throw err;
  } finally {
    await source.close();
  }
}

/** Docker's default PATH for a Linux process, first, unless the image or the user set one (as specFromImage always did). */
function withDefaultPath(spec: Spec): Spec {
  if (!spec.process) return spec;
  return { ...spec, process: { ...spec.process, env: mergeEnv([`PATH=${DEFAULT_PATH}`], spec.process.env ?? []) } };
}

/** runc would fail at create with a message buried in its log; say it plainly, as Docker does (127). */
function checkExecutable(spec: Spec, workload: Workload, volumes: readonly Volume[]): void {
  const arg0 = spec.process?.args?.[0];
  if (arg0 === undefined || workload.entrypoint !== undefined) return;
  if (volumes.some((v) => arg0.startsWith(v.destination.replace(/\/?$/, '/')))) return;
  throw new ExecutableNotFoundError(`${arg0}: executable file not found in the image (PATH or path)`);
}

function hasDir(root: string, name: string): boolean {
  try {
    return statSync(join(root, name)).isDirectory();
  } catch {
    return false;
  }
}

/** Runs the prepared container in the foreground; resolves to its exit status. */
export async function startForeground(prepared: PreparedContainer, opts: RunOptions): Promise<number> {
  const runc = runcFor(opts);
  try {
    return await prepared.prepared.runForeground(runc, prepared.id);
  } finally {
    // `runc run` removes its container when it returns; only a runc that died
    // itself (killed, crashed) leaves state behind, and only then is a delete worth a spawn.
    if (existsSync(join(runcRoot(opts), prepared.id))) await runc.delete(prepared.id, { force: true }).catch(() => undefined);
    if (opts.rm) await removeContainerDir(prepared.dir);
    else await unmountContainerRootfs(prepared.dir);
  }
}

export async function runContainer(opts: RunOptions): Promise<number> {
  // Under a store lease until the container's record names its root, so no concurrent `image rm` collects it.
  const prepared = await new ImageStore(opts.root).use(() => prepareContainer(opts));
  return startForeground(prepared, opts);
}

export interface ContainerRecord {
  id: string;
  image: string;
  workload: string;
  created: string;
  status: string;
}

export async function listContainers(paths: Paths): Promise<ContainerRecord[]> {
  const runc = runcFor(paths);
  const states = new Map((await runc.list().catch(() => [])).map((s) => [s.id, s.status]));
  const out: ContainerRecord[] = [];
  for (const id of await readdir(containersDir(paths.root)).catch(() => [] as string[])) {
    try {
      const rec = JSON.parse(await readFile(join(containersDir(paths.root), id, 'container.json'), 'utf8')) as ContainerRecord;
      out.push({ ...rec, status: states.get(id) ?? 'exited' });
    } catch {
      out.push({ id, image: '?', workload: '?', created: '?', status: 'broken' });
    }
  }
  return out;
}

export async function removeContainer(paths: Paths, id: string, force: boolean): Promise<void> {
  const dir = join(containersDir(paths.root), checkContainerId(id, 'rm'));
  if (!existsSync(dir)) throw new NotFoundError(`container ${id} not found`);
  const runc = runcFor(paths);
  const state = await runc.state(id).catch(() => undefined);
  if (state && state.status !== 'stopped' && !force) {
    throw new UsageError(`container ${id} is ${state.status}; stop it first or use --force`, { kind: 'FailedPrecondition' });
  }
  if (state) await runc.delete(id, { force: true });
  await removeContainerDir(dir);
}
