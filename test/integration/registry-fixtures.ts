// What the registry tests put around the real registry: a test CA and
// server certificate (openssl CLI), an htpasswd file (apache2-utils), a
// token server for the Bearer flow (JWTs signed with a test key, which the
// registry checks against the key's certificate), and an HTTP proxy in front
// of the registry that can corrupt, stall or refuse answers.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface TestCerts {
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** A CA and a certificate for 127.0.0.1/localhost signed by it, valid for two days. */
export function makeCerts(dir: string): TestCerts {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Tugboat Test CA'], dir);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], dir);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf'], dir);
  return { caCert: join(dir, 'ca.crt'), serverCert: join(dir, 'server.crt'), serverKey: join(dir, 'server.key') };
}

/** An htpasswd file with bcrypt entries, the only kind the registry takes. */
export function makeHtpasswd(path: string, users: Record<string, string>): string {
  const lines = Object.entries(users).map(([u, p]) => execFileSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' }).trim());
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** Certificate of the signing key: the registry's rootcertbundle. */
  certBundle: string;
  /** Scopes asked for, in order, for assertions. */
  requests: { user: string | undefined; scopes: string[] }[];
  stop(): Promise<void>;
}

/**
 * A distribution token server: Basic credentials checked against `users`;
 * `grant` decides which actions a user gets on a repository (anonymous
 * users are refused with 401 when `users` is non-empty and no grant).
 */
export async function startTokenServer(dir: string, users: Record<string, string>, grant: (user: string | undefined, repo: string, actions: string[]) => string[]): Promise<TokenServer> {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'token.key', '-out', 'token.crt', '-days', '2', '-subj', '/CN=Tugboat Test Token Issuer'], dir);
  const key = createPrivateKey(readFileSync(join(dir, 'token.key')));
  const certDer = Buffer.from(
    readFileSync(join(dir, 'token.crt'), 'utf8')
      .replace(/-----[^-]+-----/g, '')
      .replace(/\s+/g, ''),
    'base64',
  );
  const service = 'tugboat-test-registry';
  const issuer = 'tugboat-test-issuer';
  const requests: TokenServer['requests'] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization;
    let user: string | undefined;
    if (auth?.startsWith('Basic ')) {
      const [u, ...rest] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      if (users[u ?? ''] === undefined || users[u ?? ''] !== rest.join(':')) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
        return;
      }
      user = u;
    }
    const scopes = url.searchParams.getAll('scope');
    requests.push({ user, scopes });
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = s.split(':');
      if (type !== 'repository' || !name) return [];
      const granted = grant(user, name, (actions ?? '').split(','));
      return granted.length ? [{ type, name, actions: granted }] : [];
    });
    if (user === undefined && Object.keys(users).length && access.length === 0) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"authentication required"}');
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] }));
    const claims = b64url(JSON.stringify({ iss: issuer, sub: user ?? '', aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access }));
    const token = `${header}.${claims}.${b64url(sign('sha256', Buffer.from(`${header}.${claims}`), key))}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
  });
  const port = await listen(server);
  return { realm: `http://127.0.0.1:${port}/token`, service, issuer, certBundle: join(dir, 'token.crt'), requests, stop: () => close(server) };
}

/** What the proxy does with one request: pass it on, or something nasty. */
export type ProxyAction =
  | 'pass'
  /** flip one byte in the middle of the body */
  | 'corrupt'
  /** for bodies over 1 MiB: send about half, then hang (until the client goes away); smaller ones pass */
  | 'stall'
  | { status: number; headers?: Record<string, string> };

export interface Proxy {
  url: string;
  host: string;
  /** Requests seen, "METHOD path". */
  seen: string[];
  /** Resolves when a stalled response has sent its first half. */
  stalled: Promise<void>;
  stop(): Promise<void>;
}

/** An HTTP proxy to `target` (a registry URL) whose answers `decide` can spoil. */
export async function startProxy(target: string, decide: (req: IncomingMessage) => ProxyAction): Promise<Proxy> {
  const seen: string[] = [];
  let onStall: () => void = () => undefined;
  const stalled = new Promise<void>((r) => (onStall = r));
  const upstream = new URL(target);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`);
    const action = decide(req);
    if (typeof action === 'object') {
      res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers }).end(JSON.stringify({ errors: [{ code: action.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'proxy says no' }] }));
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (ur) => {
      const location = ur.headers.location?.replace(upstream.origin, `http://${req.headers.host}`);
      res.writeHead(ur.statusCode ?? 502, { ...ur.headers, ...(location ? { location } : {}) });
      const small = Number(ur.headers['content-length'] ?? 0) <= 1024 * 1024;
      if (action === 'pass' || req.method === 'HEAD' || (action === 'stall' && small)) {
        ur.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      ur.on('data', (c: Buffer) => chunks.push(c));
      ur.on('end', () => {
        const body = Buffer.concat(chunks);
        if (action === 'corrupt') {
          const i = Math.floor(body.length / 2);
          body[i] = (body[i] ?? 0) ^ 0xff;
          res.end(body);
        } else {
          res.write(body.subarray(0, Math.floor(body.length / 2)), () => onStall());
        }
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, seen, stalled, stop: () => close(server) };
}
