// Builds images without a daemon: one layer from host files (or the raw
// module for the CNCF Wasm artifact form), a config, a manifest, written as
// an OCI layout, an OCI layout tar, or a `docker load`-able tar. Output is
// reproducible: the same inputs and `created` give the same digests.

import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { gzipSync } from 'node:zlib';
import { NotFoundError, UsageError, WasmError } from '../errors.js';
import { collectLayerEntries, containerRelPath, packLayer } from './build-layer.js';
import { sha256Digest } from './digest.js';
import { legacyManifestBytes } from './docker-archive.js';
import { writeDockerArchive, writeOciArchive, writeOciLayout, type Blob, type BuiltImage } from './image-writer.js';
import { hostPlatform } from './platform.js';
import { MediaType, type Descriptor, type ImageConfigProcess, type Platform } from './types.js';
import { wasmKind } from './wasm-kind.js';
import { componentWorld } from './component-wit.js';

export { wasmKind } from './wasm-kind.js';

export type OutputFormat = 'oci' | 'oci-archive' | 'docker-archive';

/** Files or directories (recursive; symlinks inside copied as symlinks). */
export interface FileToAdd {
  hostPath: string;
  containerPath: string;
}

export interface BuildImageOptions {
  files: FileToAdd[];
  platform: Platform;
  config: ImageConfigProcess;
  format: OutputFormat;
  /** Directory for 'oci', file for the archives. */
  output: string;
  /** Ref name (oci; default "latest") / RepoTags (docker; default "tugboat.local/image:latest"). */
  tag?: string;
  /** 'oci' only: add this platform to the image already under `tag`. */
  addTo?: boolean;
  /** RFC 3339; default from SOURCE_DATE_EPOCH, else the epoch. */
  created?: string;
  annotations?: Record<string, string>;
}

export interface BuildResult {
  manifestDigest: string;
  indexDigest?: string;
  configDigest: string;
  platform: Platform;
}

export interface BuildWasmOptions extends Omit<BuildImageOptions, 'files' | 'platform' | 'config'> {
  wasm: string;
  extraFiles?: FileToAdd[];
  args?: string[];
  env?: string[];
  workingDir?: string;
  /** Default "/" + basename(wasm). */
  modulePath?: string;
  /** CNCF Wasm OCI artifact form. */
  artifact?: boolean;
}

const DEFAULT_DOCKER_TAG = 'tugboat.local/image:latest';
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function resolveCreated(created: string | undefined): string {
  if (created !== undefined) {
    if (!RFC3339_RE.test(created) || Number.isNaN(Date.parse(created))) {
      throw new UsageError(`invalid created time ${JSON.stringify(created)}: expected RFC 3339, e.g. 2024-01-02T03:04:05Z`);
    }
    return created;
  }
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && epoch !== '') {
    if (!/^\d{1,12}$/.test(epoch)) throw new UsageError(`invalid SOURCE_DATE_EPOCH ${JSON.stringify(epoch)}: expected seconds since the epoch`);
    return new Date(Number(epoch) * 1000).toISOString().replace(/\.000Z$/, 'Z');
  }
  return '1970-01-01T00:00:00Z';
}

/** The name Docker shows; "name" alone means "name:latest". */
function dockerRepoTag(tag: string | undefined): string {
  let t = tag ?? DEFAULT_DOCKER_TAG;
  const i = t.lastIndexOf(':');
  if (i < 0 || t.slice(i + 1).includes('/')) t += ':latest';
  const j = t.lastIndexOf(':');
  const name = t.slice(0, j);
  const tagPart = t.slice(j + 1);
  if (!/^[a-z0-9][a-z0-9._\-/:]*$/.test(name) || name.endsWith('/') || !/^\w[\w.-]{0,127}$/.test(tagPart)) {
    throw new UsageError(`invalid docker tag ${JSON.stringify(tag)}: expected lowercase name[:tag], e.g. example.com/app:1.0`);
  }
  return t;
}

function ociTag(tag: string | undefined): string {
  const t = tag ?? 'latest';
  if (t === '' || /[\s\0]/.test(t)) throw new UsageError(`invalid tag ${JSON.stringify(tag)}`);
  return t;
}

function checkPlatform(p: Platform): void {
  const ok = (s: unknown): boolean => typeof s === 'string' && /^[a-z0-9][a-z0-9._-]*$/.test(s);
  if (!ok(p.os) || !ok(p.architecture) || (p.variant !== undefined && !ok(p.variant))) {
    throw new UsageError(`invalid platform ${JSON.stringify(p)}`);
  }
}

function blobOf(data: Buffer, mediaType: string, annotations?: Record<string, string>): Blob {
  const desc: Descriptor = { mediaType, digest: sha256Digest(data), size: data.length };
  if (annotations) desc.annotations = annotations;
  return { desc, data };
}

/** Image process config with keys in a fixed order, so the caller's key order cannot change the digest. */
function processConfig(c: ImageConfigProcess): ImageConfigProcess {
  const out: ImageConfigProcess = {};
  if (c.User !== undefined) out.User = c.User;
  if (c.ExposedPorts !== undefined) out.ExposedPorts = c.ExposedPorts;
  if (c.Env !== undefined) out.Env = [...c.Env];
  if (c.Entrypoint !== undefined) out.Entrypoint = c.Entrypoint;
  if (c.Cmd !== undefined) out.Cmd = c.Cmd;
  if (c.Volumes !== undefined) out.Volumes = c.Volumes;
  if (c.WorkingDir !== undefined) out.WorkingDir = c.WorkingDir;
  if (c.Labels !== undefined) out.Labels = Object.fromEntries(Object.entries(c.Labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  if (c.StopSignal !== undefined) out.StopSignal = c.StopSignal;
  return out;
}

function ociManifest(config: Descriptor, layers: Descriptor[], annotations: Record<string, string> | undefined): Buffer {
  const m: Record<string, unknown> = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
  if (annotations && Object.keys(annotations).length) m.annotations = annotations;
  return Buffer.from(JSON.stringify(m));
}

function withPlatform(manifest: Blob, platform: Platform): Blob {
  return { ...manifest, desc: { ...manifest.desc, platform } };
}

async function writeImage(img: BuiltImage, opts: BuildImageOptions): Promise<BuildResult> {
  const result: BuildResult = { manifestDigest: img.manifest.desc.digest, configDigest: img.config.desc.digest, platform: img.platform };
  switch (opts.format) {
    case 'oci': {
      const { indexDigest } = await writeOciLayout(opts.output, img, ociTag(opts.tag), opts.addTo === true);
      if (indexDigest) result.indexDigest = indexDigest;
      break;
    }
    case 'oci-archive':
      await writeOciArchive(opts.output, img, ociTag(opts.tag));
      break;
    case 'docker-archive':
      await writeDockerArchive(opts.output, img, dockerRepoTag(opts.tag));
      break;
    default:
      throw new UsageError(`unknown output format ${JSON.stringify(opts.format)}: expected oci, oci-archive or docker-archive`);
  }
  return result;
}

function checkCommon(opts: Omit<BuildImageOptions, 'files' | 'platform' | 'config'>): void {
  if (!['oci', 'oci-archive', 'docker-archive'].includes(opts.format)) {
    throw new UsageError(`unknown output format ${JSON.stringify(opts.format)}: expected oci, oci-archive or docker-archive`);
  }
  if (opts.addTo && opts.format !== 'oci') throw new UsageError('adding a platform to an existing image needs the oci output format');
  // Fail on a bad tag before anything is written.
  if (opts.format === 'docker-archive') dockerRepoTag(opts.tag);
  else ociTag(opts.tag);
}

/** One gzip layer holding `files` (a plain tar for docker-archive), an OCI config and manifest. */
export async function buildImage(opts: BuildImageOptions): Promise<BuildResult> {
  checkCommon(opts);
  checkPlatform(opts.platform);
  const created = resolveCreated(opts.created);
  const platform: Platform = { os: opts.platform.os, architecture: opts.platform.architecture };
  if (opts.platform.variant) platform.variant = opts.platform.variant;

  const tarBytes = await packLayer(await collectLayerEntries(opts.files));
  const diffId = sha256Digest(tarBytes);
  const docker = opts.format === 'docker-archive';
  // docker load of 20.10 checks each layer.tar against its diff_id, so that form keeps layers uncompressed.
  const layer = docker ? blobOf(tarBytes, MediaType.OciLayer) : blobOf(gzipSync(tarBytes), MediaType.OciLayerGzip);

  const configJson: Record<string, unknown> = { created, architecture: platform.architecture, os: platform.os };
  if (platform.variant) configJson.variant = platform.variant;
  configJson.config = processConfig(opts.config);
  configJson.rootfs = { type: 'layers', diff_ids: [diffId] };
  const config = blobOf(Buffer.from(JSON.stringify(configJson)), MediaType.OciConfig);

  // The docker form has no manifest of its own; this is the one its reader synthesises, so digests agree.
  const manifestBytes = docker ? legacyManifestBytes(config.desc, [layer.desc]) : ociManifest(config.desc, [layer.desc], opts.annotations);
  const manifest = withPlatform(blobOf(manifestBytes, MediaType.OciManifest), platform);
  return writeImage({ config, layers: [layer], manifest, platform }, opts);
}

async function readWasm(path: string): Promise<{ bytes: Buffer; kind: 'module' | 'component' }> {
  const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new NotFoundError(`${path}: no such file`);
    if (err.code === 'EISDIR') throw new WasmError(`${path}: is a directory, not a WebAssembly binary`);
    throw err;
  });
  const kind = wasmKind(bytes);
  if (!kind) throw new WasmError(`${path}: not a WebAssembly module or component (bad magic or header)`);
  return { bytes, kind };
}

/** Wasm image: platform wasi/wasm, Entrypoint [modulePath], Cmd args; or the CNCF artifact form. */
export async function buildWasmImage(opts: BuildWasmOptions): Promise<BuildResult> {
  checkCommon(opts);
  const { bytes, kind } = await readWasm(opts.wasm);
  if (opts.artifact) return buildWasmArtifact(opts, bytes, kind);

  const modulePath = opts.modulePath ?? `/${basename(opts.wasm)}`;
  if (containerRelPath(modulePath) === '') throw new UsageError(`module path ${JSON.stringify(modulePath)} must name a file`);
  // Docker 20.10 refuses to load wasi/wasm images; in that form the image says
  // linux/<host arch> and Tugboat recognises the module by its bytes at run time.
  const platform: Platform = opts.format === 'docker-archive' ? { os: 'linux', architecture: hostPlatform().architecture } : { os: 'wasi', architecture: 'wasm' };
  const config: ImageConfigProcess = { Entrypoint: [modulePath] };
  if (opts.args?.length) config.Cmd = [...opts.args];
  if (opts.env?.length) config.Env = [...opts.env];
  if (opts.workingDir) config.WorkingDir = opts.workingDir;

  const { wasm, extraFiles, args: _a, env: _e, workingDir: _w, modulePath: _m, artifact: _art, ...common } = opts;
  return buildImage({ ...common, files: [{ hostPath: wasm, containerPath: modulePath }, ...(extraFiles ?? [])], platform, config });
}

/** CNCF TAG Runtime Wasm OCI artifact: one application/wasm layer, config application/vnd.wasm.config.v0+json. */
async function buildWasmArtifact(opts: BuildWasmOptions, bytes: Buffer, kind: 'module' | 'component'): Promise<BuildResult> {
  if (opts.format === 'docker-archive') throw new UsageError('the Wasm artifact form cannot be written as a docker-archive');
  if (opts.extraFiles?.length) throw new UsageError('the Wasm artifact form holds only the module; extra files need the image form');
  if (opts.args?.length || opts.env?.length || opts.workingDir) {
    throw new UsageError('the Wasm artifact form has no process config (args, env, working dir); use the image form');
  }
  const created = resolveCreated(opts.created);
  const layer = blobOf(bytes, MediaType.WasmLayer, { 'org.opencontainers.image.title': basename(opts.wasm) });
  const os = kind === 'component' ? 'wasip2' : 'wasip1';
  const configJson: Record<string, unknown> = { created, architecture: 'wasm', os, layerDigests: [layer.desc.digest] };
  // The spec requires `component` for wasip2: the world's imports and exports.
  if (kind === 'component') configJson.component = await componentWorld(bytes);
  const config = blobOf(Buffer.from(JSON.stringify(configJson)), MediaType.WasmConfig);
  const platform: Platform = { os, architecture: 'wasm' };
  const manifest = withPlatform(blobOf(ociManifest(config.desc, [layer.desc], opts.annotations), MediaType.OciManifest), platform);
  return writeImage({ config, layers: [layer], manifest, platform }, { ...opts, files: [], platform, config: {} });
}
