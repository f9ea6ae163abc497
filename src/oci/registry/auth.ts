// Registry authentication as the distribution spec and Docker do it: the
// registry's 401 carries a WWW-Authenticate challenge; "Basic" means send
// the user's credentials, "Bearer realm=…,service=…,scope=…" means ask the
// realm (a token server) for a token for the scopes we need — anonymously,
// with Basic credentials, or with an OAuth2 refresh token — and send that.

import { RegistryAuthError, RegistryError } from '../../errors.js';
import { log } from '../../log.js';
import type { Credentials } from './credentials.js';
import { discard, type HttpResponse, type RegistryTransport } from './transport.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;
const MAX_TOKEN_RESPONSE = 1024 * 1024;

/**
 * Parses a WWW-Authenticate value (RFC 7235): one or more challenges, each a
 * scheme followed by comma-separated auth-params with token or quoted values.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let s = header;
  let current: Challenge | undefined;
  const skip = (re: RegExp) => (s = s.replace(re, ''));
  while ((skip(/^[\s,]+/), s.length)) {
    const name = TOKEN.exec(s)?.[0];
    if (!name) break;
    s = s.slice(name.length);
    const eq = /^\s*=\s*/.exec(s);
    if (!eq || !current) {
      // A token not followed by '=' starts a new challenge.
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
      skip(/^\s+/);
      continue;
    }
    s = s.slice(eq[0].length);
    let value: string;
    if (s.startsWith('"')) {
      const m = /^"((?:[^"\\]|\\.)*)"/.exec(s);
      if (!m) break;
      value = (m[1] as string).replace(/\\(.)/g, '$1');
      s = s.slice(m[0].length);
    } else {
      value = TOKEN.exec(s)?.[0] ?? '';
      s = s.slice(value.length);
    }
    current.params[name.toLowerCase()] = value;
  }
  return out;
}

export async function readSmallBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of res.body) {
    n += (chunk as Buffer).length;
    if (n > limit) {
      res.body.destroy();
      throw new RegistryError(`${res.url.host}: response to ${res.url.pathname} is larger than ${limit} bytes`, res.status);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function basic(c: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/**
 * Per-registry auth state: the last challenge and the tokens obtained for
 * each set of scopes, so only the first request of a kind pays the round trip.
 */
export class RegistryAuth {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, Promise<string>>();
  private creds: Promise<Credentials | undefined> | undefined;

  constructor(
    private readonly transport: RegistryTransport,
    private readonly lookup: () => Promise<Credentials | undefined>,
  ) {}

  private credentials(): Promise<Credentials | undefined> {
    this.creds ??= this.lookup();
    return this.creds;
  }

  /** Whether we sent (or would send) credentials, for telling "log in" from "wrong password". */
  async hasCredentials(): Promise<boolean> {
    return (await this.credentials()) !== undefined;
  }

  /** The Authorization header for a request needing `scopes`, as far as the last challenge tells. */
  async header(scopes: string[]): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const c = await this.credentials();
      return c && 'username' in c ? basic(c) : undefined;
    }
    if (ch.scheme === 'bearer') {
      const key = [...new Set(scopes)].sort().join(' ');
      let token = this.tokens.get(key);
      if (!token) {
        token = this.fetchToken(ch, [...new Set(scopes)].sort());
        this.tokens.set(key, token);
        token.catch(() => this.tokens.delete(key));
      }
      return `Bearer ${await token}`;
    }
    return undefined;
  }

  /**
   * Takes the challenge of a 401 and forgets any token we had for `scopes`
   * (it may have expired). False when the answer carries no challenge we
   * know, so retrying cannot help.
   */
  learn(res: HttpResponse, scopes: string[]): boolean {
    const h = res.headers['www-authenticate'];
    const challenges = parseChallenges(Array.isArray(h) ? h.join(', ') : (h ?? ''));
    const next = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (!next) return false;
    this.challenge = next;
    this.tokens.delete([...new Set(scopes)].sort().join(' '));
    return true;
  }

  private async fetchToken(ch: Challenge, scopes: string[]): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError(`${this.transport.registry}: Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(`${this.transport.registry}: Bearer realm ${JSON.stringify(realm)} is not a URL`);
    }
    const creds = await this.credentials();
    const service = ch.params.service;
    let res: HttpResponse;
    if (creds && 'identityToken' in creds) {
      // OAuth2 refresh-token grant, as Docker uses for identity tokens.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'tugboat' });
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.transport.request({
        method: 'POST',
        target: url.href,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
        retry: true,
      });
    } else {
      if (service) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (creds) headers.authorization = basic(creds);
      res = await this.transport.request({ method: 'GET', target: url.href, headers, retry: true });
    }
    if (res.status === 401 || res.status === 403) {
      discard(res.body);
      throw new RegistryAuthError(
        creds
          ? `${this.transport.registry}: unauthorized: the token server refused the credentials on file (wrong username or password?)`
          : `${this.transport.registry}: unauthorized: authentication required (tugboat login ${this.transport.registry})`,
        res.status,
      );
    }
    if (res.status !== 200) {
      discard(res.body);
      throw new RegistryError(`${this.transport.registry}: token server ${url.host} answered ${res.status}`, res.status);
    }
    const body = await readSmallBody(res, MAX_TOKEN_RESPONSE);
    let v: { token?: unknown; access_token?: unknown };
    try {
      v = JSON.parse(body.toString('utf8')) as typeof v;
    } catch {
      throw new RegistryError(`${this.transport.registry}: token server ${url.host} sent no JSON`);
    }
    const token = typeof v.token === 'string' && v.token ? v.token : typeof v.access_token === 'string' ? v.access_token : '';
    if (!token || /[\s\0]/.test(token)) throw new RegistryError(`${this.transport.registry}: token server ${url.host} sent no token`);
    log().debug({ registry: this.transport.registry, scopes }, 'registry token obtained');
    return token;
  }
}
