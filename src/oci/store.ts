// Tugboat's local image store, for `tugboat run` without containerd:
//   <root>/images/            an OCI image layout (blobs + index.json with ref names)
//   <root>/rootfs/<hex>/      unpacked root filesystems, one per platform manifest
//   <root>/locks/store        flock: shared while blobs or roots are used or added, exclusive for garbage collection
//   <root>/locks/index        flock: exclusive while index.json is read, changed and replaced
// Writes are atomic (temp + rename) so a failed import or unpack leaves the
// store exactly as it was, and the locks make concurrent commands safe: an
// import's blobs cannot be collected before its name is in the index, and a
// root a container is being made from cannot be collected before the
// container's record names it.
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { asFsFailure, DigestMismatchError, ImageError, NotFoundError, UsageError } from '../errors.js';
import { log } from '../log.js';
import { ownedName } from '../owner.js';
import { testPause } from '../test-pause.js';
import { prepareDataRoot, privateDir } from './data-root.js';
import { digestHex } from './digest.js';
import { withFileLock, type FileLock, lockFile } from './file-lock.js';
import { openOciLayout, type ImageSource, type ResolvedImage } from './image-source.js';
import { INDEX_TYPES, parseIndex } from './image-schema.js';
import { ImageWalker, type WalkedManifest } from './image-walk.js';
import { OCI_LAYOUT_FILE, writeFileAtomic } from './image-writer.js';
import type { LayerLimits } from './layers.js';
import { checkImageName, isValidImageName } from './names.js';
import { formatPlatform } from './platform.js';
import { rootfsUsers } from './rootfs-users.js';
import { removeOnInterrupt } from './temp-space.js';
import { MediaType, REF_NAME_ANNOTATION, TAR_LAYER_TYPES, WASM_LAYER_TYPES, type Descriptor, type ImageIndex } from './types.js';

export interface StoredImage {
  name: string;
  digest: string;
  mediaType: string;
  size: number;
  platforms: string[];
}

// Listing and reading the store is what most commands do; what only writing
// needs (streams, tar and gzip in ./layers.js) is loaded on first use.

/** A temp name beside `base` that names this process (temp-space.ts sweeps those of killed commands). */
function tmpName(base: string): string {
  return `${base}.${ownedName('tmp-')}`;
}

function pipeline(...streams: [NodeJS.ReadableStream, NodeJS.WritableStream]): Promise<void> {
  return process.getBuiltinModule('node:stream/promises').pipeline(...streams);
}

/** The file name a Wasm artifact layer is given inside its rootfs. */
export function artifactModulePath(layer: Descriptor): string {
  const title = layer.annotations?.['org.opencontainers.image.title'];
  const base = title ? posix.basename(title) : '';
  return `/${base && base !== '.' && base !== '..' ? base : 'module.wasm'}`;
}

function storeWriteError(err: unknown, root: string): unknown {
  return asFsFailure(err, `cannot write to the image store in ${root}`);
}

/** Blobs of an import in progress: digest → its temp file, and how to forget its undo. */
type StagedBlobs = Map<string, { tmp: string; forget: () => void }>;

const EMPTY_INDEX: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };

export class ImageStore {
  readonly layoutDir: string;
  readonly rootfsDir: string;
  private readonly lockDir: string;

  constructor(
    readonly root: string,
    /** Bounds on unpacking a layer (defaults: DEFAULT_LAYER_LIMITS). */
    private readonly layerLimits?: Partial<LayerLimits>,
  ) {
    this.layoutDir = join(root, 'images');
    this.rootfsDir = join(root, 'rootfs');
    this.lockDir = join(root, 'locks');
  }

  /** Creates the store (private modes, see data-root.ts) or repairs an existing one. */
  private async prepare(): Promise<void> {
    await prepareDataRoot(this.root);
    await privateDir(this.layoutDir);
    await mkdir(join(this.layoutDir, 'blobs', 'sha256'), { recursive: true });
    await privateDir(this.rootfsDir);
    await privateDir(this.lockDir);
    const marker = join(this.layoutDir, 'oci-layout');
    if (!existsSync(marker)) await writeFileAtomic(marker, OCI_LAYOUT_FILE);
    const index = join(this.layoutDir, 'index.json');
    // Under the lock: a concurrent first import must not have its index replaced by an empty one.
    if (!existsSync(index)) await this.indexLock(async () => (existsSync(index) ? undefined : this.writeIndex(EMPTY_INDEX)));
  }

  private storeLock<T>(mode: 'shared' | 'exclusive', fn: () => Promise<T>): Promise<T> {
    return withFileLock(join(this.lockDir, 'store'), mode, 'the image store', fn);
  }

  private indexLock<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(join(this.lockDir, 'index'), 'exclusive', 'the image index', fn);
  }

  /**
   * Holds the store in shared use until released: nothing read or unpacked
   * meanwhile is garbage-collected. `tugboat run` holds it from resolving the
   * image until the container's record names the root it uses.
   */
  async lease(): Promise<FileLock> {
    await this.prepare();
    return lockFile(join(this.lockDir, 'store'), 'shared', 'the image store');
  }

  /** Runs `fn` under a lease. */
  async use<T>(fn: () => Promise<T>): Promise<T> {
    const lease = await this.lease();
    try {
      return await fn();
    } finally {
      lease.release();
    }
  }

  private async readIndex(): Promise<ImageIndex> {
    const path = join(this.layoutDir, 'index.json');
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return structuredClone(EMPTY_INDEX);
      throw err;
    }
    try {
      return parseIndex(data, `image store index ${path}`);
    } catch (err) {
      throw new ImageError(`${(err as Error).message} (the store is corrupt)`);
    }
  }

  private async writeIndex(index: ImageIndex): Promise<void> {
    try {
      await writeFileAtomic(join(this.layoutDir, 'index.json'), JSON.stringify(index, null, 2));
    } catch (err) {
      throw storeWriteError(err, this.root);
    }
  }

  private blobPath(digest: string): string {
    return join(this.layoutDir, 'blobs', 'sha256', digestHex(digest));
  }

  /** A read-only view of the store, usable wherever an image source is. */
  source(): ImageSource {
    return openOciLayout(this.layoutDir);
  }

  /**
   * Copies a blob the store lacks to a temp file beside its final place
   * (verified as it streams); `commit` renames it into place. Until then no
   * reader of the store sees it, so a failed import leaves no blob behind.
   */
  private async stageBlob(from: ImageSource, desc: Descriptor, staged: StagedBlobs): Promise<void> {
    const dest = this.blobPath(desc.digest);
    if (staged.has(desc.digest) || existsSync(dest)) return;
    const tmp = tmpName(dest);
    staged.set(desc.digest, { tmp, forget: removeOnInterrupt(tmp) });
    try {
      await pipeline(await from.openBlob(desc), createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
    } catch (err) {
      throw storeWriteError(err, this.root);
    }
  }

  /** Where a blob of an import in progress is: its staged copy, else the store's. */
  private stagedPath(digest: string, staged: StagedBlobs): string {
    return staged.get(digest)?.tmp ?? this.blobPath(digest);
  }

  private async commitBlobs(staged: StagedBlobs): Promise<void> {
    try {
      for (const [digest, { tmp, forget }] of staged) {
        await rename(tmp, this.blobPath(digest));
        staged.delete(digest);
        forget();
      }
    } catch (err) {
      throw storeWriteError(err, this.root);
    }
  }

  private async dropStaged(staged: StagedBlobs): Promise<void> {
    for (const { tmp, forget } of staged.values()) {
      await rm(tmp, { force: true });
      forget();
    }
    staged.clear();
  }

  /**
   * Checks each tar layer against its config's rootfs.diff_ids (the digest of
   * the uncompressed tar), reading the staged copies (or the store's own,
   * for blobs it had). A layer is decompressed once however many manifests name it.
   */
  private async verifyDiffIds(manifests: readonly WalkedManifest[], what: string, staged: StagedBlobs): Promise<void> {
    const known = new Map<string, string>();
    const { layerDiffId } = await import('./layers.js');
    for (const { desc, manifest, config } of manifests) {
      const diffIds = config?.rootfs?.diff_ids;
      if (!diffIds || manifest.config.mediaType === MediaType.WasmConfig) continue;
      for (const [i, layer] of manifest.layers.entries()) {
        if (!TAR_LAYER_TYPES.includes(layer.mediaType)) continue;
        let got = known.get(layer.digest);
        if (got === undefined) {
          got = await layerDiffId(createReadStream(this.stagedPath(layer.digest, staged)), `${what}: layer ${layer.digest}`, { inputSize: layer.size });
          known.set(layer.digest, got);
        }
        if (got !== diffIds[i]!) {
          throw new DigestMismatchError(`${what}: manifest ${desc.digest}: layer ${layer.digest} does not match its diff_id: expected ${diffIds[i]}, got ${got}`);
        }
      }
    }
  }

  /**
   * Imports the image `tag` (or the only image) of `from` under `name`.
   * Every index, manifest and config is checked and every blob verified
   * (digest, size, layers against their diff_ids) before the name is added;
   * the index is updated last, in one rename, so an import that fails leaves
   * no new name behind.
   */
  async import(from: ImageSource, tag: string | undefined, name: string | undefined): Promise<StoredImage> {
    if (name !== undefined) checkImageName(name, 'image import --name');
    await this.prepare();
    return this.storeLock('shared', async () => {
      const top = await from.index();
      const candidates = top.manifests.filter((m) => tag === undefined || m.annotations?.[REF_NAME_ANNOTATION] === tag);
      if (candidates.length === 0) {
        throw new NotFoundError(tag === undefined ? `no images in ${from.description}` : `image tag ${tag} not found in ${from.description}`);
      }
      if (candidates.length > 1 && tag === undefined) {
        const tags = candidates.map((m) => m.annotations?.[REF_NAME_ANNOTATION] ?? m.digest).join(', ');
        throw new ImageError(`${from.description} holds several images (${tags}); name one with :TAG`);
      }
      const chosen = candidates[0]!;
      const storedName = name ?? chosen.annotations?.[REF_NAME_ANNOTATION] ?? tag;
      if (!storedName) throw new ImageError(`image in ${from.description} has no name; give one with --name`);
      if (!isValidImageName(storedName)) {
        throw new UsageError(`image in ${from.description} is named ${JSON.stringify(storedName)}, which is not a valid image name; give one with --name`);
      }

      const walker = new ImageWalker(from);
      await walker.walk(chosen);
      const staged: StagedBlobs = new Map();
      try {
        for (const blob of walker.blobs) {
          await this.stageBlob(from, blob, staged);
          if (staged.size > 0) testPause('import-copy');
        }
        await this.verifyDiffIds(walker.manifests, from.description, staged);
        testPause('import-commit');
        await this.commitBlobs(staged);
      } finally {
        await this.dropStaged(staged);
      }

      const entry: Descriptor = { ...chosen, annotations: { ...chosen.annotations, [REF_NAME_ANNOTATION]: storedName } };
      await this.indexLock(async () => {
        const index = await this.readIndex();
        index.manifests = [...index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== storedName), entry];
        await this.writeIndex(index);
      });
      log().info({ name: storedName, digest: chosen.digest }, 'image imported');
      return this.describe(entry);
    });
  }

  private async describe(entry: Descriptor): Promise<StoredImage> {
    const platforms: string[] = [];
    if (INDEX_TYPES.includes(entry.mediaType)) {
      try {
        const idx = parseIndex(await readFile(this.blobPath(entry.digest)), entry.digest);
        for (const m of idx.manifests) if (m.platform) platforms.push(formatPlatform(m.platform));
      } catch {
        // listed anyway; `run` will report the damage
      }
    } else if (entry.platform) {
      platforms.push(formatPlatform(entry.platform));
    }
    return {
      name: entry.annotations?.[REF_NAME_ANNOTATION] ?? '',
      digest: entry.digest,
      mediaType: entry.mediaType,
      size: entry.size,
      platforms,
    };
  }

  async list(): Promise<StoredImage[]> {
    const index = await this.readIndex();
    return Promise.all(index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION]).map((m) => this.describe(m)));
  }

  /** Whether the store holds this blob already (so a pull need not download it). */
  async hasBlob(digest: string): Promise<boolean> {
    return existsSync(this.blobPath(digest));
  }

  async has(name: string): Promise<boolean> {
    return (await this.readIndex()).manifests.some((m) => m.annotations?.[REF_NAME_ANNOTATION] === name);
  }

  /** Hex digests of every blob the descriptors reach (memoised; the store's own images were checked at import). */
  private async reachable(roots: readonly Descriptor[]): Promise<Set<string>> {
    const walker = new ImageWalker(this.source(), { maxDepth: Infinity, maxDescriptors: Infinity }, false);
    for (const d of roots) await walker.walk(d);
    return walker.digests();
  }

  /**
   * Forgets a name; blobs and unpacked roots no other name uses are then
   * garbage-collected. An image whose unpacked root containers use is
   * refused unless `force`; forced, its root stays until they are removed.
   */
  async remove(name: string, force = false): Promise<void> {
    checkImageName(name, 'image rm');
    await this.prepare();
    await this.indexLock(async () => {
      const index = await this.readIndex();
      const kept = index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== name);
      if (kept.length === index.manifests.length) throw new NotFoundError(`image ${name} not found in the store`);
      if (!force) await this.refuseIfInUse(name, index.manifests, kept);
      index.manifests = kept;
      await this.writeIndex(index);
    });
    await this.collectGarbage();
  }

  private async refuseIfInUse(name: string, all: readonly Descriptor[], kept: readonly Descriptor[]): Promise<void> {
    const users = await rootfsUsers(this.root);
    if (users.size === 0) return;
    let after: Set<string>;
    let before: Set<string>;
    try {
      after = await this.reachable(kept);
      before = await this.reachable(all.filter((m) => !kept.includes(m)));
    } catch (err) {
      // A damaged image can still be forgotten; garbage collection then keeps everything (see below).
      log().warn({ err: (err as Error).message }, 'image store damaged; cannot tell which containers use the image');
      return;
    }
    const gone = [...before].filter((hex) => !after.has(hex));
    const containers = [...new Set(gone.flatMap((hex) => [...(users.get(hex) ?? [])]))].sort();
    if (containers.length === 0) return;
    throw new UsageError(
      `image ${name} is used by container${containers.length > 1 ? 's' : ''} ${containers.join(', ')}: remove ${containers.length > 1 ? 'them' : 'it'} first (tugboat rm), ` +
        'or use image rm --force to forget the name now (its files stay until no container uses them)',
    );
  }

  /**
   * Deletes blobs no name reaches, leftovers of interrupted writes, and
   * unpacked roots neither reachable nor used by a container. Under the
   * exclusive lock, so no import or unpack is in flight; when a reachable
   * blob cannot be read, nothing is deleted.
   */
  private async collectGarbage(): Promise<void> {
    await this.storeLock('exclusive', async () => {
      let live: Set<string>;
      try {
        live = await this.reachable((await this.readIndex()).manifests);
      } catch (err) {
        log().warn({ err: (err as Error).message }, 'image store damaged; garbage collection skipped');
        return;
      }
      const users = await rootfsUsers(this.root);
      const blobDir = join(this.layoutDir, 'blobs', 'sha256');
      for (const hex of await readdir(blobDir).catch(() => [] as string[])) {
        if (!live.has(hex)) await rm(join(blobDir, hex), { force: true });
      }
      for (const hex of await readdir(this.rootfsDir).catch(() => [] as string[])) {
        if (!live.has(hex) && !users.has(hex)) await rm(join(this.rootfsDir, hex), { recursive: true, force: true });
      }
    });
  }

  /**
   * The unpacked, read-only root filesystem of a resolved image, shared by all
   * its containers. Unpacked once into a temp dir and renamed into place; each
   * tar layer is checked against its diff_id on the way.
   */
  async unpack(image: ResolvedImage): Promise<string> {
    await this.prepare();
    return this.storeLock('shared', async () => {
      const dest = join(this.rootfsDir, digestHex(image.manifestDescriptor.digest));
      if (existsSync(dest)) return dest;
      const tmp = tmpName(dest);
      await mkdir(tmp, { mode: 0o755 });
      const forget = removeOnInterrupt(tmp);
      try {
        try {
          await this.unpackInto(tmp, image);
        } catch (err) {
          await rm(tmp, { recursive: true, force: true });
          throw storeWriteError(err, this.root);
        }
        try {
          await rename(tmp, dest);
        } catch (err) {
          // Another run unpacked the same image meanwhile: theirs is as good as ours.
          await rm(tmp, { recursive: true, force: true });
          if (!existsSync(dest)) throw err;
        }
      } finally {
        forget();
      }
      log().info({ digest: image.manifestDescriptor.digest, rootfs: dest }, 'image unpacked');
      return dest;
    });
  }

  private async unpackInto(dir: string, image: ResolvedImage): Promise<void> {
    const limits = this.layerLimits;
    const { applyLayer } = await import('./layers.js');
    const diffIds = image.isArtifact ? undefined : image.config.rootfs?.diff_ids;
    if (diffIds && diffIds.length !== image.manifest.layers.length) {
      throw new ImageError(`${image.source.description}: manifest ${image.manifestDescriptor.digest} has ${image.manifest.layers.length} layers but its config has ${diffIds.length} rootfs.diff_ids`);
    }
    for (const [i, layer] of image.manifest.layers.entries()) {
      const what = `${image.source.description}: layer ${layer.digest}`;
      if (WASM_LAYER_TYPES.includes(layer.mediaType)) {
        const file = join(dir, artifactModulePath(layer));
        await pipeline(await image.source.openBlob(layer), createWriteStream(file, { flags: 'wx', mode: 0o755 }));
        await chmod(file, 0o755);
        continue;
      }
      const stats = await applyLayer(dir, await image.source.openBlob(layer), { ...(limits ? { limits } : {}), inputSize: layer.size });
      if (i < image.manifest.layers.length - 1) testPause('unpack'); // half unpacked
      const expected = diffIds?.[i];
      if (expected !== undefined && stats.diffId !== expected) {
        throw new DigestMismatchError(`${what} does not match its diff_id: expected ${expected}, got ${stats.diffId}`);
      }
    }
  }
}
