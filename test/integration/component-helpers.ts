// Components run by the host bundle (dist/host/host.mjs) directly on a root
// directory, with no runc: the `process` level's way, and the strictest test
// of the host's own confinement.
import { join } from 'node:path';
import { COMPONENT_ENTRY, ensureTranspiled } from '../../src/linux-runtime/component-cache.js';
import type { GuestComponent, GuestConfig } from '../../src/wasi-host/guest-config.js';
import { exec, REPO, type Result } from './helpers.js';

export const HOST = join(REPO, 'dist', 'host', 'host.mjs');

/** The transpiled form of the component at `path`, cached under `cacheDir`. */
export async function transpiledComponent(path: string, cacheDir: string): Promise<GuestComponent> {
  const { dir } = await ensureTranspiled(path, cacheDir);
  return { dir, entry: COMPONENT_ENTRY, world: 'command' };
}

/** Runs the host bundle on `guest` (root, args, component, …); `noOpenat2` forces the O_NOFOLLOW walk. */
export function runComponentHost(guest: GuestConfig, opts: { noOpenat2?: boolean; input?: string } = {}): Promise<Result> {
  return exec(process.execPath, ['--no-warnings', HOST], {
    env: { TUGBOAT_GUEST: JSON.stringify(guest), TUGBOAT_WASI_NO_OPENAT2: opts.noOpenat2 ? '1' : '0' },
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
}
