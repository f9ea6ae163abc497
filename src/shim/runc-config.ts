// What the shim keeps on disk about how it runs runc, readable by the
// short-lived `delete` action without loading the task service.
import { join } from 'node:path';
import { DEFAULT_RUNC_ROOT, type RuncConfig } from './runc-process.js';

/** Directory in a task's bundle holding the derived bundle of a Wasm container. */
export const DERIVED_BUNDLE = 'tugboat-wasm';

/** `options.json` in the bundle: containerd.runc.v1.Options as JSON (snake_case, like the runc shim's). */
export interface ShimOptionsFile {
  binary_name?: string;
  root?: string;
  systemd_cgroup?: boolean;
}

export function runcConfigFor(namespace: string, opts: ShimOptionsFile & { no_pivot_root?: boolean; no_new_keyring?: boolean }, fallbackBinary = 'runc'): RuncConfig {
  return {
    binary: opts.binary_name || fallbackBinary,
    root: join(opts.root || DEFAULT_RUNC_ROOT, namespace),
    systemdCgroup: opts.systemd_cgroup ?? false,
    noPivot: opts.no_pivot_root ?? false,
    noNewKeyring: opts.no_new_keyring ?? false,
  };
}
