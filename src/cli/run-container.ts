// `tugboat run`: name claim → image → unpacked rootfs → bundle → prepared
// workload → run in the foreground, for hosts without containerd. Plain
// async functions; the commander adapter lives in program.ts, the container's
// claim, record and collection in containers.ts, what happens once it runs
// (signals, the --rm watcher, cleanup) in run-lifecycle.ts.
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ExecutableNotFoundError, NotFoundError } from '../errors.js';
import type { Workload } from '../oci/detect.js';
import { openImageSource, parseImageRef, resolveImage, type ImageSource, type ResolvedImage } from '../oci/image-source.js';
import { checkContainerId } from '../oci/names.js';
import { withSeccomp, withWasmHostSeccomp, type SeccompChoice } from '../oci/seccomp.js';
import { formatPlatform } from '../oci/platform.js';
import type { Spec } from '../oci/runtime-spec.js';
import { DEFAULT_PATH } from '../oci/runtime-spec.js';
import { mergeEnv, specFromImage } from '../oci/spec-from-image.js';
import { artifactModulePath, ImageStore } from '../oci/store.js';
import { tempSpace } from '../oci/temp-space.js';
import { testPause } from '../test-pause.js';
import { WASM_LAYER_TYPES, type Platform } from '../oci/types.js';
import type { PortMapping, PreparedWorkload } from '../linux-runtime/engine.js';
import { mountContainerRootfs } from '../linux-runtime/overlay.js';
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
import { ContainerClaim, writeRecord } from './containers.js';
import { runcFor, runcRoot, type Paths } from './paths.js';
import { runToEnd } from './run-lifecycle.js';

export type { Paths } from './paths.js';

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
  /** -p HOST:CONTAINER (process isolation: an HTTP component on the host's network). */
  ports?: PortMapping[];
}

export interface PreparedContainer {
  id: string;
  dir: string;
  /** The name, held until the container is removed or kept. */
  claim: ContainerClaim;
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

/** An image argument is a transport reference or a name in the local store. */
export async function openImageArgument(image: string, store: ImageStore): Promise<{ source: ImageSource; tag?: string }> {
  if (TRANSPORTS.some((t) => image.startsWith(t))) {
    const ref = parseImageRef(image);
    return { source: await openImageSource(ref, tempSpace(store.root)), ...(ref.tag !== undefined ? { tag: ref.tag } : {}) };
  }
  if (!(await store.has(image))) {
    throw new NotFoundError(`image ${image} not found in the store (tugboat image ls); use oci:DIR, oci-archive:FILE or docker-archive:FILE to run from a file`);
  }
  return { source: store.source(), tag: image };
}

function newContainerId(): string {
  return randomBytes(6).toString('hex');
}

/**
 * Everything up to (not including) runc: the name (claimed first, so a name
 * in use fails before any work), image, rootfs, bundle, detection. On a
 * failure everything this made is removed; the claim is released.
 */
export async function prepareContainer(opts: RunOptions): Promise<PreparedContainer> {
  const id = opts.name !== undefined ? checkContainerId(opts.name, '--name') : newContainerId();
  const claim = await ContainerClaim.claim(opts, id);
  const dir = claim.dir;
  const store = new ImageStore(opts.root, opts.layerLimits);
  let source: ImageSource | undefined;
  try {
    const opened = await openImageArgument(opts.image, store);
    source = opened.source;
    const image = await resolveImage(source, opened.tag, opts.platform);
    const imageRootfs = await store.unpack(image);
    const mount = await mountContainerRootfs(imageRootfs, dir);
    testPause('mount');
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
      isolation: { allowed: { levels: ['container', 'process'], why: 'needs a containerd shim group (a pod host serves one)' } },
      // Our default profile for our own host, when the user chose none (WASM_HOST_SECCOMP).
      ...((opts.seccomp ?? { kind: 'default' }).kind === 'default' ? { wasmSpec: (s: Spec) => withWasmHostSeccomp(s) } : {}),
    });
    const { workload } = prepared;
    if (workload.kind === 'linux') {
      spec = withDefaultPath(spec);
      checkExecutable(spec, workload, opts.volumes);
    }
    spec = withAnnotations(spec, { 'io.tugboat.workload.reason': workload.reason });
    await writeFile(join(dir, 'config.json'), JSON.stringify(spec, null, 2));
    await writeRecord(dir, {
      id,
      image: opts.image,
      digest: image.manifestDescriptor.digest,
      platform: formatPlatform(image.platform),
      workload: workload.kind,
      reason: workload.reason,
      created: new Date().toISOString(),
      rm: opts.rm,
    });
    return { id, dir, claim, spec, workload, image, prepared };
  } catch (err) {
    await claim.remove();
    throw err;
  } finally {
    await source?.close();
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

/** Runs the prepared container in the foreground and cleans up after it; resolves to its exit status. */
export async function startForeground(prepared: PreparedContainer, opts: RunOptions): Promise<number> {
  const runc = runcFor(opts);
  return runToEnd(opts, prepared.claim, opts.rm, async () => {
    try {
      return await prepared.prepared.runForeground(runc, prepared.id, opts.ports ? { ports: opts.ports } : {});
    } finally {
      // `runc run` removes its container when it returns; only a runc that died
      // itself (killed, crashed) leaves state behind, and only then is a delete worth a spawn.
      if (existsSync(join(runcRoot(opts), prepared.id))) await runc.delete(prepared.id, { force: true }).catch(() => undefined);
    }
  });
}

export async function runContainer(opts: RunOptions): Promise<number> {
  // Under a store lease until the container's record names its root, so no concurrent `image rm` collects it.
  const prepared = await new ImageStore(opts.root).use(() => prepareContainer(opts));
  return startForeground(prepared, opts);
}
