// HTTP to one registry on Node's own http/https (keep-alive agents), with
// what registries need around it: TLS settings per registry (a private CA
// from --cert-dir or Docker's certs.d layout, client certificates,
// --tls-verify=false), plain-HTTP fallback where that is allowed, redirects
// that never carry our Authorization to another origin, and retries with
// backoff for network errors, 5xx and 429.
//
// Node's global fetch cannot take a CA per request (its undici Agent is not
// exposed without the npm package), while node:https takes `ca` per agent and
// hands back a Node Readable that pipes straight into the store's verifying
// streams.

import { readdir, readFile } from 'node:fs/promises';
import type { Agent, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { RegistryError, RegistryTlsError } from '../../errors.js';
import { log } from '../../log.js';
import { isLoopbackHost } from './reference.js';

export interface TransportOptions {
  /** false: accept any certificate, and plain HTTP (podman's --tls-verify=false). */
  tlsVerify: boolean;
  /** A directory with *.crt (CAs), *.cert + *.key (client), or certs.d-style <host:port>/ subdirectories. */
  certDir?: string;
  /** Attempts after the first for retryable failures (default 3). */
  retries?: number;
  /** First backoff delay; doubles each attempt (default 250 ms). */
  backoffMs?: number;
}

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path on the registry ("/v2/…") or an absolute URL (upload locations, token realms). */
  target: string;
  headers?: Record<string, string>;
  /** A buffer, or a factory so that a retried request can send the body again. */
  body?: Buffer | (() => Readable | Promise<Readable>);
  /** Retry network errors and 5xx/429: only for requests safe to repeat (never a chunk PATCH). */
  retry?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that answered (after redirects). */
  url: URL;
  body: IncomingMessage;
}

// Through require, not import: an ESM import of node:http copies every export,
// which runs its lazy getters and loads Node's whole undici (measured: 130-350 ms
// against ~80 ms for require on this machine).
const require = createRequire(import.meta.url);
const http = require('node:http') as typeof import('node:http');
const https = require('node:https') as typeof import('node:https');

const DEFAULT_CERT_DIRS = ['/etc/docker/certs.d', '/etc/containers/certs.d'];
const IDLE_TIMEOUT_MS = 60_000;
const MAX_REDIRECTS = 5;
const MAX_RETRY_AFTER_MS = 10_000;
const RETRY_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_SOCKET']);

interface TlsFiles {
  ca?: string[];
  cert?: Buffer;
  key?: Buffer;
}

async function filesIn(dir: string): Promise<string[] | undefined> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return undefined;
  }
}

/** Docker's certs.d rules: *.crt are CAs; client.cert needs client.key beside it. */
async function loadTlsFiles(registry: string, certDir: string | undefined): Promise<TlsFiles> {
  const candidates = certDir ? [join(certDir, registry), certDir] : DEFAULT_CERT_DIRS.map((d) => join(d, registry));
  for (const dir of candidates) {
    const names = await filesIn(dir);
    if (!names) continue;
    const out: TlsFiles = {};
    const cas = await Promise.all(names.filter((n) => n.endsWith('.crt')).map((n) => readFile(join(dir, n), 'utf8')));
    if (cas.length) out.ca = [...rootCertificates, ...cas];
    const cert = names.find((n) => n.endsWith('.cert'));
    if (cert) {
      const key = cert.replace(/\.cert$/, '.key');
      if (!names.includes(key)) throw new RegistryTlsError(`${join(dir, cert)} has no matching ${key}`);
      out.cert = await readFile(join(dir, cert));
      out.key = await readFile(join(dir, key));
    }
    log().debug({ registry, dir, cas: cas.length, clientCert: cert !== undefined }, 'registry TLS files');
    return out;
    // Only the first directory that exists counts, as with Docker.
  }
  return {};
}

const TLS_HINTS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate is signed by an unknown authority (self-signed CA)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is signed by an unknown authority',
  UNABLE_TO_GET_ISSUER_CERT: 'its certificate is signed by an unknown authority',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is signed by an unknown authority',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate is not valid for this host name',
};

/** The server answered TLS with plain HTTP (or nothing TLS-like). */
function isNotTls(err: NodeJS.ErrnoException): boolean {
  return /wrong.version.number|packet.length.too.long|http.request|unknown.protocol|record.layer.failure/i.test(`${err.code ?? ''} ${err.message}`);
}

function tlsError(registry: string, err: NodeJS.ErrnoException): RegistryTlsError | undefined {
  const hint = err.code ? TLS_HINTS[err.code] : undefined;
  if (hint) {
    return new RegistryTlsError(
      `TLS with ${registry} failed: ${hint} (${err.code}); give its CA with --cert-dir DIR (DIR/ca.crt), or use --tls-verify=false`,
      undefined,
      { cause: err },
    );
  }
  if (isNotTls(err)) return new RegistryTlsError(`TLS with ${registry} failed: the server does not speak TLS; use --tls-verify=false for a plain-HTTP registry`, undefined, { cause: err });
  if (/^ERR_SSL_|^ERR_TLS_/.test(err.code ?? '')) return new RegistryTlsError(`TLS with ${registry} failed: ${err.message}`, undefined, { cause: err });
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function retryAfterMs(res: IncomingMessage): number | undefined {
  const v = res.headers['retry-after'];
  if (v === undefined) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.min(Math.max(secs, 0) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(at - Date.now(), 0), MAX_RETRY_AFTER_MS);
}

/** Consumes a response we will not read, so its keep-alive socket can be reused. */
export function discard(res: IncomingMessage): void {
  res.resume();
  res.on('error', () => undefined);
}

export class RegistryTransport {
  private scheme: 'https' | 'http' = 'https';
  private tls: Promise<TlsFiles> | undefined;
  private readonly agents = new Map<string, Agent>();
  private readonly allowHttp: boolean;

  constructor(
    readonly registry: string,
    private readonly opts: TransportOptions,
  ) {
    // Docker's rule for loopback registries, podman's for --tls-verify=false.
    this.allowHttp = !opts.tlsVerify || isLoopbackHost(registry);
  }

  /** The registry's base URL as currently known ("https://host:port"). */
  get origin(): string {
    return `${this.scheme}://${this.registry}`;
  }

  private async agentFor(url: URL): Promise<Agent> {
    const own = url.host === this.registry;
    const key = `${url.protocol}//${own ? 'registry' : url.host}`;
    let agent = this.agents.get(key);
    if (!agent) {
      const common = { keepAlive: true, maxSockets: 16 };
      if (url.protocol === 'http:') agent = new http.Agent(common);
      else if (own) {
        this.tls ??= loadTlsFiles(this.registry, this.opts.certDir);
        agent = new https.Agent({ ...common, ...(await this.tls), rejectUnauthorized: this.opts.tlsVerify });
      } else agent = new https.Agent(common);
      this.agents.set(key, agent);
    }
    return agent;
  }

  private async once(method: HttpRequest['method'], url: URL, headers: Record<string, string>, body: HttpRequest['body']): Promise<IncomingMessage> {
    const agent = await this.agentFor(url);
    const mod = url.protocol === 'http:' ? http : https;
    const stream = typeof body === 'function' ? await body() : undefined;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = mod.request(url, { method, headers, agent, timeout: IDLE_TIMEOUT_MS });
      req.once('response', resolve);
      req.once('error', reject);
      req.once('timeout', () => req.destroy(Object.assign(new Error(`no answer from ${url.host} for ${IDLE_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
      if (stream) pipeline(stream, req, (err) => err && req.destroy(err));
      else req.end(body);
    });
  }

  /** One request, following redirects; network errors are thrown as they come. */
  private async follow(req: HttpRequest, url: URL): Promise<HttpResponse> {
    let headers = { ...req.headers };
    for (let hops = 0; ; hops++) {
      const res = await this.once(req.method, url, headers, req.body);
      const location = res.headers.location;
      const redirect = [301, 302, 303, 307, 308].includes(res.statusCode ?? 0) && location !== undefined && (req.method === 'GET' || req.method === 'HEAD');
      if (!redirect) return { status: res.statusCode ?? 0, headers: res.headers, url, body: res };
      discard(res);
      if (hops >= MAX_REDIRECTS) throw new RegistryError(`${this.registry}: too many redirects (last to ${location})`);
      const next = new URL(location, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new RegistryError(`${this.registry}: redirect to unsupported URL ${next.protocol}`);
      // Blob storage (S3, a CDN) gets a signed URL, never our registry token.
      if (next.origin !== url.origin) {
        const { authorization: _drop, Authorization: _drop2, ...rest } = headers;
        headers = rest;
      }
      url = next;
    }
  }

  /**
   * Sends a request, with the plain-HTTP fallback and retries. The response
   * is returned whatever its status (the caller maps statuses to errors),
   * except that 5xx/429 answers are retried first when `retry` is set.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const retries = req.retry === true ? (this.opts.retries ?? 3) : 0;
    const backoff = this.opts.backoffMs ?? 250;
    for (let attempt = 0; ; attempt++) {
      const url = new URL(req.target, this.origin);
      let res: HttpResponse;
      try {
        res = await this.follow(req, url);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err instanceof RegistryError) throw err;
        if (url.protocol === 'https:' && url.host === this.registry && this.allowHttp && isNotTls(err)) {
          log().info({ registry: this.registry }, 'registry does not speak TLS; using plain HTTP');
          this.scheme = 'http';
          attempt--;
          continue;
        }
        const tls = tlsError(url.host, err);
        if (tls) throw tls;
        const retryable = RETRY_CODES.has(err.code ?? '') || /socket hang up/.test(err.message);
        if (!retryable || attempt >= retries) {
          throw new RegistryError(`cannot reach ${url.host}: ${err.message}${attempt ? ` (after ${attempt + 1} attempts)` : ''}`, undefined, { cause: err });
        }
        log().info({ registry: this.registry, err: err.message, attempt }, 'registry request failed; retrying');
        await sleep(backoff * 2 ** attempt);
        continue;
      }
      if ((res.status >= 500 || res.status === 429) && attempt < retries) {
        const wait = retryAfterMs(res.body) ?? backoff * 2 ** attempt;
        discard(res.body);
        log().info({ registry: this.registry, status: res.status, attempt, wait }, 'registry answered an error; retrying');
        await sleep(wait);
        continue;
      }
      return res;
    }
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}
