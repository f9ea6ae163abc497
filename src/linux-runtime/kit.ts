// The runtime kit (see scripts/build-kit.sh) that Wasm containers get at
// /.tugboat; where it is comes from src/defaults.ts (kitDir).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';

export const KIT_MOUNT_POINT = '/.tugboat';

export interface Kit {
  /** Host directory holding the kit. */
  dir: string;
  /** Paths relative to the kit root. */
  loader: string;
  node: string;
  host: string;
  nodeVersion: string;
}

/** Reads the kit's manifest; `dir` is absolute (defaults.ts kitDir). A missing kit is a set-up problem, not bad input. */
export function loadKit(dir: string): Kit {
  const manifest = join(dir, 'kit.json');
  if (!existsSync(manifest)) {
    throw new ConfigError(`runtime kit not found at ${dir} (run "make build", or set TUGBOAT_KIT)`, { kind: 'FailedPrecondition' });
  }
  let parsed: Partial<Kit>;
  try {
    parsed = JSON.parse(readFileSync(manifest, 'utf8')) as Partial<Kit>;
  } catch (err) {
    throw new ConfigError(`runtime kit manifest ${manifest} is not valid JSON: ${(err as Error).message}`, { kind: 'FailedPrecondition' });
  }
  const { loader, node, host, nodeVersion } = parsed;
  if (!loader || !node || !host) throw new ConfigError(`runtime kit manifest ${manifest} lacks loader/node/host`, { kind: 'FailedPrecondition' });
  return { dir, loader, node, host, nodeVersion: nodeVersion ?? 'unknown' };
}

/** argv that starts the host inside the container, through the kit's own loader. */
export function hostArgv(kit: Kit): string[] {
  const inKit = (p: string) => `${KIT_MOUNT_POINT}/${p}`;
  return [
    inKit(kit.loader),
    '--library-path',
    inKit('lib'),
    inKit(kit.node),
    // Warnings (node:wasi is "experimental") would land on the guest's stderr.
    '--no-warnings',
    inKit(kit.host),
  ];
}
