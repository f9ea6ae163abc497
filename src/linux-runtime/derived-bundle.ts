// A derived bundle: the config.json an engine writes for runc in place of the
// caller's, in a directory the front end chose (its "home": inside
// containerd's bundle for the shim and `tugboat run`, under the state dir for
// the OCI CLI, see src/defaults.ts). Written and removed only here.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Spec } from '../oci/runtime-spec.js';

export async function writeDerivedBundle(home: string, spec: Spec): Promise<void> {
  await rm(home, { recursive: true, force: true });
  await mkdir(home, { recursive: true, mode: 0o700 });
  await writeFile(join(home, 'config.json'), JSON.stringify(spec), { mode: 0o600 });
}

export async function removeDerivedBundle(home: string): Promise<void> {
  await rm(home, { recursive: true, force: true });
}
