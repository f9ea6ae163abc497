// The graph of an image: indexes → manifests → config and layers. An index
// can name the same child many times and indexes can nest, so a hostile image
// of 8 entries per index, 6 deep, is 262,144 paths over a few dozen blobs.
// Every walk here is memoised by digest (each blob is read and checked once)
// and bounded in depth and in the descriptors it will look at.
import { ImageError } from '../errors.js';
import { digestHex } from './digest.js';
import type { ImageSource } from './image-source.js';
import { parseConfig, parseJson, parseManifestOrIndex } from './image-schema.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageManifest } from './types.js';

/** Indexes nested deeper than this are refused (real images nest one, rarely two). */
export const MAX_INDEX_DEPTH = 8;

export interface WalkLimits {
  maxDepth: number;
  /** Descriptors looked at (index entries, configs, layers, repeats included). */
  maxDescriptors: number;
}

export const DEFAULT_WALK_LIMITS: WalkLimits = Object.freeze({ maxDepth: MAX_INDEX_DEPTH, maxDescriptors: 10_000 });

/** Config media types whose content is an image config (os, architecture, rootfs). */
const IMAGE_CONFIG_TYPES: readonly string[] = [MediaType.OciConfig, MediaType.DockerConfig, MediaType.WasmConfig];

export interface WalkedManifest {
  desc: Descriptor;
  manifest: ImageManifest;
  /** Parsed when the config is an image config. */
  config?: ImageConfig;
}

/**
 * Walks images of one source. Reuse one walker for several roots to share the
 * memo (the store's garbage collector does).
 */
export class ImageWalker {
  /** Every distinct blob seen, children before the index or manifest naming them. */
  readonly blobs: Descriptor[] = [];
  readonly manifests: WalkedManifest[] = [];
  private readonly seen = new Set<string>();
  /** Indexes and manifests already walked (a blob seen only as a layer is still walked when an index names it). */
  private readonly walked = new Set<string>();
  private looked = 0;

  constructor(
    private readonly source: ImageSource,
    private readonly limits: WalkLimits = DEFAULT_WALK_LIMITS,
    /** Check configs (schema and, for image configs, diff_ids count) as well as indexes and manifests. */
    private readonly checkConfigs = true,
  ) {}

  /** Hex digests of every blob seen. */
  digests(): Set<string> {
    return new Set(this.seen);
  }

  async walk(desc: Descriptor, depth = 0): Promise<void> {
    this.count();
    const hex = digestHex(desc.digest);
    if (this.walked.has(hex)) return;
    const what = this.source.description;
    if (depth > this.limits.maxDepth) throw new ImageError(`${what}: image indexes nested more than ${this.limits.maxDepth} deep (at ${desc.digest})`);
    this.walked.add(hex);
    const parsed = parseManifestOrIndex(desc, await this.source.readBlob(desc), what);
    if (parsed.kind === 'index') {
      for (const child of parsed.index.manifests) await this.walk(child, depth + 1);
    } else {
      const { manifest } = parsed;
      const config = await this.visitConfig(desc, manifest);
      for (const layer of manifest.layers) this.leaf(layer);
      this.manifests.push(config ? { desc, manifest, config } : { desc, manifest });
    }
    if (!this.seen.has(hex)) {
      this.seen.add(hex);
      this.blobs.push(desc);
    }
  }

  private async visitConfig(desc: Descriptor, manifest: ImageManifest): Promise<ImageConfig | undefined> {
    const what = `${this.source.description}: config ${manifest.config.digest}`;
    const fresh = this.leaf(manifest.config);
    if (!this.checkConfigs) return undefined;
    const type = manifest.config.mediaType;
    const isImageConfig = IMAGE_CONFIG_TYPES.includes(type);
    if (!isImageConfig && !/[+/]json$/.test(type)) return undefined;
    // A config shared by several manifests is read once per manifest only when it must be checked against each.
    if (!fresh && !isImageConfig) return undefined;
    const data = await this.source.readBlob(manifest.config);
    if (!isImageConfig) {
      parseJson(data, what);
      return undefined;
    }
    const config = parseConfig(data, what);
    const diffIds = config.rootfs?.diff_ids;
    if (diffIds && type !== MediaType.WasmConfig && diffIds.length !== manifest.layers.length) {
      throw new ImageError(`${this.source.description}: manifest ${desc.digest} has ${manifest.layers.length} layers but its config has ${diffIds.length} rootfs.diff_ids`);
    }
    return config;
  }

  /** Records a blob without content to walk; true the first time. */
  private leaf(desc: Descriptor): boolean {
    this.count();
    const hex = digestHex(desc.digest);
    if (this.seen.has(hex)) return false;
    this.seen.add(hex);
    this.blobs.push(desc);
    return true;
  }

  private count(): void {
    if (++this.looked > this.limits.maxDescriptors) {
      throw new ImageError(`${this.source.description}: image has more than ${this.limits.maxDescriptors} descriptors`);
    }
  }
}
