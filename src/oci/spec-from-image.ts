// Turns an image config plus command-line overrides into a runtime spec,
// following containerd's oci.WithImageConfig and `ctr run` semantics.

import { posix } from 'node:path';
import { ConfigError } from '../errors.js';
import { resolveUser } from './rootfs-user.js';
import { DEFAULT_PATH, defaultSpec, type Spec } from './runtime-spec.js';
import type { ImageConfig } from './types.js';

export interface SpecOverrides {
  args?: string[];
  entrypoint?: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  hostname?: string;
  /** Start from PATH=DEFAULT_PATH, as Docker and containerd do for Linux processes (default true). */
  defaultPath?: boolean;
}

function envKey(kv: string): string {
  const i = kv.indexOf('=');
  return i < 0 ? kv : kv.slice(0, i);
}

/**
 * `overrides` replace entries of `base` by key, in place (later duplicates
 * dropped), or are appended. A bare "KEY" (no '=') unsets KEY, as in
 * containerd's replaceOrAppendEnvValues.
 */
export function mergeEnv(base: string[], overrides: string[]): string[] {
  let out = [...base];
  for (const kv of overrides) {
    const key = envKey(kv);
    if (!kv.includes('=')) {
      out = out.filter((e) => envKey(e) !== key);
      continue;
    }
    const first = out.findIndex((e) => envKey(e) === key);
    if (first < 0) {
      out.push(kv);
      continue;
    }
    out = out.filter((e, i) => i === first || envKey(e) !== key);
    out[first] = kv;
  }
  return out;
}

export function specFromImage(config: ImageConfig, rootfsDir: string, overrides: SpecOverrides): Spec {
  const spec = defaultSpec();
  const img = config.config ?? {};
  const proc = spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' };

  proc.env = mergeEnv(mergeEnv(overrides.defaultPath === false ? [] : [`PATH=${DEFAULT_PATH}`], img.Env ?? []), overrides.env ?? []);

  // --entrypoint replaces the image's Entrypoint and drops its Cmd; user args replace Cmd.
  const args =
    overrides.entrypoint !== undefined
      ? [...overrides.entrypoint, ...(overrides.args ?? [])]
      : [...(img.Entrypoint ?? []), ...(overrides.args?.length ? overrides.args : (img.Cmd ?? []))];
  if (args.length === 0) throw new ConfigError('no command specified');
  proc.args = args;

  // The runtime spec needs an absolute cwd; Docker treats a relative WorkingDir as relative to /.
  proc.cwd = posix.resolve('/', overrides.cwd || img.WorkingDir || '/');
  proc.user = resolveUser(rootfsDir, overrides.user ?? img.User ?? '');
  if (overrides.hostname !== undefined) spec.hostname = overrides.hostname;
  spec.process = proc;
  return spec;
}
