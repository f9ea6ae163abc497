// Tugboat's local image store, for `tugboat run` without containerd:
//   <root>/images/            an OCI image layout (blobs + index.json with ref names)
//   <root>/rootfs/<hex>/      unpacked root filesystems, one per platform manifest
// Writes are atomic (temp + rename) so a failed import or unpack leaves the
// store exactly as it was.
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ImageError, NotFoundError } from '../errors.js';
import { log } from '../log.js';
import { digestHex } from './digest.js';
import { openOciLayout, type ImageSource, type ResolvedImage } from './image-source.js';
import { OCI_LAYOUT_FILE, writeFileAtomic } from './image-writer.js';
import { applyLayer } from './layers.js';
import { formatPlatform } from './platform.js';
import { MediaType, REF_NAME_ANNOTATION, WASM_LAYER_TYPES, type Descriptor, type ImageIndex, type ImageManifest } from './types.js';

const INDEX_TYPES = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);

export interface StoredImage {
  name: string;
  digest: string;
  mediaType: string;
  size: number;
  platforms: string[];
}

function tmpName(base: string): string {
  return `${base}.tmp-${randomBytes(6).toString('hex')}`;
}

/** The file name a Wasm artifact layer is given inside its rootfs. */
export function artifactModulePath(layer: Descriptor): string {
  const title = layer.annotations?.['org.opencontainers.image.title'];
  const base = title ? posix.basename(title) : '';
  return `/${base && base !== '.' && base !== '..' ? base : 'module.wasm'}`;
}

export class ImageStore {
  readonly layoutDir: string;
  readonly rootfsDir: string;

  constructor(readonly root: string) {
    this.layoutDir = join(root, 'images');
    this.rootfsDir = join(root, 'rootfs');
  }

  private async ensureLayout(): Promise<void> {
    await mkdir(join(this.layoutDir, 'blobs', 'sha256'), { recursive: true });
    await mkdir(this.rootfsDir, { recursive: true });
    const marker = join(this.layoutDir, 'oci-layout');
    if (!existsSync(marker)) await writeFileAtomic(marker, OCI_LAYOUT_FILE);
    if (!existsSync(join(this.layoutDir, 'index.json'))) await this.writeIndex({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
  }

  private async readIndex(): Promise<ImageIndex> {
    try {
      return JSON.parse(await readFile(join(this.layoutDir, 'index.json'), 'utf8')) as ImageIndex;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
      throw new ImageError(`image store index ${this.layoutDir}/index.json is corrupt: ${(err as Error).message}`);
    }
  }

  private async writeIndex(index: ImageIndex): Promise<void> {
    await writeFileAtomic(join(this.layoutDir, 'index.json'), JSON.stringify(index, null, 2));
  }

  private blobPath(digest: string): string {
    return join(this.layoutDir, 'blobs', 'sha256', digestHex(digest));
  }

  /** A read-only view of the store, usable wherever an image source is. */
  source(): ImageSource {
    return openOciLayout(this.layoutDir);
  }

  private async copyBlob(from: ImageSource, desc: Descriptor): Promise<void> {
    const dest = this.blobPath(desc.digest);
    if (existsSync(dest)) return;
    const tmp = tmpName(dest);
    try {
      await pipeline(await from.openBlob(desc), createWriteStream(tmp, { mode: 0o644 }));
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Copies the descriptor and everything it references (all platforms of an index). */
  private async copyTree(from: ImageSource, desc: Descriptor): Promise<void> {
    if (INDEX_TYPES.has(desc.mediaType)) {
      const index = JSON.parse((await from.readBlob(desc)).toString('utf8')) as ImageIndex;
      if (!Array.isArray(index.manifests)) throw new ImageError(`index ${desc.digest} has no manifests list`);
      for (const child of index.manifests) await this.copyTree(from, child);
    } else {
      const manifest = JSON.parse((await from.readBlob(desc)).toString('utf8')) as ImageManifest;
      if (!manifest.config || !Array.isArray(manifest.layers)) throw new ImageError(`manifest ${desc.digest} lacks config or layers`);
      await this.copyBlob(from, manifest.config);
      for (const layer of manifest.layers) await this.copyBlob(from, layer);
    }
    await this.copyBlob(from, desc);
  }

  /**
   * Imports the image `tag` (or the only image) of `from` under `name`.
   * Every blob is verified before it lands; the index is updated last, in one
   * rename, so an import that fails leaves no new name behind.
   */
  async import(from: ImageSource, tag: string | undefined, name: string | undefined): Promise<StoredImage> {
    await this.ensureLayout();
    const top = await from.index();
    const candidates = top.manifests.filter((m) => tag === undefined || m.annotations?.[REF_NAME_ANNOTATION] === tag);
    if (candidates.length === 0) throw new NotFoundError(`image tag ${tag} not found in ${from.description}`);
    if (candidates.length > 1 && tag === undefined) {
      const tags = candidates.map((m) => m.annotations?.[REF_NAME_ANNOTATION] ?? m.digest).join(', ');
      throw new ImageError(`${from.description} holds several images (${tags}); name one with :TAG`);
    }
    const chosen = candidates[0]!;
    const storedName = name ?? chosen.annotations?.[REF_NAME_ANNOTATION] ?? tag;
    if (!storedName) throw new ImageError(`image in ${from.description} has no name; give one with --name`);
    await this.copyTree(from, chosen);
    const index = await this.readIndex();
    const entry: Descriptor = { ...chosen, annotations: { ...chosen.annotations, [REF_NAME_ANNOTATION]: storedName } };
    index.manifests = [...index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== storedName), entry];
    await this.writeIndex(index);
    log().info({ name: storedName, digest: chosen.digest }, 'image imported');
    return this.describe(entry);
  }

  private async describe(entry: Descriptor): Promise<StoredImage> {
    const platforms: string[] = [];
    if (INDEX_TYPES.has(entry.mediaType)) {
      try {
        const idx = JSON.parse(await readFile(this.blobPath(entry.digest), 'utf8')) as ImageIndex;
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

  /** Forgets a name. Blobs and unpacked roots still used by other names stay; the rest is garbage-collected. */
  async remove(name: string): Promise<void> {
    const index = await this.readIndex();
    const kept = index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== name);
    if (kept.length === index.manifests.length) throw new NotFoundError(`image ${name} not found in the store`);
    index.manifests = kept;
    await this.writeIndex(index);
    await this.collectGarbage();
  }

  private async reachable(): Promise<Set<string>> {
    const live = new Set<string>();
    const src = this.source();
    const visit = async (desc: Descriptor): Promise<void> => {
      live.add(digestHex(desc.digest));
      const body = JSON.parse((await src.readBlob(desc)).toString('utf8')) as Partial<ImageIndex & ImageManifest>;
      if (INDEX_TYPES.has(desc.mediaType)) for (const m of body.manifests ?? []) await visit(m);
      else {
        if (body.config) live.add(digestHex(body.config.digest));
        for (const l of body.layers ?? []) live.add(digestHex(l.digest));
      }
    };
    for (const m of (await this.readIndex()).manifests) await visit(m);
    return live;
  }

  private async collectGarbage(): Promise<void> {
    const live = await this.reachable();
    const blobDir = join(this.layoutDir, 'blobs', 'sha256');
    for (const hex of await readdir(blobDir).catch(() => [] as string[])) {
      if (!live.has(hex)) await rm(join(blobDir, hex), { force: true });
    }
    for (const hex of await readdir(this.rootfsDir).catch(() => [] as string[])) {
      if (!live.has(hex)) await rm(join(this.rootfsDir, hex), { recursive: true, force: true });
    }
  }

  /**
   * The unpacked, read-only root filesystem of a resolved image, shared by all
   * its containers. Unpacked once into a temp dir and renamed into place.
   */
  async unpack(image: ResolvedImage): Promise<string> {
    await this.ensureLayout();
    const dest = join(this.rootfsDir, digestHex(image.manifestDescriptor.digest));
    if (existsSync(dest)) return dest;
    const tmp = tmpName(dest);
    await mkdir(tmp, { mode: 0o755 });
    try {
      for (const layer of image.manifest.layers) {
        if (WASM_LAYER_TYPES.includes(layer.mediaType)) {
          const file = join(tmp, artifactModulePath(layer));
          await pipeline(await image.source.openBlob(layer), createWriteStream(file, { flags: 'wx', mode: 0o755 }));
          await chmod(file, 0o755);
        } else {
          await applyLayer(tmp, await image.source.openBlob(layer));
        }
      }
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    try {
      await rename(tmp, dest);
    } catch (err) {
      // Another run unpacked the same image meanwhile: theirs is as good as ours.
      await rm(tmp, { recursive: true, force: true });
      if (!existsSync(dest)) throw err;
    }
    log().info({ digest: image.manifestDescriptor.digest, rootfs: dest }, 'image unpacked');
    return dest;
  }
}
