// `tugboat pull`: registry → verified staging → unpacked root filesystem and
// the store's own import, ready for `tugboat run`. One platform by default
// (Wasm first, as everywhere in Tugboat), every platform with allPlatforms.
// The image gets its name in the store only after every blob has been
// downloaded and verified and its root filesystem unpacked (the store's
// unpack renames into place only on success), so a refused or interrupted
// pull leaves the store as it was.

import { NotFoundError } from '../../errors.js';
import { log } from '../../log.js';
import { INDEX_TYPES, parseIndex, parseManifest } from '../image-schema.js';
import { resolveImage } from '../image-source.js';
import { formatPlatform } from '../platform.js';
import { ImageStore } from '../store.js';
import type { Descriptor, Platform } from '../types.js';
import { RegistryClient, type ClientOptions } from './client.js';
import { silentProgress, type Progress } from './progress.js';
import { formatRegistryRef, manifestReference, parseRegistryRef } from './reference.js';
import { RegistrySource } from './registry-source.js';
import { makeTempDir } from '../temp-space.js';

export interface PullOptions extends Omit<ClientOptions, 'push' | 'credentials'> {
  /** Data root (the store lives in <root>/images). */
  root: string;
  reference: string;
  platform?: Platform;
  allPlatforms?: boolean;
  progress?: Progress;
  /** Blobs downloaded at once (default 3, as Docker). */
  concurrency?: number;
}

export interface PullResult {
  /** The store name: the normalized reference ("127.0.0.1:5000/app:1", "docker.io/library/busybox:latest"). */
  name: string;
  /** Digest of what the name now points to in the store. */
  digest: string;
  /** The platform unpacked (the one `tugboat run NAME` uses without --platform). */
  platform: string;
  /** The store already had exactly this. */
  upToDate: boolean;
}

const DEFAULT_CONCURRENCY = 3;
const MAX_DEPTH = 8;

type Blob = { desc: Descriptor; kind: 'config' | 'layer' };

const blobsOf = (m: { config: Descriptor; layers: Descriptor[] }): Blob[] => [
  { desc: m.config, kind: 'config' },
  ...m.layers.map((desc) => ({ desc, kind: 'layer' as const })),
];

/** Configs and layers under `desc`, every platform of an index. */
async function blobsUnder(source: RegistrySource, desc: Descriptor, depth = 0): Promise<Blob[]> {
  if (depth > MAX_DEPTH) throw new NotFoundError(`${source.description}: image indexes nested more than ${MAX_DEPTH} deep`);
  const data = await source.readBlob(desc);
  if (INDEX_TYPES.includes(desc.mediaType)) {
    const index = parseIndex(data, `${source.description}: index ${desc.digest}`);
    return (await Promise.all(index.manifests.map((m) => blobsUnder(source, m, depth + 1)))).flat();
  }
  return blobsOf(parseManifest(data, `${source.description}: manifest ${desc.digest}`));
}

export async function pullImage(o: PullOptions): Promise<PullResult> {
  const ref = parseRegistryRef(o.reference);
  const name = formatRegistryRef(ref);
  const progress = o.progress ?? silentProgress;
  const store = new ImageStore(o.root);

  const client = new RegistryClient(ref.registry, ref.repository, o);
  const top = await client.getManifest(manifestReference(ref)).catch((err: unknown) => {
    client.close();
    throw err;
  });
  // Blobs are downloaded and verified in a private temp dir under the data
  // root before the store sees any of them.
  const staging = await makeTempDir(o.root, 'pull');
  let source = new RegistrySource(client, top.desc, name, staging.path);
  try {
    source.remember(top.desc, top.data);
    const resolved = await resolveImage(source, name, o.platform);
    const chosen: Descriptor = o.allPlatforms ? top.desc : { ...resolved.manifestDescriptor, platform: resolved.platform };
    const current = (await store.list()).find((i) => i.name === name);
    const upToDate = current?.digest === chosen.digest;
    if (upToDate) {
      await store.unpack(await resolveImage(store.source(), name, o.platform));
    } else {
      const wanted = o.allPlatforms ? await blobsUnder(source, top.desc) : blobsOf(resolved.manifest);
      const missing: Descriptor[] = [];
      const have: string[] = [];
      for (const b of wanted) {
        if (await store.hasBlob(b.desc.digest)) have.push(b.desc.digest);
        else missing.push(b.desc);
      }
      const kinds = new Map(wanted.map((b) => [b.desc.digest, b.kind]));
      source = source.withLocal(store.source(), have);
      const staging = source.stage(missing, o.concurrency ?? DEFAULT_CONCURRENCY, progress, (d) => kinds.get(d.digest) ?? 'layer');
      // Layers are unpacked as soon as each is downloaded and verified, while
      // later ones still download; a failed download fails the unpack too.
      const unpacking = store.unpack({ ...resolved, source });
      const [staged, unpacked] = await Promise.allSettled([staging, unpacking]);
      if (staged.status === 'rejected') throw staged.reason;
      if (unpacked.status === 'rejected') throw unpacked.reason;
      log().debug({ blobs: missing.length, bytes: missing.reduce((n, d) => n + d.size, 0) }, 'blobs downloaded, verified and unpacked');
      // Only a complete, verified, unpackable image gets a name in the store.
      await store.import(source.withTop(chosen), name, name);
    }
    const platform = formatPlatform(resolved.platform);
    log().info({ name, digest: chosen.digest, platform, upToDate }, 'image pulled');
    return { name, digest: chosen.digest, platform, upToDate };
  } finally {
    progress.close();
    await source.close();
    await staging.remove();
  }
}
