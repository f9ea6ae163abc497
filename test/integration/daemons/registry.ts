// A private OCI distribution registry (Debian's docker-registry 2.8) on
// 127.0.0.1, plain HTTP, no auth, storage under /tmp/tugboat-d-XXXXXX.
// Docker treats 127.0.0.0/8 registries as insecure by default, so
// `docker push 127.0.0.1:<port>/x` works without daemon config.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { cleanEnv, Daemon, makeHarnessDir, registerExitHook, teardownDirSync, waitReady } from './process.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface RegistryHandle {
  /** `127.0.0.1:<port>`, the reference prefix for docker/ctr */
  host: string;
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  root: string;
  stop(): Promise<void>;
  logs(): string;
  readyMs: number;
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

export async function startRegistry(opts: { port?: number } = {}): Promise<RegistryHandle> {
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
          'http:',
          `  addr: 127.0.0.1:${port}`,
          '',
        ].join('\n'),
      );
      const d = new Daemon({ name: 'docker-registry', cmd: REGISTRY_BIN, args: ['serve', configPath], env: cleanEnv(), logPath: join(base, `registry-${attempt}.log`), cwd: base });
      daemon = d;
      const url = `http://127.0.0.1:${port}`;
      let readyMs: number;
      try {
        readyMs = await waitReady(d, `${url}/v2/`, async () => (await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) })).status === 200);
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
