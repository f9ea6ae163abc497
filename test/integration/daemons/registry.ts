// A private OCI distribution registry (Debian's docker-registry 2.8) on
// 127.0.0.1, storage under /tmp/tugboat-d-XXXXXX: plain HTTP without auth by
// default; optionally TLS (caller's certificate), htpasswd (Basic) auth, or
// token (Bearer) auth against a caller's token server.
// Docker treats 127.0.0.0/8 registries as insecure by default, so
// `docker push 127.0.0.1:<port>/x` works without daemon config.
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { cleanEnv, Daemon, makeHarnessDir, registerExitHook, teardownDirSync, waitReady } from './process.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface RegistryHandle {
  /** `127.0.0.1:<port>`, the reference prefix for docker/ctr */
  host: string;
  /** `http://127.0.0.1:<port>` (https with TLS) */
  url: string;
  port: number;
  root: string;
  stop(): Promise<void>;
  logs(): string;
  readyMs: number;
}

export interface RegistryOptions {
  port?: number;
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { certificate: string; key: string };
  /** Basic auth from an htpasswd file (bcrypt entries: `htpasswd -Bbn user pass`). */
  htpasswd?: string;
  /** Bearer auth: tokens from `realm`, signed by a key whose certificate is in `rootCertBundle`. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
}

function authConfig(o: RegistryOptions): string[] {
  if (o.htpasswd) return ['auth:', '  htpasswd:', '    realm: tugboat-test', `    path: ${o.htpasswd}`];
  if (o.token) {
    return ['auth:', '  token:', `    realm: ${o.token.realm}`, `    service: ${o.token.service}`, `    issuer: ${o.token.issuer}`, `    rootcertbundle: ${o.token.rootCertBundle}`];
  }
  return [];
}

/** Any HTTP answer from /v2/ (200, or 401 with auth on) means the registry is up. */
function probe(url: string, tls: boolean): Promise<boolean> {
  if (!tls) return fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status === 200 || r.status === 401);
  return new Promise((resolve) => {
    const req = httpsRequest(`${url}/v2/`, { rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 || res.statusCode === 401);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<RegistryHandle> {
  const dir = makeHarnessDir();
  let daemon: Daemon | undefined;
  const unregister = registerExitHook(() => {
    daemon?.stopSync(5_000);
    teardownDirSync(dir);
  });
  try {
    const base = join(dir, 'registry');
    const root = join(base, 'data');
    mkdirSync(root, { recursive: true });
    // The port is picked before the registry binds it: retry if someone took it in between.
    for (let attempt = 0; ; attempt++) {
      const port = opts.port ?? (await freePort());
      const configPath = join(base, 'config.yml');
      writeFileSync(
        configPath,
        [
          'version: 0.1',
          'log:',
          '  level: info',
          'storage:',
          '  filesystem:',
          `    rootdirectory: ${root}`,
          '  delete:',
          '    enabled: true',
          '  maintenance:',
          '    uploadpurging:',
          '      enabled: false',
          ...authConfig(opts),
          'http:',
          `  addr: 127.0.0.1:${port}`,
          ...(opts.tls ? ['  tls:', `    certificate: ${opts.tls.certificate}`, `    key: ${opts.tls.key}`] : []),
          '',
        ].join('\n'),
      );
      const d = new Daemon({ name: 'docker-registry', cmd: REGISTRY_BIN, args: ['serve', configPath], env: cleanEnv(), logPath: join(base, `registry-${attempt}.log`), cwd: base });
      daemon = d;
      const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
      let readyMs: number;
      try {
        readyMs = await waitReady(d, `${url}/v2/`, () => probe(url, opts.tls !== undefined));
      } catch (e) {
        d.stopSync(2_000);
        if (attempt < 3 && opts.port === undefined && /address already in use/.test(d.logs())) continue;
        throw e;
      }
      let stopping: Promise<void> | undefined;
      return {
        host: `127.0.0.1:${port}`,
        url,
        port,
        root,
        readyMs,
        logs: () => d.logs(),
        stop() {
          stopping ??= (async () => {
            try {
              await d.stop(5_000);
            } finally {
              const problems = teardownDirSync(dir);
              unregister();
              if (problems.length) throw new Error(`registry teardown of ${dir}: ${problems.join('; ')}`);
            }
          })();
          return stopping;
        },
      };
    }
  } catch (e) {
    daemon?.stopSync(2_000);
    unregister();
    teardownDirSync(dir);
    throw e;
  }
}
