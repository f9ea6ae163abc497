// koffi (FFI for the few system calls Node lacks), loaded as its bare native
// addon through process.dlopen: koffi's JavaScript entry point pulls in
// crypto, https and zlib for its installer (~20-25 ms of a start), the addon
// alone loads in ~1.5 ms and exports the same functions (load, func, struct,
// errno, ...). One loader for the whole code base, once per process.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Koffi = typeof import('koffi');

const ADDON = 'koffi.node';

/** Beside this file (the bundled host in the kit carries a copy), else koffi's package in a node_modules above it. */
function addonPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const beside = join(here, ADDON);
  if (existsSync(beside)) return beside;
  const triplet = `linux_${process.arch}`;
  for (let dir = here, i = 0; i < 8; i++, dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', 'koffi', 'build', 'koffi', triplet, ADDON);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`cannot find koffi's native addon (${ADDON}) for ${triplet}`);
}

let koffi: Koffi | undefined;

export function loadKoffi(): Koffi {
  if (koffi) return koffi;
  const mod = { exports: {} as Koffi };
  process.dlopen(mod, addonPath());
  koffi = mod.exports;
  return koffi;
}
