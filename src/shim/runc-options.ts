// How the shim runs runc, from containerd's runtime options
// (containerd.runc.v1.Options in CreateTaskRequest.options). They are also
// kept in the bundle as options.json, where the short-lived `shim delete`
// (no daemon, no request) finds them. No protobuf code is loaded here:
// `start` and `delete` must stay light (the daemon decodes the options).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTAINERD_RUNC_ROOT } from '../defaults.js';
import type { RuncConfig } from '../linux-runtime/runc.js';
import type { runcOptions } from './proto/index.js';

/** `options.json` in the bundle: containerd.runc.v1.Options as JSON (snake_case, like the runc shim's). */
export interface ShimOptionsFile {
  binary_name?: string;
  root?: string;
  systemd_cgroup?: boolean;
  no_pivot_root?: boolean;
  no_new_keyring?: boolean;
}

/** Writes options.json (and `runtime`, the binary name, as the runc shim does) into the bundle. */
export function saveShimOptions(bundle: string, o: runcOptions.Options | undefined): ShimOptionsFile {
  const file: ShimOptionsFile = {};
  if (o?.binaryName) file.binary_name = o.binaryName;
  if (o?.root) file.root = o.root;
  if (o?.systemdCgroup) file.systemd_cgroup = true;
  if (o?.noPivotRoot) file.no_pivot_root = true;
  if (o?.noNewKeyring) file.no_new_keyring = true;
  writeFileSync(join(bundle, 'options.json'), JSON.stringify(file));
  writeFileSync(join(bundle, 'runtime'), file.binary_name ?? '');
  return file;
}

export function readShimOptions(bundle: string): ShimOptionsFile {
  try {
    return JSON.parse(readFileSync(join(bundle, 'options.json'), 'utf8')) as ShimOptionsFile;
  } catch {
    return {};
  }
}

/** runc as go-runc runs it for the runc shim: --root <root>/<ns> --log <bundle>/log.json --log-format json. */
export function runcConfigFor(namespace: string, bundle: string, opts: ShimOptionsFile, fallbackBinary = 'runc'): RuncConfig {
  return {
    binary: opts.binary_name || fallbackBinary,
    root: join(opts.root || CONTAINERD_RUNC_ROOT, namespace),
    log: join(bundle, 'log.json'),
    systemdCgroup: opts.systemd_cgroup ?? false,
  };
}
