// Writes a built image out as an OCI layout, an OCI layout tar, or a legacy
// `docker save` tar. Layout writes never damage what is already there: blobs
// are content-addressed and written via tmp+rename (skipped if already
// present and intact), and index.json is replaced atomically, last.

import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { NotFoundError, UsageError } from '../errors.js';
import type { TarMember } from './build-layer.js';
import { digestFile, digestHex, sha256Digest } from './digest.js';
import { INDEX_TYPES, parseIndex } from './image-schema.js';
import { descriptorPlatform, openOciLayout, type ImageSource } from './image-source.js';
import { ownedName } from '../owner.js';
import { platformMatches } from './platform.js';
import { removeOnInterrupt } from './temp-space.js';
import { MediaType, REF_NAME_ANNOTATION, type Descriptor, type ImageIndex, type Platform } from './types.js';

export interface Blob {
  desc: Descriptor;
  data: Buffer;
}

export interface BuiltImage {
  config: Blob;
  layers: Blob[];
  /** desc.platform is set. */
  manifest: Blob;
  platform: Platform;
}

export const OCI_LAYOUT_FILE = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/** Replaces `path` in one rename; its temp file names this process (swept when it is killed, removed when interrupted). */
export async function writeFileAtomic(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const tmp = `${path}.${ownedName('tmp-')}`;
  const fh = await open(tmp, 'wx', mode);
  const forget = removeOnInterrupt(tmp);
  try {
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  } finally {
    forget();
  }
}

async function writeBlob(dir: string, blob: Blob): Promise<void> {
  const path = join(dir, 'blobs', 'sha256', digestHex(blob.desc.digest));
  const existing = await digestFile(path).catch(() => undefined);
  if (existing?.digest === blob.desc.digest && existing.size === blob.desc.size) return;
  await writeFileAtomic(path, blob.data);
}

function jsonBlob(value: unknown, mediaType: string): Blob {
  const data = Buffer.from(JSON.stringify(value));
  return { desc: { mediaType, digest: sha256Digest(data), size: data.length }, data };
}

/** Makes `dir` an OCI layout if it is not one yet; refuses a non-empty directory that is something else. */
async function prepareLayout(dir: string): Promise<void> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    if (err.code === 'ENOTDIR') throw new UsageError(`output ${dir} exists and is not a directory`);
    throw err;
  });
  if (names && names.length > 0 && !names.includes('oci-layout')) {
    throw new UsageError(`output ${dir} exists and is not an OCI image layout (no oci-layout file)`);
  }
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  if (!names?.includes('oci-layout')) await writeFileAtomic(join(dir, 'oci-layout'), OCI_LAYOUT_FILE);
}

const samePlatform = (a: Platform, b: Platform): boolean => platformMatches(a, b) && platformMatches(b, a);

/**
 * The manifests now under `tagged` (a manifest, an index, or per-platform
 * entries of `source`: a layout, a registry), each with its platform, with
 * the new one replacing any entry of the same platform (and that entry's
 * buildx attestation).
 */
export async function mergedManifests(source: ImageSource, tagged: Descriptor[], added: Descriptor): Promise<Descriptor[]> {
  const current: Descriptor[] = [];
  for (const d of tagged) {
    if (INDEX_TYPES.includes(d.mediaType)) {
      current.push(...parseIndex(await source.readBlob(d), `${source.description}: index ${d.digest}`).manifests);
    } else {
      // The tag moves to the new index; the manifest keeps its other annotations.
      const { [REF_NAME_ANNOTATION]: _tag, ...annotations } = d.annotations ?? {};
      const { annotations: _all, ...rest } = d;
      current.push(Object.keys(annotations).length ? { ...rest, annotations } : rest);
    }
  }
  const newPlatform = added.platform as Platform;
  const out: Descriptor[] = [];
  const replaced = new Set<string>();
  let placed = false;
  for (const d of current) {
    const platform = await descriptorPlatform(source, d);
    const isAttestation = d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';
    if (!isAttestation && platform && samePlatform(platform, newPlatform)) {
      replaced.add(d.digest);
      if (!placed) out.push(added);
      placed = true;
      continue;
    }
    if (out.some((o) => o.digest === d.digest)) continue;
    out.push(platform ? { ...d, platform } : d);
  }
  if (!placed) out.push(added);
  return out.filter((d) => !replaced.has(d.annotations?.['vnd.docker.reference.digest'] ?? ''));
}

/**
 * Writes `img` into the layout at `dir` under `tag`. Other tags are kept.
 * With addTo, `tag` must already name an image; it then points to a new
 * index holding the existing platforms plus this one.
 */
export async function writeOciLayout(dir: string, img: BuiltImage, tag: string, addTo: boolean): Promise<{ indexDigest?: string }> {
  await prepareLayout(dir);
  const hasIndex = await stat(join(dir, 'index.json')).then(() => true, () => false);
  const index: ImageIndex = hasIndex ? await openOciLayout(dir).index() : { schemaVersion: 2, manifests: [] };
  const isTagged = (d: Descriptor): boolean => d.annotations?.[REF_NAME_ANNOTATION] === tag;
  const tagged = index.manifests.filter(isTagged);

  for (const b of [img.config, ...img.layers, img.manifest]) await writeBlob(dir, b);

  let entry: Descriptor;
  let indexDigest: string | undefined;
  if (addTo) {
    if (tagged.length === 0) throw new NotFoundError(`image tag ${tag} not found in oci:${dir}; nothing to add a platform to`);
    const newIndex = jsonBlob(
      { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: await mergedManifests(openOciLayout(dir), tagged, img.manifest.desc) },
      MediaType.OciIndex,
    );
    await writeBlob(dir, newIndex);
    indexDigest = newIndex.desc.digest;
    entry = { ...newIndex.desc, annotations: { [REF_NAME_ANNOTATION]: tag } };
  } else {
    entry = { ...img.manifest.desc, annotations: { [REF_NAME_ANNOTATION]: tag } };
  }

  // The new entry takes the place of the old one, so `index.json` order stays stable.
  const first = index.manifests.findIndex(isTagged);
  const manifests = index.manifests.filter((d) => !isTagged(d));
  manifests.splice(first < 0 ? manifests.length : first, 0, entry);
  const { manifests: _old, ...rest } = index;
  await writeFileAtomic(join(dir, 'index.json'), JSON.stringify({ ...rest, schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
  return indexDigest ? { indexDigest } : {};
}

async function writeTarAtomic(file: string, members: TarMember[]): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const st = await stat(file).catch(() => undefined);
  if (st && !st.isFile()) throw new UsageError(`output ${file} exists and is not a regular file`);
  const { packTar } = await import('./build-layer.js');
  await writeFileAtomic(file, await packTar(members));
}

const dir = (name: string): TarMember => ({ name, type: 'directory', mode: 0o755 });
const file = (name: string, data: Buffer | string): TarMember => ({ name, type: 'file', mode: 0o644, data: Buffer.from(data) });

/** An OCI layout as a tar, holding just this image. */
export async function writeOciArchive(out: string, img: BuiltImage, tag: string): Promise<void> {
  const blobs = new Map<string, Buffer>();
  for (const b of [img.config, ...img.layers, img.manifest]) blobs.set(digestHex(b.desc.digest), b.data);
  const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [{ ...img.manifest.desc, annotations: { [REF_NAME_ANNOTATION]: tag } }] };
  await writeTarAtomic(out, [
    dir('blobs'),
    dir('blobs/sha256'),
    ...[...blobs.keys()].sort().map((hex) => file(`blobs/sha256/${hex}`, blobs.get(hex) as Buffer)),
    file('index.json', JSON.stringify(index)),
    file('oci-layout', OCI_LAYOUT_FILE),
  ]);
}

/**
 * The legacy `docker save` form Docker 20.10's `docker load` reads:
 * manifest.json, `<config hex>.json`, `<diff id hex>/layer.tar` (uncompressed,
 * so its digest is its diff_id), and `repositories`.
 */
export async function writeDockerArchive(out: string, img: BuiltImage, repoTag: string): Promise<void> {
  const configName = `${digestHex(img.config.desc.digest)}.json`;
  const layerDirs = img.layers.map((l) => digestHex(l.desc.digest));
  const colon = repoTag.lastIndexOf(':');
  const repositories = { [repoTag.slice(0, colon)]: { [repoTag.slice(colon + 1)]: layerDirs.at(-1) ?? '' } };
  const layerMembers = img.layers.flatMap((l, i) => [dir(layerDirs[i] as string), file(`${layerDirs[i]}/layer.tar`, l.data)]);
  const members = [
    file(configName, img.config.data),
    ...layerMembers,
    file('manifest.json', JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: layerDirs.map((h) => `${h}/layer.tar`) }])),
    file('repositories', JSON.stringify(repositories)),
  ];
  await writeTarAtomic(out, members.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
}
