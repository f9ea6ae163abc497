// `tugboat push` and `image build --push/--add-to`: copies an image (a
// manifest, or an index with every platform) from any ImageSource to a
// registry. Blobs go first (skipped when present, mounted from another
// repository of the same registry when we know one holds them, else
// uploaded), then child manifests by digest, then the top one under its tag,
// so the registry never holds a tag that points at something incomplete.

import { NotFoundError, UsageError } from '../../errors.js';
import { log } from '../../log.js';
import { INDEX_TYPES, MANIFEST_TYPES, parseIndex, parseJson, parseManifest } from '../image-schema.js';
import { availableTags, descriptorPlatform, findTag, type ImageSource } from '../image-source.js';
import { mergedManifests } from '../image-writer.js';
import { MediaType, REF_NAME_ANNOTATION, type Descriptor } from '../types.js';
import { RegistryClient, type ClientOptions } from './client.js';
import { forEachLimit } from './parallel.js';
import { silentProgress, type Progress } from './progress.js';
import { formatRegistryRef, manifestReference, parseRegistryRef, type RegistryRef } from './reference.js';
import { RegistrySource } from './registry-source.js';

export interface PushOptions extends Omit<ClientOptions, 'push' | 'credentials'> {
  destination: string;
  /** A repository of the destination registry that may already hold the blobs (cross-repository mount). */
  mountFrom?: string;
  progress?: Progress;
  /** Blobs uploaded at once (default 4). */
  concurrency?: number;
  /** Upload in PATCH chunks of this many bytes (default: one monolithic PUT). */
  chunkSize?: number;
}

export interface PushResult {
  reference: string;
  digest: string;
}

const DEFAULT_CONCURRENCY = 4;
const MAX_DEPTH = 8;

interface Tree {
  /** Children before parents; the top last. */
  manifests: { desc: Descriptor; data: Buffer }[];
  blobs: { desc: Descriptor; kind: 'config' | 'layer' }[];
}

function manifestMediaType(desc: Descriptor, data: Buffer, what: string): string {
  if (INDEX_TYPES.includes(desc.mediaType) || MANIFEST_TYPES.includes(desc.mediaType)) return desc.mediaType;
  const v = parseJson(data, what) as { mediaType?: unknown; manifests?: unknown };
  if (typeof v?.mediaType === 'string') return v.mediaType;
  return typeof v === 'object' && v !== null && 'manifests' in v ? MediaType.OciIndex : MediaType.OciManifest;
}

async function walk(source: ImageSource, desc: Descriptor, tree: Tree, depth = 0): Promise<void> {
  const what = `${source.description}: ${desc.digest}`;
  if (depth > MAX_DEPTH) throw new UsageError(`${what}: image indexes nested more than ${MAX_DEPTH} deep`);
  const data = await source.readBlob(desc);
  const mediaType = manifestMediaType(desc, data, what);
  if (INDEX_TYPES.includes(mediaType)) {
    for (const child of parseIndex(data, what).manifests) await walk(source, child, tree, depth + 1);
  } else {
    const m = parseManifest(data, what);
    tree.blobs.push({ desc: m.config, kind: 'config' }, ...m.layers.map((l) => ({ desc: l, kind: 'layer' as const })));
  }
  if (!tree.manifests.some((m) => m.desc.digest === desc.digest)) tree.manifests.push({ desc: { ...desc, mediaType }, data });
}

async function pushTree(source: ImageSource, top: Descriptor, client: RegistryClient, dest: RegistryRef, o: PushOptions): Promise<string> {
  const progress = o.progress ?? silentProgress;
  const tree: Tree = { manifests: [], blobs: [] };
  await walk(source, top, tree);
  const blobs = tree.blobs.filter((b, i) => tree.blobs.findIndex((x) => x.desc.digest === b.desc.digest) === i);
  for (const b of blobs) progress.start(b.desc.digest, b.kind, b.desc.size);
  try {
    await forEachLimit(blobs, o.concurrency ?? DEFAULT_CONCURRENCY, async ({ desc }) => {
      const how = await client.pushBlob(desc, () => source.openBlob(desc), {
        ...(o.mountFrom ? { mountFrom: o.mountFrom } : {}),
        ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}),
        onBytes: (n) => progress.advance(desc.digest, n),
      });
      progress.finish(desc.digest, how === 'uploaded' ? 'done' : how);
      log().debug({ digest: desc.digest, how }, 'blob pushed');
    });
  } finally {
    progress.close();
  }
  const topEntry = tree.manifests.at(-1) as { desc: Descriptor; data: Buffer };
  for (const m of tree.manifests.slice(0, -1)) await client.putManifest(m.desc.digest, m.data, m.desc.mediaType);
  return client.putManifest(manifestReference(dest), topEntry.data, topEntry.desc.mediaType);
}

/** The descriptor `tag` names in `source` (the only image when no tag is given). */
export async function topDescriptor(source: ImageSource, tag: string | undefined): Promise<Descriptor> {
  const index = await source.index();
  const found = tag === undefined ? index.manifests : findTag(index.manifests, tag, source.description);
  const unique = found.filter((d, i) => found.findIndex((o) => o.digest === d.digest) === i);
  if (unique.length === 0) throw new NotFoundError(`image ${tag ?? ''} not found in ${source.description}; available: ${availableTags(index)}`);
  if (unique.length > 1) throw new UsageError(`${source.description} holds several images (${availableTags(index)}); name one`);
  return unique[0] as Descriptor;
}

/** Pushes the image `top` of `source` (every platform) to `o.destination`. */
export async function pushImage(source: ImageSource, top: Descriptor, o: PushOptions): Promise<PushResult> {
  const dest = parseRegistryRef(o.destination);
  const client = new RegistryClient(dest.registry, dest.repository, { ...o, push: true });
  try {
    const digest = await pushTree(source, top, client, dest, o);
    log().info({ reference: formatRegistryRef(dest), digest }, 'image pushed');
    return { reference: formatRegistryRef(dest), digest };
  } finally {
    client.close();
  }
}

/**
 * Adds the manifest `added` (with its platform) of `source` to the image
 * already at `o.destination`: the tag then points to an index holding the
 * registry's platforms plus this one (a same-platform entry is replaced).
 */
export async function pushAddTo(source: ImageSource, added: Descriptor, o: PushOptions): Promise<PushResult> {
  const dest = parseRegistryRef(o.destination);
  if (dest.tag === undefined) throw new UsageError(`--add-to ${o.destination}: needs a tag, not only a digest`);
  // The entry names the image in its layout; in the registry's index the tag is the index's.
  const { [REF_NAME_ANNOTATION]: _name, ...annotations } = added.annotations ?? {};
  const { annotations: _all, ...bare } = added;
  added = Object.keys(annotations).length ? { ...bare, annotations } : bare;
  const platform = added.platform ?? (await descriptorPlatform(source, added));
  if (!platform) throw new UsageError(`${source.description}: manifest ${added.digest} does not say its platform`);
  const client = new RegistryClient(dest.registry, dest.repository, { ...o, push: true });
  try {
    const existing = await client.getManifest(manifestReference(dest)).catch((err: unknown) => {
      if (err instanceof NotFoundError) throw new NotFoundError(`${formatRegistryRef(dest)} does not exist in the registry; nothing to add a platform to (use --push)`);
      throw err;
    });
    const remote = new RegistrySource(client, existing.desc, formatRegistryRef(dest));
    remote.remember(existing.desc, existing.data);
    const manifests = await mergedManifests(remote, [existing.desc], { ...added, platform });
    const { tag: _tag, ...repo } = dest;
    await pushTree(source, added, client, { ...repo, digest: added.digest }, o);
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
    const digest = await client.putManifest(manifestReference(dest), index, MediaType.OciIndex);
    log().info({ reference: formatRegistryRef(dest), digest, platforms: manifests.length }, 'platform added to the registry index');
    return { reference: formatRegistryRef(dest), digest };
  } finally {
    client.close();
  }
}
