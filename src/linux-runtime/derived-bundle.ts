// A derived bundle: the config.json an engine writes for runc in place of the
// caller's, in a directory the front end chose (its "home": inside
// containerd's bundle for the shim and `tugboat run`, under the state dir for
// the OCI CLI, see src/defaults.ts). Written and removed only here.
// Synchronous: a config.json in a directory, and `shim delete` (after every
// task) then need not load node:fs/promises.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Spec } from '../oci/runtime-spec.js';

export async function writeDerivedBundle(home: string, spec: Spec): Promise<void> {
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'config.json'), JSON.stringify(spec), { mode: 0o600 });
}

export async function removeDerivedBundle(home: string): Promise<void> {
  rmSync(home, { recursive: true, force: true });
}
