// A client for one repository of an OCI distribution registry (HTTP API v2):
// manifests (OCI and Docker schema 2, images and indexes), blobs streamed
// through the same verifying stream every other image source uses, blob
// mounts across repositories, monolithic and chunked uploads. Each answer
// the registry can give is mapped to one clear error.

import { pipeline, Transform, type Readable } from 'node:stream';
import { DigestMismatchError, ImageError, NotFoundError, RegistryAuthError, RegistryError } from '../../errors.js';
import { log } from '../../log.js';
import { MAX_READ_BLOB } from '../blob-files.js';
import { digestHex, sha256Digest, verifyingStream } from '../digest.js';
import { INDEX_TYPES, MANIFEST_TYPES, parseJson } from '../image-schema.js';
import { MediaType, type Descriptor } from '../types.js';
import { parseChallenges, RegistryAuth, readSmallBody } from './auth.js';
import { lookupCredentials, type Credentials } from './credentials.js';
import { apiHost } from './reference.js';
import { discard, RegistryTransport, type HttpRequest, type HttpResponse, type TransportOptions } from './transport.js';

export interface ClientOptions extends TransportOptions {
  /** Credentials file (default: Docker's config.json). */
  authFile?: string;
  /** Use these instead of looking them up (login checks them before saving). */
  credentials?: Credentials;
  /** Ask for push access too. */
  push?: boolean;
}

/** What we accept, best first; registries convert or refuse the rest. */
export const MANIFEST_ACCEPT = [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest].join(', ');
/** distribution refuses manifests over 4 MiB; so do we. */
const MAX_MANIFEST = 4 * 1024 * 1024;
const MAX_ERROR_BODY = 64 * 1024;

export interface FetchedManifest {
  desc: Descriptor;
  data: Buffer;
}

/** The registry's own error code and message from a JSON error body, if any. */
async function registryMessage(res: HttpResponse): Promise<string | undefined> {
  try {
    const body = await readSmallBody(res, MAX_ERROR_BODY);
    const v = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const e = v.errors?.[0];
    if (!e) return undefined;
    const code = typeof e.code === 'string' ? e.code.toLowerCase().replace(/_/g, ' ') : '';
    const msg = typeof e.message === 'string' ? e.message : '';
    return code && msg && msg.toLowerCase() !== code ? `${code}: ${msg}` : code || msg || undefined;
  } catch {
    return undefined;
  }
}

function mediaTypeOf(res: HttpResponse, data: Buffer, what: string): string {
  const v = parseJson(data, what) as { mediaType?: unknown; manifests?: unknown; config?: unknown } | null;
  if (typeof v !== 'object' || v === null) throw new ImageError(`${what}: not a JSON object`);
  if (typeof v.mediaType === 'string' && v.mediaType) return v.mediaType;
  const ct = (res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  if (INDEX_TYPES.includes(ct) || MANIFEST_TYPES.includes(ct)) return ct;
  return 'manifests' in v ? MediaType.OciIndex : MediaType.OciManifest;
}

export class RegistryClient {
  readonly transport: RegistryTransport;
  private readonly auth: RegistryAuth;
  private readonly scopes: string[];

  constructor(
    readonly registry: string,
    readonly repository: string,
    opts: ClientOptions,
  ) {
    this.transport = new RegistryTransport(apiHost(registry), opts);
    this.auth = new RegistryAuth(this.transport, () => (opts.credentials ? Promise.resolve(opts.credentials) : lookupCredentials(registry, opts.authFile)));
    this.scopes = [`repository:${repository}:${opts.push ? 'pull,push' : 'pull'}`];
  }

  /** "registry/repository" plus ":tag" or "@digest". */
  describe(reference?: string): string {
    const base = `${this.registry}/${this.repository}`;
    if (reference === undefined) return base;
    return reference.startsWith('sha256:') ? `${base}@${reference}` : `${base}:${reference}`;
  }

  /** `ref` is a tag or digest already validated by parseRegistryRef/digestHex: nothing to escape. */
  private path(kind: 'manifests' | 'blobs', ref: string): string {
    return `/v2/${this.repository}/${kind}/${ref}`;
  }

  /** A request with the auth dance: on a 401, learn the challenge and try once more. */
  private async call(req: HttpRequest, scopes = this.scopes): Promise<HttpResponse> {
    for (let round = 0; ; round++) {
      const authorization = await this.auth.header(scopes);
      const res = await this.transport.request({ ...req, headers: { ...req.headers, ...(authorization ? { authorization } : {}) } });
      if (res.status === 401 && round === 0 && this.auth.learn(res, scopes)) {
        discard(res.body);
        continue;
      }
      return res;
    }
  }

  /** Turns an unexpected answer into one line naming what we asked for. */
  private async fail(res: HttpResponse, what: string, notFound?: string): Promise<never> {
    const detail = await registryMessage(res);
    const registry = this.registry;
    switch (res.status) {
      case 401: {
        // A token that is valid but does not cover the access: Docker says "denied" for this too.
        const h = res.headers['www-authenticate'];
        const ch = parseChallenges(Array.isArray(h) ? h.join(', ') : (h ?? '')).find((c) => c.params.error === 'insufficient_scope');
        if (ch) throw new RegistryAuthError(`${what}: denied: requested access to the resource is denied (insufficient scope${ch.params.scope ? ` for ${ch.params.scope}` : ''})`, 401);
        throw new RegistryAuthError(
          (await this.auth.hasCredentials())
            ? `${what}: unauthorized: ${registry} refused the credentials (wrong username or password? tugboat login ${registry})`
            : `${what}: unauthorized: authentication required (tugboat login ${registry})`,
          401,
        );
      }
      case 403:
        throw new RegistryAuthError(`${what}: denied: ${detail ?? 'access forbidden'}`, 403);
      case 404:
        if (notFound) throw new NotFoundError(`${what}: ${notFound}`);
        throw new RegistryError(`${what}: not found on ${registry}${detail ? ` (${detail})` : ''}`, 404);
      case 429:
        throw new RegistryError(`${what}: ${registry} answered 429 too many requests${detail ? ` (${detail})` : ''}; try again later`, 429);
      default:
        throw new RegistryError(`${what}: ${registry} answered ${res.status}${detail ? `: ${detail}` : ''}`, res.status);
    }
  }

  /** GET /v2/ with auth: checks that we can reach the registry and that it takes our credentials. */
  async ping(): Promise<void> {
    const res = await this.call({ method: 'GET', target: '/v2/', retry: true }, []);
    if (res.status !== 200) return this.fail(res, this.registry);
    discard(res.body);
  }

  /** A manifest or index by tag or digest, its digest checked against its bytes. */
  async getManifest(reference: string): Promise<FetchedManifest> {
    const what = this.describe(reference);
    const res = await this.call({ method: 'GET', target: this.path('manifests', reference), headers: { accept: MANIFEST_ACCEPT }, retry: true });
    if (res.status !== 200) return this.fail(res, what, 'manifest unknown (no such tag or digest in the registry)');
    const data = await readSmallBody(res, MAX_MANIFEST);
    const digest = sha256Digest(data);
    const expected = reference.startsWith('sha256:') ? reference : (res.headers['docker-content-digest'] as string | undefined);
    if (expected?.startsWith('sha256:') && expected !== digest) {
      throw new DigestMismatchError(`${what}: manifest digest mismatch, expected ${expected}, got ${digest}`);
    }
    return { desc: { mediaType: mediaTypeOf(res, data, what), digest, size: data.length }, data };
  }

  /** The descriptor a tag or digest currently resolves to, or undefined if there is none. */
  async headManifest(reference: string): Promise<Descriptor | undefined> {
    const res = await this.call({ method: 'HEAD', target: this.path('manifests', reference), headers: { accept: MANIFEST_ACCEPT }, retry: true });
    discard(res.body);
    if (res.status === 404) return undefined;
    if (res.status !== 200) return this.fail(res, this.describe(reference));
    const digest = res.headers['docker-content-digest'] as string | undefined;
    const size = Number(res.headers['content-length']);
    const mediaType = (res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    // Without a digest header a HEAD tells us nothing: fetch it.
    if (!digest || !Number.isSafeInteger(size)) return (await this.getManifest(reference)).desc;
    digestHex(digest);
    return { mediaType, digest, size };
  }

  /** A blob as a stream that errors (DigestMismatchError) unless every byte matches `desc`. */
  async openBlob(desc: Descriptor, onBytes?: (n: number) => void): Promise<Readable> {
    const what = `${this.describe()}: blob ${desc.digest}`;
    digestHex(desc.digest);
    const res = await this.call({ method: 'GET', target: this.path('blobs', desc.digest), retry: true });
    if (res.status !== 200) return this.fail(res, what);
    const declared = Number(res.headers['content-length']);
    if (Number.isSafeInteger(declared) && declared !== desc.size) {
      res.body.destroy();
      throw new DigestMismatchError(`${what}: size mismatch, expected ${desc.size} bytes, the registry sends ${declared}`);
    }
    const out = verifyingStream(desc, what, onBytes);
    pipeline(res.body, out, () => undefined);
    return out;
  }

  async readBlob(desc: Descriptor): Promise<Buffer> {
    if (desc.size > MAX_READ_BLOB) throw new ImageError(`${this.describe()}: blob ${desc.digest} is ${desc.size} bytes, too large to read into memory`);
    const chunks: Buffer[] = [];
    for await (const c of await this.openBlob(desc)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    const res = await this.call({ method: 'HEAD', target: this.path('blobs', desc.digest), retry: true });
    discard(res.body);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    return this.fail(res, `${this.describe()}: blob ${desc.digest}`);
  }

  private uploadTarget(res: HttpResponse, what: string): URL {
    const location = res.headers.location;
    if (!location) throw new RegistryError(`${what}: ${this.registry} gave no upload location`);
    return new URL(location, res.url);
  }

  /**
   * Uploads a blob unless the repository has it: first a cross-repository
   * mount from `mountFrom` (same registry) when given, then one monolithic
   * PUT, or PATCHes of `chunkSize` bytes followed by a closing PUT.
   * Returns how the blob got there.
   */
  async pushBlob(
    desc: Descriptor,
    open: () => Promise<Readable>,
    opts: { mountFrom?: string; chunkSize?: number; onBytes?: (n: number) => void } = {},
  ): Promise<'exists' | 'mounted' | 'uploaded'> {
    const what = `${this.describe()}: blob ${desc.digest}`;
    if (await this.hasBlob(desc)) return 'exists';
    const start = `/v2/${this.repository}/blobs/uploads/`;
    let res: HttpResponse;
    if (opts.mountFrom && opts.mountFrom !== this.repository) {
      const q = new URLSearchParams({ mount: desc.digest, from: opts.mountFrom });
      res = await this.call({ method: 'POST', target: `${start}?${q}`, headers: { 'content-length': '0' }, retry: true }, [...this.scopes, `repository:${opts.mountFrom}:pull`]);
      if (res.status === 201) {
        discard(res.body);
        log().debug({ digest: desc.digest, from: opts.mountFrom }, 'blob mounted');
        return 'mounted';
      }
    } else {
      res = await this.call({ method: 'POST', target: start, headers: { 'content-length': '0' }, retry: true });
    }
    if (res.status !== 202) return this.fail(res, what);
    discard(res.body);
    let location = this.uploadTarget(res, what);

    if (opts.chunkSize && opts.chunkSize > 0 && desc.size > 0) {
      let offset = 0;
      const send = async (chunk: Buffer): Promise<void> => {
        const r = await this.call({
          method: 'PATCH',
          target: location.href,
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(chunk.length),
            'content-range': `${offset}-${offset + chunk.length - 1}`,
          },
          body: chunk,
        });
        if (r.status !== 202) return this.fail(r, `${what} (chunk at ${offset})`);
        discard(r.body);
        location = this.uploadTarget(r, what);
        offset += chunk.length;
        opts.onBytes?.(chunk.length);
      };
      let pending: Buffer[] = [];
      let pendingLen = 0;
      for await (const c of await open()) {
        pending.push(c as Buffer);
        pendingLen += (c as Buffer).length;
        while (pendingLen >= opts.chunkSize) {
          const all = Buffer.concat(pending);
          await send(all.subarray(0, opts.chunkSize));
          pending = [all.subarray(opts.chunkSize)];
          pendingLen = all.length - opts.chunkSize;
        }
      }
      if (pendingLen > 0) await send(Buffer.concat(pending));
      location.searchParams.set('digest', desc.digest);
      res = await this.call({ method: 'PUT', target: location.href, headers: { 'content-length': '0' }, retry: true });
    } else {
      location.searchParams.set('digest', desc.digest);
      res = await this.call({
        method: 'PUT',
        target: location.href,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
        retry: true,
        body: async () => {
          const s = await open();
          const onBytes = opts.onBytes;
          if (!onBytes) return s;
          // Counted on the way through (a 'data' listener would start the flow before the request pipes it).
          const counted = new Transform({
            transform(chunk: Buffer, _enc, cb) {
              onBytes(chunk.length);
              cb(null, chunk);
            },
          });
          pipeline(s, counted, () => undefined);
          return counted;
        },
      });
    }
    if (res.status !== 201) {
      const detail = await registryMessage(res);
      if (res.status === 400 && /digest/i.test(detail ?? '')) throw new DigestMismatchError(`${what}: the registry refused the upload: ${detail}`);
      return this.fail(res, what);
    }
    discard(res.body);
    return 'uploaded';
  }

  /** PUT of a manifest or index under a tag or its digest; returns the digest the registry reports. */
  async putManifest(reference: string, data: Buffer, mediaType: string): Promise<string> {
    const what = this.describe(reference);
    const res = await this.call({
      method: 'PUT',
      target: this.path('manifests', reference),
      headers: { 'content-type': mediaType, 'content-length': String(data.length) },
      body: data,
      retry: true,
    });
    if (res.status !== 201) return this.fail(res, what);
    discard(res.body);
    const digest = sha256Digest(data);
    const reported = res.headers['docker-content-digest'];
    if (typeof reported === 'string' && reported.startsWith('sha256:') && reported !== digest) {
      throw new DigestMismatchError(`${what}: the registry stored digest ${reported}, we sent ${digest}`);
    }
    return digest;
  }

  close(): void {
    this.transport.close();
  }
}
