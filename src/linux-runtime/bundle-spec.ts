// A bundle's config.json as the caller wrote it, and the one adjustment every
// derived bundle needs (the OCI CLI's and the shim's): bundle-relative paths
// made absolute, since runc then reads the spec from another directory.
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { parseJsonText } from '../json-text.js';
import type { Spec } from '../oci/runtime-spec.js';

/** Reads and minimally checks a bundle's config.json; every failure names the file. */
export function readBundleSpec(bundle: string): Spec {
  const path = join(bundle, 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read bundle config ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
  }
  const spec = parseJsonText(text, `bundle config ${path}`, (m) => new ConfigError(m));
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new ConfigError(`bundle config ${path} is not a JSON object`);
  const s = spec as Spec;
  if (typeof s.root?.path !== 'string') throw new ConfigError(`bundle config ${path}: root.path must be a string`);
  if (s.process !== undefined && (!Array.isArray(s.process.args) || !s.process.args.every((a) => typeof a === 'string'))) {
    throw new ConfigError(`bundle config ${path}: process.args must be an array of strings`);
  }
  return s;
}

/** The derived spec is read by runc from another directory: make bundle-relative paths absolute. */
export function anchorToBundle(spec: Spec, bundle: string): Spec {
  return {
    ...spec,
    root: { ...spec.root!, path: resolve(bundle, spec.root!.path) },
    mounts: (spec.mounts ?? []).map((m) =>
      m.source !== undefined && !isAbsolute(m.source) && (m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind'))
        ? { ...m, source: resolve(bundle, m.source) }
        : m,
    ),
  };
}
