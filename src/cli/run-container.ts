// `tugboat run`: image → unpacked rootfs → bundle → runc, for hosts without
// containerd. Plain async functions; the commander adapter lives in main.ts.
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ExecutableNotFoundError, NotFoundError, UsageError } from '../errors.js';
import { log } from '../log.js';
import { detectWorkload, findEntrypoint, type Workload } from '../oci/detect.js';
import { openImageSource, parseImageRef, resolveImage, type ImageSource, type ResolvedImage } from '../oci/image-source.js';
import type { LayerLimits } from '../oci/layers.js';
import { checkContainerId } from '../oci/names.js';
import { withSeccomp, type SeccompChoice } from '../oci/seccomp.js';
import { formatPlatform } from '../oci/platform.js';
import type { Spec } from '../oci/runtime-spec.js';
import { specFromImage } from '../oci/spec-from-image.js';
import { artifactModulePath, ImageStore } from '../oci/store.js';
import { WASM_LAYER_TYPES, type Platform } from '../oci/types.js';
import { loadKit } from '../linux-runtime/kit.js';
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
import { rewriteSpecForWasm } from '../linux-runtime/wasm-bundle.js';
import { componentCacheDir, componentRewriteOptions } from '../linux-runtime/component-cache.js';

export interface Paths {
  /** Data root: image store and containers (default /var/lib/tugboat). */
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
  /** --security-opt seccomp=…; Docker's default profile when absent. */
  seccomp?: SeccompChoice;
}

export interface PreparedContainer {
  id: string;
  dir: string;
  spec: Spec;
  workload: Workload;
  image: ResolvedImage;
}

const TRANSPORTS = ['oci:', 'oci-archive:', 'docker-archive:'];

export function containersDir(root: string): string {
  return join(root, 'containers');
}

export function runcRoot(paths: Paths): string {
  return join(paths.root, 'runc');
}

export function runcFor(paths: Paths): Runc {
  return new Runc({ root: runcRoot(paths), ...(paths.runcBinary ? { binary: paths.runcBinary } : {}) });
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
  return randomBytes(6).toString('hex');
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
  if (existsSync(dir)) throw new UsageError(`container name ${id} is already in use (tugboat rm ${id})`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    const mount = await mountContainerRootfs(imageRootfs, dir);
    const wasmLayer = image.manifest.layers.find((l) => WASM_LAYER_TYPES.includes(l.mediaType));
    const entrypoint = opts.entrypoint !== undefined ? [opts.entrypoint] : wasmLayer && !image.config.config?.Entrypoint ? [artifactModulePath(wasmLayer)] : undefined;
    let spec = specFromImage(image.config, mount.target, {
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

    const workload = detectWorkload({
      annotations: spec.annotations ?? {},
      args: spec.process?.args ?? [],
      env: spec.process?.env ?? [],
      image: { platform: image.platform, wasmLayer: wasmLayer !== undefined },
      rootfs: mount.target,
    });
    log().info({ id, workload }, 'workload detected');
    if (workload.kind !== 'linux') {
      const wasmOptions = await componentRewriteOptions(mount.target, spec, componentCacheDir(opts.root));
      spec = rewriteSpecForWasm(spec, loadKit(opts.kitDir), undefined, wasmOptions);
    } else checkExecutable(spec, mount.target, opts.volumes);
    spec = withAnnotations(spec, {
      'io.tugboat.image': opts.image,
      'io.tugboat.image.digest': image.manifestDescriptor.digest,
      'io.tugboat.image.platform': formatPlatform(image.platform),
      'io.tugboat.workload.reason': workload.reason,
    });
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
    return { id, dir, spec, workload, image };
  } catch (err) {
    await removeContainerDir(dir);
    throw err;
  } finally {
    await source.close();
  }
}

/** runc would fail at create with a message buried in its log; say it plainly, as Docker does (127). */
function checkExecutable(spec: Spec, rootfs: string, volumes: readonly Volume[]): void {
  const arg0 = spec.process?.args?.[0];
  if (arg0 === undefined) return;
  const cwd = spec.process?.cwd ?? '/';
  if (volumes.some((v) => arg0.startsWith(v.destination.replace(/\/?$/, '/')))) return;
  if (findEntrypoint(rootfs, arg0, spec.process?.env ?? [], cwd) === undefined) {
    throw new ExecutableNotFoundError(`${arg0}: executable file not found in the image (PATH or path)`);
  }
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
    return await runc.runForeground(prepared.id, prepared.dir);
  } finally {
    // `runc run` removes its container when it returns; only a runc that died
    // itself (killed, crashed) leaves state behind, and only then is a delete worth a spawn.
    if (existsSync(join(runcRoot(opts), prepared.id))) await runc.delete(prepared.id, true).catch(() => undefined);
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
    throw new UsageError(`container ${id} is ${state.status}; stop it first or use --force`);
  }
  if (state) await runc.delete(id, true);
  await removeContainerDir(dir);
}
