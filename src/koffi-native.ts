// koffi (FFI for the few system calls Node lacks), loaded as its bare native
// addon through process.dlopen: koffi's JavaScript entry point pulls in
// crypto, https and zlib for its installer (~20-25 ms of a start), the addon
// alone loads in ~1.5 ms and exports the same functions (load, func, struct,
// errno, ...). One loader for the whole code base, once per thread.
//
// Loading and declaring run where the thread cannot be terminated
// (thread-gate.ts): both abort the process if it is.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withoutTermination } from './thread-gate.js';

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

function loadKoffi(): Koffi {
  if (koffi) return koffi;
  const mod = { exports: {} as Koffi };
  process.dlopen(mod, addonPath());
  koffi = mod.exports;
  return koffi;
}

/** What `declare` makes of the addon (its library handles, its declared functions): the only way to reach koffi. */
export function declareNative<T>(declare: (koffi: Koffi) => T): T {
  return withoutTermination(() => declare(loadKoffi()));
}
