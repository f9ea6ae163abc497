// Locates the runtime kit (see scripts/build-kit.sh) that Wasm containers get
// at /.tugboat.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';

export const KIT_MOUNT_POINT = '/.tugboat';

export interface Kit {
  /** Host directory holding the kit. */
  dir: string;
  /** Paths relative to the kit root. */
  loader: string;
  node: string;
  host: string;
  /** tini (Debian's tini-static): PID 1 of a container whose init is the host. */
  init?: string;
  nodeVersion: string;
}

/**
 * TUGBOAT_KIT, else build/kit of the checkout this code runs from: the code is
 * either the bundle (dist/tugboat.mjs) or a module (dist/linux-runtime/kit.js),
 * so look upwards for it.
 */
export function defaultKitDir(): string {
  const fromEnv = process.env.TUGBOAT_KIT;
  if (fromEnv) return resolve(fromEnv);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 3; i++) {
    const candidate = join(dir, 'build', 'kit');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', 'build', 'kit');
}

export function loadKit(dir = defaultKitDir()): Kit {
  const manifest = join(dir, 'kit.json');
  if (!existsSync(manifest)) {
    throw new ConfigError(`runtime kit not found at ${dir} (run "make build", or set TUGBOAT_KIT)`);
  }
  let parsed: Partial<Kit>;
  try {
    parsed = JSON.parse(readFileSync(manifest, 'utf8')) as Partial<Kit>;
  } catch (err) {
    throw new ConfigError(`runtime kit manifest ${manifest} is not valid JSON: ${(err as Error).message}`);
  }
  const { loader, node, host, init, nodeVersion } = parsed;
  if (!loader || !node || !host) throw new ConfigError(`runtime kit manifest ${manifest} lacks loader/node/host`);
  return { dir, loader, node, host, ...(init ? { init } : {}), nodeVersion: nodeVersion ?? 'unknown' };
}

/**
 * argv that starts the host inside the container, through the kit's own
 * loader. As a container's init (`asInit`), tini is PID 1 in front of it: a
 * signal Node has no handler for then ends Node by its default action and
 * tini reports exactly 128+N (PID 1 itself would ignore it). A process exec'd
 * into a running container is not PID 1 and needs no tini.
 */
export function hostArgv(kit: Kit, asInit = true): string[] {
  const inKit = (p: string) => `${KIT_MOUNT_POINT}/${p}`;
  return [
    ...(asInit && kit.init ? [inKit(kit.init), '--'] : []),
    inKit(kit.loader),
    '--library-path',
    inKit('lib'),
    inKit(kit.node),
    // Warnings (node:wasi is "experimental") would land on the guest's stderr.
    '--no-warnings',
    // SIGUSR1 must never open an inspector in a container; the host unblocks it so it ends the process.
    '--disable-sigusr1',
    inKit(kit.host),
  ];
}
