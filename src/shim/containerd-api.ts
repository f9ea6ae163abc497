// Image facts for workload detection (architecture.md, Detection rules 2–3),
// asked of containerd's own gRPC API: the container's image → its target
// (an index picks a manifest) → manifest → config platform, plus whether any
// layer is an OCI Wasm artifact layer. Every blob comes from containerd's
// content store (Content/Read) and is checked against its descriptor.
//
// The client is minimal (Containers/Get, Images/Get, Content/Read over our
// own trimmed protos in proto/containerd-api/; Snapshots/Stat tells which
// manifest of an index a container was made from), loaded on first use, and
// bounded: a lookup that fails or takes longer than its timeout yields
// `undefined`, and the caller detects without image facts.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DigestMismatchError, ImageError } from '../errors.js';
import { log } from '../log.js';
import { digestHex, sha256Digest } from '../oci/digest.js';
import { formatPlatform, isWasmPlatform, selectManifest } from '../oci/platform.js';
import { MediaType, WASM_LAYER_TYPES, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from '../oci/types.js';

export const DEFAULT_TIMEOUT_MS = 2000;
/** Manifests, indexes and configs are small; anything bigger is not one. */
const MAX_METADATA_BLOB = 4 * 1024 * 1024;
const MAX_DEPTH = 4;

const INDEX_TYPES = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MediaType.OciManifest, MediaType.DockerManifest]);

export interface ImageFacts {
  /** containerd image name, e.g. docker.io/library/busybox:latest */
  name: string;
  platform: Platform;
  /** some layer is a raw Wasm binary (WASM_LAYER_TYPES) */
  wasmLayer: boolean;
  /** media type of the image config, e.g. application/vnd.wasm.config.v0+json for a CNCF Wasm artifact */
  configMediaType: string;
  /** the manifest the facts come from */
  manifest: Descriptor;
}

/** Returns the blob `digest` (at most `maxSize` bytes); the caller verifies it. */
export type BlobReader = (digest: string, maxSize: number) => Promise<Uint8Array>;

/** Reads a blob through `read` and checks its size and digest against `desc`. */
export async function readVerified(read: BlobReader, desc: Descriptor, maxSize: number, what: string): Promise<Uint8Array> {
  digestHex(desc.digest);
  if (!Number.isSafeInteger(desc.size) || desc.size < 0) throw new ImageError(`${what}: invalid size ${String(desc.size)}`);
  if (desc.size > maxSize) throw new ImageError(`${what}: ${desc.size} bytes is more than the ${maxSize} allowed`);
  const data = await read(desc.digest, maxSize);
  if (data.length !== desc.size) throw new DigestMismatchError(`${what}: size mismatch, expected ${desc.size} bytes, got ${data.length}`);
  const got = sha256Digest(data);
  if (got !== desc.digest) throw new DigestMismatchError(`${what}: digest mismatch, expected ${desc.digest}, got ${got}`);
  return data;
}

function parseJson<T>(data: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(data)) as T;
  } catch (err) {
    throw new ImageError(`${what}: not JSON: ${(err as Error).message}`);
  }
}

function isDescriptor(d: unknown): d is Descriptor {
  const o = d as Descriptor | null;
  return typeof o === 'object' && o !== null && typeof o.mediaType === 'string' && typeof o.digest === 'string' && typeof o.size === 'number';
}

function isAttestation(d: Descriptor): boolean {
  if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return d.platform?.os === 'unknown' && d.platform.architecture === 'unknown';
}

/** Runnable entries of an index span both Wasm and non-Wasm platforms. */
function mixesWasmAndNative(index: ImageIndex): boolean {
  const platforms = index.manifests.filter((d) => d.platform && !isAttestation(d)).map((d) => isWasmPlatform(d.platform!));
  return platforms.includes(true) && platforms.includes(false);
}

/** containerd's chain ID of a layer stack (identity.ChainID): what a snapshot made from the image has as its parent. */
export function chainId(diffIds: readonly string[]): string | undefined {
  let chain: string | undefined;
  for (const d of diffIds) chain = chain === undefined ? d : sha256Digest(`${chain} ${d}`);
  return chain;
}

export class AmbiguousImageError extends ImageError {}

export interface ImageFactsOptions {
  /**
   * The parent of the container's snapshot (a chain ID), asked only when the
   * target is an index: it names the manifest the container was made from.
   */
  snapshotParent?: () => Promise<string | undefined>;
}

/** Most manifests of an index compared with the container's snapshot. */
const MAX_INDEX_CANDIDATES = 16;

async function manifestFacts(name: string, desc: Descriptor, read: BlobReader): Promise<{ facts: ImageFacts; chainId: string | undefined }> {
  const what = `image ${name}: ${desc.mediaType} ${desc.digest}`;
  const manifest = parseJson<ImageManifest>(await readVerified(read, desc, MAX_METADATA_BLOB, what), what);
  if (!isDescriptor(manifest.config)) throw new ImageError(`${what}: no config descriptor`);
  const layers = Array.isArray(manifest.layers) ? manifest.layers.filter(isDescriptor) : [];
  const configWhat = `image ${name}: config ${manifest.config.digest}`;
  const config = parseJson<Partial<ImageConfig>>(await readVerified(read, manifest.config, MAX_METADATA_BLOB, configWhat), configWhat);
  let platform: Platform | undefined;
  if (typeof config.os === 'string' && typeof config.architecture === 'string' && config.os && config.architecture) {
    platform = { os: config.os, architecture: config.architecture };
    if (typeof config.variant === 'string' && config.variant) platform.variant = config.variant;
  } else if (desc.platform) {
    platform = desc.platform;
  }
  if (!platform) throw new ImageError(`${configWhat}: no os/architecture`);
  const diffIds = config.rootfs?.diff_ids;
  return {
    facts: {
      name,
      platform,
      wasmLayer: layers.some((l) => WASM_LAYER_TYPES.includes(l.mediaType)),
      configMediaType: manifest.config.mediaType,
      manifest: desc,
    },
    chainId: Array.isArray(diffIds) && diffIds.every((d) => typeof d === 'string') ? chainId(diffIds) : undefined,
  };
}

/**
 * Walks from an image's target descriptor to the facts detection uses. An
 * index is resolved to the manifest whose layers the container's snapshot
 * was made from, when containerd can tell (opts.snapshotParent); else with
 * selectManifest (a Wasm manifest if present, else the host's), except that
 * an index holding both Wasm and native manifests then throws
 * AmbiguousImageError: the container may have been made from either.
 */
export async function imageFacts(name: string, target: Descriptor, read: BlobReader, opts: ImageFactsOptions = {}): Promise<ImageFacts> {
  let desc = target;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const what = `image ${name}: ${desc.mediaType} ${desc.digest}`;
    if (INDEX_TYPES.has(desc.mediaType)) {
      const index = parseJson<ImageIndex>(await readVerified(read, desc, MAX_METADATA_BLOB, what), what);
      if (!Array.isArray(index.manifests) || !index.manifests.every(isDescriptor)) throw new ImageError(`${what}: no manifests list`);
      const candidates = index.manifests.filter((d) => !isAttestation(d) && MANIFEST_TYPES.has(d.mediaType));
      const parent = candidates.length > 1 ? await opts.snapshotParent?.() : undefined;
      if (parent) {
        for (const d of candidates.slice(0, MAX_INDEX_CANDIDATES)) {
          const m = await manifestFacts(name, d, read);
          if (m.chainId === parent) return m.facts;
        }
      }
      if (mixesWasmAndNative(index)) throw new AmbiguousImageError(`${what}: holds both Wasm and native manifests`);
      desc = selectManifest(index.manifests, undefined, `image ${name}`);
      continue;
    }
    if (!MANIFEST_TYPES.has(desc.mediaType)) throw new ImageError(`${what}: not an image manifest or index`);
    return (await manifestFacts(name, desc, read)).facts;
  }
  throw new ImageError(`image ${name}: indexes nested more than ${MAX_DEPTH} deep`);
}

// ---- gRPC client -----------------------------------------------------------

export interface ContainerdApiOptions {
  /** containerd's gRPC socket path (the shim's -address flag) */
  address: string;
  namespace: string;
  /** bound for the whole lookup; default 2 s */
  timeoutMs?: number;
}

/** Directory of our .proto files, looked up from this module (src/shim, dist/shim or the dist/shim.mjs bundle). */
function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'proto', 'containerd-api');
    if (existsSync(join(candidate, 'containers.proto'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('proto/containerd-api not found');
}

type Callback<T> = (err: Error | null, res?: T) => void;
interface Unary<Req, Res> {
  (req: Req, md: unknown, opts: { deadline: number }, cb: Callback<Res>): unknown;
}
interface ApiClient {
  close(): void;
}
interface ContainersClient extends ApiClient {
  Get: Unary<{ id: string }, { container?: { id: string; image: string; snapshotter: string; snapshotKey: string } }>;
}
interface ImagesClient extends ApiClient {
  Get: Unary<{ name: string }, { image?: { name: string; target?: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> } } }>;
}
interface ReadStream {
  on(ev: 'data', f: (m: { offset: number; data: Buffer }) => void): ReadStream;
  on(ev: 'error', f: (err: Error) => void): ReadStream;
  on(ev: 'end', f: () => void): ReadStream;
  cancel(): void;
}
interface SnapshotsClient extends ApiClient {
  Stat: Unary<{ snapshotter: string; key: string }, { info?: { name: string; parent: string } }>;
}
interface ContentClient extends ApiClient {
  Read(req: { digest: string; offset: number; size: number }, md: unknown, opts: { deadline: number }): ReadStream;
}
type ClientCtor<C> = new (target: string, creds: unknown, options?: Record<string, unknown>) => C;

interface Loaded {
  grpc: typeof import('@grpc/grpc-js');
  Containers: ClientCtor<ContainersClient>;
  Images: ClientCtor<ImagesClient>;
  Content: ClientCtor<ContentClient>;
  Snapshots: ClientCtor<SnapshotsClient>;
}

let loaded: Promise<Loaded> | undefined;

/** grpc-js and the service definitions, loaded once, on the first lookup. */
function load(): Promise<Loaded> {
  loaded ??= (async () => {
    const grpc = await import('@grpc/grpc-js');
    const protoLoader = await import('@grpc/proto-loader');
    const dir = protoDir();
    const def = protoLoader.loadSync(['containers.proto', 'images.proto', 'content.proto', 'snapshots.proto'], {
      includeDirs: [dir],
      longs: Number,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      containerd: { services: Record<'containers' | 'images' | 'content' | 'snapshots', { v1: Record<string, unknown> }> };
    };
    const s = pkg.containerd.services;
    return {
      grpc,
      Containers: s.containers.v1.Containers as ClientCtor<ContainersClient>,
      Images: s.images.v1.Images as ClientCtor<ImagesClient>,
      Content: s.content.v1.Content as ClientCtor<ContentClient>,
      Snapshots: s.snapshots.v1.Snapshots as ClientCtor<SnapshotsClient>,
    };
  })();
  loaded.catch(() => (loaded = undefined));
  return loaded;
}

function unary<Req, Res>(fn: Unary<Req, Res>, self: unknown, req: Req, md: unknown, deadline: number): Promise<Res> {
  return new Promise((res, rej) => {
    fn.call(self, req, md, { deadline }, (err, out) => (err ? rej(err) : res(out as Res)));
  });
}

/** Content/Read of a whole blob, at most `maxSize` bytes. */
function readBlob(client: ContentClient, md: unknown, deadline: number, digest: string, maxSize: number): Promise<Uint8Array> {
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let failed = false;
    const stream = client.Read({ digest, offset: 0, size: 0 }, md, { deadline });
    stream.on('data', (m) => {
      if (failed) return;
      if (Number(m.offset) !== total) {
        failed = true;
        stream.cancel();
        rej(new ImageError(`blob ${digest}: chunk at offset ${m.offset}, expected ${total}`));
        return;
      }
      total += m.data.length;
      if (total > maxSize) {
        failed = true;
        stream.cancel();
        rej(new ImageError(`blob ${digest}: more than ${maxSize} bytes`));
        return;
      }
      chunks.push(m.data);
    });
    stream.on('error', (err) => {
      if (!failed) {
        failed = true;
        rej(err);
      }
    });
    stream.on('end', () => {
      if (!failed) res(new Uint8Array(Buffer.concat(chunks)));
    });
  });
}

/** A connection to containerd's API for one namespace; close() when done. */
export class ContainerdApi {
  private constructor(
    private readonly md: unknown,
    private readonly containers: ContainersClient,
    private readonly images: ImagesClient,
    private readonly content: ContentClient,
    private readonly snapshots: SnapshotsClient,
  ) {}

  static async connect(address: string, namespace: string): Promise<ContainerdApi> {
    const l = await load();
    const target = `unix://${address}`;
    const creds = l.grpc.credentials.createInsecure();
    // One channel for the three services (grpc-js shares subchannels by target and options).
    const options = { 'grpc.max_receive_message_length': 16 * 1024 * 1024 };
    const md = new l.grpc.Metadata();
    md.set('containerd-namespace', namespace);
    return new ContainerdApi(
      md,
      new l.Containers(target, creds, options),
      new l.Images(target, creds, options),
      new l.Content(target, creds, options),
      new l.Snapshots(target, creds, options),
    );
  }

  async container(id: string, deadline: number): Promise<{ image: string; snapshotter: string; snapshotKey: string }> {
    const r = await unary(this.containers.Get, this.containers, { id }, this.md, deadline);
    return { image: r.container?.image ?? '', snapshotter: r.container?.snapshotter ?? '', snapshotKey: r.container?.snapshotKey ?? '' };
  }

  /** The parent of snapshot `key`, or undefined. */
  async snapshotParent(snapshotter: string, key: string, deadline: number): Promise<string | undefined> {
    if (!snapshotter || !key) return undefined;
    const r = await unary(this.snapshots.Stat, this.snapshots, { snapshotter, key }, this.md, deadline);
    return r.info?.parent || undefined;
  }

  async imageTarget(name: string, deadline: number): Promise<Descriptor> {
    const r = await unary(this.images.Get, this.images, { name }, this.md, deadline);
    const t = r.image?.target;
    if (!t || !t.digest) throw new ImageError(`image ${name}: no target`);
    const d: Descriptor = { mediaType: t.mediaType, digest: t.digest, size: Number(t.size) };
    if (t.annotations && Object.keys(t.annotations).length > 0) d.annotations = t.annotations;
    return d;
  }

  reader(deadline: number): BlobReader {
    return (digest, maxSize) => readBlob(this.content, this.md, deadline, digest, maxSize);
  }

  close(): void {
    this.containers.close();
    this.images.close();
    this.content.close();
    this.snapshots.close();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    t = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms);
    t.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/**
 * The image facts of container `id`, or undefined when there are none to
 * have: no image (a container made from a bare rootfs), an ambiguous index,
 * or containerd unreachable, slow or answering nonsense. Never throws.
 */
export async function containerImageFacts(opts: ContainerdApiOptions, id: string): Promise<ImageFacts | undefined> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!opts.address || !existsSync(opts.address)) {
    log().debug({ id, address: opts.address }, 'containerd API socket not found; detecting without image facts');
    return undefined;
  }
  const lookup = async (): Promise<ImageFacts | undefined> => {
    const deadline = Date.now() + timeoutMs;
    const api = await ContainerdApi.connect(opts.address, opts.namespace);
    try {
      const ctr = await api.container(id, deadline);
      const name = ctr.image;
      if (!name) {
        log().debug({ id }, 'container has no image; detecting without image facts');
        return undefined;
      }
      const target = await api.imageTarget(name, deadline);
      const snapshotParent = () =>
        api.snapshotParent(ctr.snapshotter, ctr.snapshotKey, deadline).catch((err: unknown) => {
          log().debug({ id, err: err instanceof Error ? err.message : String(err) }, 'no snapshot info from containerd');
          return undefined;
        });
      const facts = await imageFacts(name, target, api.reader(deadline), { snapshotParent });
      log().debug({ id, image: name, platform: formatPlatform(facts.platform), wasmLayer: facts.wasmLayer, config: facts.configMediaType }, 'image facts from containerd');
      return facts;
    } finally {
      api.close();
    }
  };
  try {
    return await withTimeout(lookup(), timeoutMs, 'containerd API');
  } catch (err) {
    log().debug({ id, err: err instanceof Error ? err.message : String(err) }, 'no image facts from containerd; detecting without them');
    return undefined;
  }
}
