// Where images come from before they are in the store: an OCI layout
// directory, an OCI layout tar (oci-archive), or `docker save` output
// (docker-archive). All of them are presented as an OCI index plus verified
// blobs, and resolveImage turns "source + tag + platform" into one manifest
// and config.

import type { Readable } from 'node:stream';
import { ImageError, NotFoundError, UsageError } from '../errors.js';
import { configPlatform, INDEX_TYPES, parseConfig, parseManifest, parseManifestOrIndex } from './image-schema.js';
import { MAX_INDEX_DEPTH } from './image-walk.js';
import { OciLayoutSource } from './oci-layout.js';
import { makeOwnedDir } from './temp-space.js';
import { formatPlatform, platformMatches, selectManifest } from './platform.js';
import {
  MediaType,
  REF_NAME_ANNOTATION,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type Platform,
} from './types.js';

export interface ImageSource {
  readonly description: string;
  /** Top-level index: index.json of a layout; for a docker-archive, synthesized from manifest.json. */
  index(): Promise<ImageIndex>;
  /** Whole blob, digest and size verified. NotFoundError if absent, DigestMismatchError if wrong; refuses blobs over 64 MiB. */
  readBlob(desc: Descriptor): Promise<Buffer>;
  /** Streaming blob, verified: the stream errors at its end on mismatch. */
  openBlob(desc: Descriptor): Promise<Readable>;
  /** Removes any temp dir. */
  close(): Promise<void>;
}

export interface ImageRef {
  transport: 'oci' | 'oci-archive' | 'docker-archive';
  path: string;
  tag?: string;
}

const REF_RE = /^(oci|oci-archive|docker-archive):(.*)$/s;

/**
 * "oci:DIR[:TAG]", "oci-archive:FILE[:TAG]", "docker-archive:FILE[:TAG]".
 * The last ':' starts a tag only if no '/' follows it, so "oci:/a:b/dir"
 * is a path. A full "name:tag" reference therefore cannot be written here;
 * give its tag part ("docker-archive:f.tar:latest"), which resolveImage
 * matches against full names too.
 */
export function parseImageRef(ref: string): ImageRef {
  const m = REF_RE.exec(ref);
  if (!m) {
    throw new UsageError(`invalid image reference ${JSON.stringify(ref)}: expected oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:TAG]`);
  }
  const transport = m[1] as ImageRef['transport'];
  // As skopeo does: the path ends at the FIRST colon, so that a full reference
  // (registry:port/name:tag) can follow it; paths with colons are not supported.
  let path = m[2] ?? '';
  let tag: string | undefined;
  const i = path.indexOf(':');
  if (i >= 0) {
    tag = path.slice(i + 1);
    path = path.slice(0, i);
    if (tag === '' || /[\s\0]/.test(tag)) throw new UsageError(`invalid image reference ${JSON.stringify(ref)}: bad tag ${JSON.stringify(tag)}`);
  }
  if (path === '') throw new UsageError(`invalid image reference ${JSON.stringify(ref)}: path missing`);
  return tag === undefined ? { transport, path } : { transport, path, tag };
}

export function openOciLayout(dir: string): ImageSource {
  return new OciLayoutSource(dir, `oci:${dir}`);
}

/**
 * An image source for `ref`. Archives are unpacked into a private directory
 * made under `tempParent` (the data root's temp space, `<root>/tmp`, for the
 * commands that have one), removed on close, on an interruption, or by the
 * next sweep when the command is killed.
 */
export async function openImageSource(ref: ImageRef, tempParent: string): Promise<ImageSource> {
  if (ref.transport === 'oci') return openOciLayout(ref.path);
  const description = `${ref.transport}:${ref.path}`;
  // Only archives need tar and gzip: loaded here, not by every command that opens a layout.
  const [{ extractArchive }, { DockerLegacySource }] = await Promise.all([import('./archive-extract.js'), import('./docker-archive.js')]);
  const temp = await makeOwnedDir(tempParent, 'archive');
  try {
    const files = await extractArchive(ref.path, temp.path, description);
    // Docker 25+ writes an OCI layout alongside manifest.json; the layout is the richer of the two.
    if (files.has('oci-layout') && files.has('index.json')) return new OciLayoutSource(temp.path, description, temp);
    if (files.has('manifest.json')) return await DockerLegacySource.open(temp.path, files, description, temp);
    throw new ImageError(`${description}: neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)`);
  } catch (err) {
    await temp.remove();
    throw err;
  }
}

export interface ResolvedImage {
  source: ImageSource;
  /** Of the chosen platform manifest. */
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /** From the config (os/architecture/variant). */
  platform: Platform;
  /** config.mediaType is application/vnd.wasm.config.v0+json (CNCF Wasm artifact). */
  isArtifact: boolean;
}

/** Names a descriptor is known by: the OCI ref name, and containerd's full image name (Docker 25+ saves both). */
function refNames(d: Descriptor): string[] {
  const a = d.annotations ?? {};
  return [a[REF_NAME_ANNOTATION], a['io.containerd.image.name']].filter((n): n is string => typeof n === 'string' && n !== '');
}

/** "registry/name:tag" → "tag"; undefined when the name carries no tag. */
function tagPart(name: string): string | undefined {
  const i = name.lastIndexOf(':');
  return i >= 0 && !name.slice(i + 1).includes('/') ? name.slice(i + 1) : undefined;
}

/**
 * Descriptors a tag names: an exact ref name first; otherwise full names
 * whose tag part is `tag` ("latest" finds "tugboat.local/image:latest") or
 * a bare name that means ":latest".
 */
export function findTag(manifests: Descriptor[], tag: string, what: string): Descriptor[] {
  const exact = manifests.filter((d) => refNames(d).includes(tag));
  if (exact.length) return exact;
  const loose = manifests.filter((d) => refNames(d).some((n) => tagPart(n) === tag || n === `${tag}:latest`));
  const names = new Set(loose.map((d) => refNames(d)[0]));
  if (names.size > 1) throw new UsageError(`image tag ${tag} is ambiguous in ${what}: ${[...names].join(', ')}`);
  return loose;
}

export function availableTags(index: ImageIndex): string {
  const tags = [...new Set(index.manifests.flatMap((d) => refNames(d).slice(0, 1)))];
  return tags.length ? tags.join(', ') : 'none';
}

function uniqueByDigest(ds: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return ds.filter((d) => !seen.has(d.digest) && (seen.add(d.digest), true));
}

/**
 * The platform of a manifest descriptor: its own, or else read from its
 * config. Undefined for indexes without one and for unreadable manifests.
 */
export async function descriptorPlatform(source: ImageSource, desc: Descriptor): Promise<Platform | undefined> {
  if (desc.platform) return desc.platform;
  if (INDEX_TYPES.includes(desc.mediaType)) return undefined;
  try {
    const manifest = parseManifest(await source.readBlob(desc), `${source.description}: manifest ${desc.digest}`);
    const config = parseConfig(await source.readBlob(manifest.config), `${source.description}: config ${manifest.config.digest}`);
    return configPlatform(config);
  } catch {
    return undefined;
  }
}

async function withPlatforms(source: ImageSource, ds: Descriptor[]): Promise<Descriptor[]> {
  return Promise.all(
    ds.map(async (d) => {
      if (d.platform) return d;
      const platform = await descriptorPlatform(source, d);
      return platform ? { ...d, platform } : d;
    }),
  );
}

async function resolveManifest(
  source: ImageSource,
  desc: Descriptor,
  want: Platform | undefined,
  depth: number,
): Promise<{ desc: Descriptor; manifest: ImageManifest }> {
  const what = source.description;
  if (depth > MAX_INDEX_DEPTH) throw new ImageError(`${what}: image indexes nested more than ${MAX_INDEX_DEPTH} deep`);
  const parsed = parseManifestOrIndex(desc, await source.readBlob(desc), what);
  if (parsed.kind === 'manifest') return { desc, manifest: parsed.manifest };
  const child = selectManifest(await withPlatforms(source, parsed.index.manifests), want, `${what} (index ${desc.digest})`);
  return resolveManifest(source, child, want, depth + 1);
}

export async function resolveImage(source: ImageSource, tag: string | undefined, want: Platform | undefined): Promise<ResolvedImage> {
  const what = source.description;
  const index = await source.index();
  if (index.manifests.length === 0) throw new NotFoundError(`no images in ${what}`);

  let candidates: Descriptor[];
  if (tag !== undefined) {
    candidates = findTag(index.manifests, tag, what);
    if (!candidates.length) throw new NotFoundError(`image tag ${tag} not found in ${what}; available tags: ${availableTags(index)}`);
  } else if (uniqueByDigest(index.manifests).length === 1) {
    candidates = index.manifests;
  } else {
    candidates = findTag(index.manifests, 'latest', what);
    // A layout may also list one untagged manifest per platform at top level.
    if (!candidates.length && index.manifests.every((d) => refNames(d).length === 0)) candidates = index.manifests;
    if (!candidates.length) {
      throw new NotFoundError(`${what} holds several images and none is tagged latest; name one of: ${availableTags(index)}`);
    }
  }
  candidates = uniqueByDigest(candidates);
  const top = candidates.length === 1 ? (candidates[0] as Descriptor) : selectManifest(await withPlatforms(source, candidates), want, what);

  const { desc, manifest } = await resolveManifest(source, top, want, 0);
  const config = parseConfig(await source.readBlob(manifest.config), `${what}: config ${manifest.config.digest}`);
  const platform = configPlatform(config);
  if (want && !platformMatches(platform, want)) {
    throw new NotFoundError(`no manifest for ${formatPlatform(want)} in ${what}; available: ${formatPlatform(platform)}`);
  }
  return {
    source,
    manifestDescriptor: desc,
    manifest,
    config,
    platform,
    isArtifact: manifest.config.mediaType === MediaType.WasmConfig,
  };
}
