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
  /** tini (Debian's tini-static): PID 1 of a container whose init is the host. */
  init?: string;
  /** The pod host (one per shim group at `pod` isolation). */
  podHost?: string;
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
  const { loader, node, host, init, podHost, nodeVersion } = parsed;
  if (!loader || !node || !host) throw new ConfigError(`runtime kit manifest ${manifest} lacks loader/node/host`, { kind: 'FailedPrecondition' });
  return { dir, loader, node, host, ...(init ? { init } : {}), ...(podHost ? { podHost } : {}), nodeVersion: nodeVersion ?? 'unknown' };
}

/**
 * argv that starts the host inside the container, through the kit's own
 * loader. As a container's init (`asInit`), tini is PID 1 in front of it: a
 * signal Node has no handler for then ends Node by its default action and
 * tini reports exactly 128+N (PID 1 itself would ignore it). A process exec'd
 * into a running container is not PID 1 and needs no tini.
 */
export function hostArgv(kit: Kit, asInit = true, program: string = kit.host): string[] {
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
    inKit(program),
  ];
}
