// The legacy `docker save` format (Docker < 25, and what `docker load` of
// 20.10 expects): manifest.json lists, per image, a config file and layer
// tars. It has no OCI manifests, so we synthesise one per image in memory,
// with descriptors computed from the files themselves, and check each
// uncompressed layer against the config's rootfs.diff_ids.

import { open, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DigestMismatchError, ImageError } from '../errors.js';
import { safeMemberName } from './archive-extract.js';
import { FileBlobSource } from './blob-files.js';
import { digestFile, sha256Digest } from './digest.js';
import { configPlatform, parseConfig, parseJson } from './image-schema.js';
import type { TempDir } from './temp-space.js';
import { MediaType, REF_NAME_ANNOTATION, type Descriptor, type ImageIndex } from './types.js';

const MAX_JSON = 16 * 1024 * 1024;

/** The OCI manifest Tugboat presents for a legacy image; also used by the builder so both agree byte for byte. */
export function legacyManifestBytes(config: Descriptor, layers: Descriptor[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
}

interface LegacyEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

function parseLegacyManifest(data: Buffer, what: string): LegacyEntry[] {
  const v = parseJson(data, what);
  if (!Array.isArray(v)) throw new ImageError(`${what}: must be a JSON array`);
  return v.map((e: unknown, i) => {
    const at = `${what}[${i}]`;
    if (typeof e !== 'object' || e === null) throw new ImageError(`${at}: not an object`);
    const o = e as Record<string, unknown>;
    if (typeof o.Config !== 'string') throw new ImageError(`${at}: Config must be a string`);
    const tags = o.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new ImageError(`${at}: RepoTags must be an array of strings`);
    if (!Array.isArray(o.Layers) || !o.Layers.every((t) => typeof t === 'string')) throw new ImageError(`${at}: Layers must be an array of strings`);
    return { Config: o.Config, RepoTags: tags as string[], Layers: o.Layers as string[] };
  });
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, 0);
    return bytesRead === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

export class DockerLegacySource extends FileBlobSource {
  private constructor(
    description: string,
    private readonly tempDir: TempDir,
    private readonly blobs: Map<string, string | Buffer>,
    private readonly idx: ImageIndex,
  ) {
    super(description);
  }

  /** `dir` holds the unpacked archive; `files` the regular files it contains (from extractArchive). */
  static async open(dir: string, files: Set<string>, description: string, tempDir: TempDir): Promise<DockerLegacySource> {
    const member = (raw: string, what: string): string => {
      const name = safeMemberName(raw, what);
      if (!files.has(name)) throw new ImageError(`${what}: ${JSON.stringify(raw)} is missing from the archive`);
      return join(dir, name);
    };
    const readJson = async (path: string, what: string): Promise<Buffer> => {
      if ((await stat(path)).size > MAX_JSON) throw new ImageError(`${what}: too large`);
      return readFile(path);
    };

    const entries = parseLegacyManifest(await readJson(member('manifest.json', description), `${description}: manifest.json`), `${description}: manifest.json`);
    const blobs = new Map<string, string | Buffer>();
    const manifests: Descriptor[] = [];
    const layerCache = new Map<string, { digest: string; size: number; gzip: boolean }>();

    for (const [i, e] of entries.entries()) {
      const at = `${description}: manifest.json[${i}]`;
      const configPath = member(e.Config, at);
      const configBytes = await readJson(configPath, `${description}: config ${e.Config}`);
      const configDigest = sha256Digest(configBytes);
      // The file is named after its digest; a different name means it was altered.
      const named = /^([0-9a-f]{64})(\.json)?$/.exec(basename(e.Config))?.[1];
      if (named && `sha256:${named}` !== configDigest) {
        throw new DigestMismatchError(`${description}: config ${e.Config}: digest mismatch, expected sha256:${named}, got ${configDigest}`);
      }
      const config = parseConfig(configBytes, `${description}: config ${e.Config}`);
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== e.Layers.length) {
        throw new ImageError(`${at}: ${e.Layers.length} layers but config has ${diffIds.length} rootfs.diff_ids`);
      }
      blobs.set(configDigest, configPath);

      const layers: Descriptor[] = [];
      for (const [j, name] of e.Layers.entries()) {
        const path = member(name, at);
        let info = layerCache.get(path);
        if (!info) {
          info = { ...(await digestFile(path)), gzip: await isGzip(path) };
          layerCache.set(path, info);
        }
        // diff_ids are digests of the uncompressed tar, so only a plain tar can be checked against them.
        if (!info.gzip && info.digest !== diffIds[j]) {
          throw new DigestMismatchError(`${description}: layer ${name}: diff_id mismatch, expected ${diffIds[j]}, got ${info.digest}`);
        }
        layers.push({ mediaType: info.gzip ? MediaType.OciLayerGzip : MediaType.OciLayer, digest: info.digest, size: info.size });
        blobs.set(info.digest, path);
      }

      const manifest = legacyManifestBytes({ mediaType: MediaType.OciConfig, digest: configDigest, size: configBytes.length }, layers);
      const desc: Descriptor = {
        mediaType: MediaType.OciManifest,
        digest: sha256Digest(manifest),
        size: manifest.length,
        platform: configPlatform(config),
      };
      blobs.set(desc.digest, manifest);
      if (e.RepoTags.length === 0) manifests.push(desc);
      for (const tag of e.RepoTags) manifests.push({ ...desc, annotations: { [REF_NAME_ANNOTATION]: tag } });
    }
    return new DockerLegacySource(description, tempDir, blobs, { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests });
  }

  async index(): Promise<ImageIndex> {
    return structuredClone(this.idx);
  }

  protected locate(desc: Descriptor): string | Buffer | undefined {
    return this.blobs.get(desc.digest);
  }

  async close(): Promise<void> {
    await this.tempDir.remove();
  }
}
