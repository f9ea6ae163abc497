// A registry repository seen as an ImageSource, so everything that reads
// images (platform selection in resolveImage, the store's import, the
// platform merge of --add-to) reads registries the same way it reads layouts
// and archives. The top-level index holds one entry: the manifest or index a
// tag resolved to, named as the caller wants it stored.
//
// Blobs can be staged first (downloaded concurrently, verified, kept in a
// private directory); openBlob then serves the staged copy. Anything not
// staged is streamed from the registry, verified as it flows.

import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, RegistryError } from '../../errors.js';
import { log } from '../../log.js';
import { digestHex } from '../digest.js';
import { INDEX_TYPES, MANIFEST_TYPES } from '../image-schema.js';
import type { ImageSource } from '../image-source.js';
import { REF_NAME_ANNOTATION, type Descriptor, type ImageIndex } from '../types.js';
import type { RegistryClient } from './client.js';
import { forEachLimit } from './parallel.js';
import { silentProgress, type Progress } from './progress.js';

/** Small blobs (manifests, configs) are kept in memory once read: resolveImage and the store both ask. */
const CACHE_LIMIT = 1024 * 1024;
const DOWNLOAD_ATTEMPTS = 3;
/** Staged files are local: big reads mean fewer buffers for the store's copy and the unpack. */
const STAGED_READ_CHUNK = 1024 * 1024;

const isManifestType = (t: string) => INDEX_TYPES.includes(t) || MANIFEST_TYPES.includes(t);

export class RegistrySource implements ImageSource {
  readonly description: string;
  private readonly cache = new Map<string, Buffer>();
  /** Blobs being or already staged: the promise resolves to the file once it is complete and verified. */
  private readonly staged = new Map<string, Promise<string>>();

  constructor(
    readonly client: RegistryClient,
    private readonly top: Descriptor,
    private readonly name: string,
    /** Private directory for staged blobs (removed by close()); none: stream everything. */
    private readonly stagingDir?: string,
    /** Where blobs we did not stage can be read locally (the store, for layers it already has). */
    private readonly local?: { source: ImageSource; digests: Set<string> },
  ) {
    this.description = client.describe();
  }

  /** The same registry view with another top entry (the platform manifest chosen from an index). */
  withTop(top: Descriptor): RegistrySource {
    return this.copy(top, this.local);
  }

  /** Reads blobs in `digests` from `source` instead of the registry. */
  withLocal(source: ImageSource, digests: Iterable<string>): RegistrySource {
    return this.copy(this.top, { source, digests: new Set(digests) });
  }

  private copy(top: Descriptor, local: RegistrySource['local']): RegistrySource {
    const s = new RegistrySource(this.client, top, this.name, this.stagingDir, local);
    for (const [k, v] of this.cache) s.cache.set(k, v);
    for (const [k, v] of this.staged) s.staged.set(k, v);
    return s;
  }

  /** Bytes already known (the manifest a tag resolved to, fetched before this source existed). */
  remember(desc: Descriptor, data: Buffer): void {
    this.cache.set(desc.digest, data);
  }

  async index(): Promise<ImageIndex> {
    return { schemaVersion: 2, manifests: [{ ...this.top, annotations: { ...this.top.annotations, [REF_NAME_ANNOTATION]: this.name } }] };
  }

  async readBlob(desc: Descriptor): Promise<Buffer> {
    const cached = this.cache.get(desc.digest);
    if (cached) return cached;
    const data = isManifestType(desc.mediaType) ? (await this.client.getManifest(desc.digest)).data : await this.client.readBlob(desc);
    if (data.length !== desc.size) throw new DigestMismatchError(`${this.description}: ${desc.digest} is ${data.length} bytes, its descriptor says ${desc.size}`);
    if (data.length <= CACHE_LIMIT) this.cache.set(desc.digest, data);
    return data;
  }

  /** A staged blob waits for its download to finish (so layers can be unpacked while later ones download). */
  async openBlob(desc: Descriptor): Promise<Readable> {
    const file = this.staged.get(desc.digest);
    if (file) return createReadStream(await file, { highWaterMark: STAGED_READ_CHUNK });
    if (this.cache.has(desc.digest) || isManifestType(desc.mediaType)) return Readable.from([await this.readBlob(desc)]);
    if (this.local?.digests.has(desc.digest)) return this.local.source.openBlob(desc);
    return this.client.openBlob(desc);
  }

  /**
   * Downloads `blobs` into the staging directory in the order given,
   * `concurrency` at a time, each verified while it streams and retried from
   * the start after a network failure (never after a digest mismatch). Any
   * failure fails the whole stage (and every openBlob waiting on a blob not
   * yet staged); nothing outside the staging directory is written.
   */
  stage(blobs: Descriptor[], concurrency: number, progress: Progress = silentProgress, label: (d: Descriptor) => string = () => 'layer'): Promise<void> {
    const dir = this.stagingDir;
    if (!dir) throw new Error('RegistrySource.stage needs a staging directory');
    const todo = blobs.filter((d, i) => blobs.findIndex((o) => o.digest === d.digest) === i && !this.staged.has(d.digest));
    const settle = new Map<string, { resolve: (file: string) => void; reject: (err: unknown) => void }>();
    for (const d of todo) {
      const p = new Promise<string>((resolve, reject) => settle.set(d.digest, { resolve, reject }));
      p.catch(() => undefined); // nobody may be waiting for this one
      this.staged.set(d.digest, p);
      progress.start(d.digest, label(d), d.size);
    }
    const run = forEachLimit(todo, concurrency, async (desc) => {
      const file = await this.download(desc, dir, progress);
      settle.get(desc.digest)?.resolve(file);
    });
    return run.catch((err: unknown) => {
      for (const s of settle.values()) s.reject(err);
      throw err;
    });
  }

  private async download(desc: Descriptor, dir: string, progress: Progress): Promise<string> {
    const file = join(dir, digestHex(desc.digest));
    const part = `${file}.part`;
    const cached = this.cache.get(desc.digest);
    if (cached) {
      // Read (and verified) already, e.g. the config while choosing the platform.
      await writeFile(part, cached, { mode: 0o600 });
      await rename(part, file);
      progress.finish(desc.digest, 'done');
      return file;
    }
    for (let attempt = 1; ; attempt++) {
      let moved = 0;
      try {
        const body = await this.client.openBlob(desc, (n) => {
          moved += n;
          progress.advance(desc.digest, n);
        });
        await pipeline(body, createWriteStream(part, { mode: 0o600 }));
        await rename(part, file);
        progress.finish(desc.digest, 'done');
        return file;
      } catch (err) {
        await rm(part, { force: true });
        progress.advance(desc.digest, -moved);
        const retryable = err instanceof RegistryError ? err.status === undefined || err.status >= 500 : !(err instanceof DigestMismatchError) && isNetworkError(err);
        if (!retryable || attempt >= DOWNLOAD_ATTEMPTS) {
          progress.finish(desc.digest, 'failed');
          throw err;
        }
        log().info({ digest: desc.digest, attempt, err: (err as Error).message }, 'blob download failed; retrying');
        await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
      }
    }
  }

  async close(): Promise<void> {
    if (this.stagingDir) await rm(this.stagingDir, { recursive: true, force: true });
    this.client.close();
  }
}

function isNetworkError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return ['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNREFUSED', 'ERR_STREAM_PREMATURE_CLOSE'].includes(e.code ?? '') || /aborted|socket hang up/i.test(e.message ?? '');
}
