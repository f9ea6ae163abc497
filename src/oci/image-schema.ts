// Parsing of image JSON (index, manifest, config) from untrusted bytes.
// Each check names the blob and the field, so "bad image" errors say exactly
// what is wrong. Only fields Tugboat uses are checked; unknown ones are kept.

import { ImageError } from '../errors.js';
import { parseJsonText } from '../json-text.js';
import { digestHex } from './digest.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './types.js';

export const INDEX_TYPES: readonly string[] = [MediaType.OciIndex, MediaType.DockerManifestList];
export const MANIFEST_TYPES: readonly string[] = [MediaType.OciManifest, MediaType.DockerManifest];

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Failures name `what` and the position, never the content (the file may be a link to a secret). */
export function parseJson(data: Buffer | string, what: string): unknown {
  return parseJsonText(typeof data === 'string' ? data : data.toString('utf8'), what, (m) => new ImageError(m));
}

function checkStringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string')) {
    throw new ImageError(`${what}: must be an object of strings`);
  }
  return v as Record<string, string>;
}

function checkPlatform(v: unknown, what: string): Platform | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || typeof v.os !== 'string' || typeof v.architecture !== 'string') {
    throw new ImageError(`${what}: platform needs string os and architecture`);
  }
  if (v.variant !== undefined && typeof v.variant !== 'string') throw new ImageError(`${what}: platform.variant must be a string`);
  return v as unknown as Platform;
}

export function checkDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw new ImageError(`${what}: descriptor must be an object`);
  if (typeof v.mediaType !== 'string' || v.mediaType === '') throw new ImageError(`${what}: mediaType missing`);
  if (typeof v.digest !== 'string') throw new ImageError(`${what}: digest missing`);
  try {
    digestHex(v.digest);
  } catch (err) {
    throw new ImageError(`${what}: ${(err as Error).message}`);
  }
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) {
    throw new ImageError(`${what}: size must be a non-negative integer`);
  }
  checkStringMap(v.annotations, `${what}.annotations`);
  checkPlatform(v.platform, what);
  return v as unknown as Descriptor;
}

export function parseIndex(data: Buffer, what: string): ImageIndex {
  const v = parseJson(data, what);
  if (!isObject(v)) throw new ImageError(`${what}: not a JSON object`);
  if (v.schemaVersion !== 2) throw new ImageError(`${what}: schemaVersion must be 2`);
  if (v.mediaType !== undefined && !INDEX_TYPES.includes(v.mediaType as string)) {
    throw new ImageError(`${what}: unexpected mediaType ${JSON.stringify(v.mediaType)} for an image index`);
  }
  if (!Array.isArray(v.manifests)) throw new ImageError(`${what}: manifests must be an array`);
  v.manifests.forEach((d, i) => checkDescriptor(d, `${what}: manifests[${i}]`));
  checkStringMap(v.annotations, `${what}: annotations`);
  return v as unknown as ImageIndex;
}

export function parseManifest(data: Buffer, what: string): ImageManifest {
  const v = parseJson(data, what);
  if (!isObject(v)) throw new ImageError(`${what}: not a JSON object`);
  if (v.schemaVersion !== 2) throw new ImageError(`${what}: schemaVersion must be 2`);
  if (v.mediaType !== undefined && !MANIFEST_TYPES.includes(v.mediaType as string)) {
    throw new ImageError(`${what}: unexpected mediaType ${JSON.stringify(v.mediaType)} for an image manifest`);
  }
  checkDescriptor(v.config, `${what}: config`);
  if (!Array.isArray(v.layers)) throw new ImageError(`${what}: layers must be an array`);
  v.layers.forEach((d, i) => checkDescriptor(d, `${what}: layers[${i}]`));
  checkStringMap(v.annotations, `${what}: annotations`);
  return v as unknown as ImageManifest;
}

export type ManifestOrIndex = { kind: 'index'; index: ImageIndex } | { kind: 'manifest'; manifest: ImageManifest };

/**
 * An index or a manifest, by media type; some tools leave the descriptor's
 * media type generic, and then the shape decides.
 */
export function parseManifestOrIndex(desc: Descriptor, data: Buffer, what: string): ManifestOrIndex {
  let isIndex = INDEX_TYPES.includes(desc.mediaType);
  if (!isIndex && !MANIFEST_TYPES.includes(desc.mediaType)) {
    const v = parseJson(data, `${what}: blob ${desc.digest}`) as Record<string, unknown> | null;
    if (!isObject(v) || (!('manifests' in v) && !('config' in v))) {
      throw new ImageError(`${what}: blob ${desc.digest} has media type ${desc.mediaType}, which is neither an image index nor a manifest`);
    }
    isIndex = 'manifests' in v;
  }
  return isIndex
    ? { kind: 'index', index: parseIndex(data, `${what}: index ${desc.digest}`) }
    : { kind: 'manifest', manifest: parseManifest(data, `${what}: manifest ${desc.digest}`) };
}

function checkStringArray(v: unknown, what: string): void {
  if (v === undefined || v === null) return;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ImageError(`${what}: must be an array of strings`);
}

export function parseConfig(data: Buffer, what: string): ImageConfig {
  const v = parseJson(data, what);
  if (!isObject(v)) throw new ImageError(`${what}: not a JSON object`);
  if (typeof v.os !== 'string' || v.os === '') throw new ImageError(`${what}: os missing`);
  if (typeof v.architecture !== 'string' || v.architecture === '') throw new ImageError(`${what}: architecture missing`);
  if (v.variant !== undefined && typeof v.variant !== 'string') throw new ImageError(`${what}: variant must be a string`);
  if (v.config !== undefined && v.config !== null) {
    const c = v.config;
    if (!isObject(c)) throw new ImageError(`${what}: config must be an object`);
    for (const k of ['Env', 'Entrypoint', 'Cmd'] as const) checkStringArray(c[k], `${what}: config.${k}`);
    for (const k of ['User', 'WorkingDir', 'StopSignal'] as const) {
      if (c[k] !== undefined && c[k] !== null && typeof c[k] !== 'string') throw new ImageError(`${what}: config.${k} must be a string`);
    }
    checkStringMap(c.Labels, `${what}: config.Labels`);
  }
  if (v.rootfs !== undefined) {
    const r = v.rootfs;
    if (!isObject(r) || !Array.isArray(r.diff_ids)) throw new ImageError(`${what}: rootfs.diff_ids must be an array`);
    r.diff_ids.forEach((d, i) => {
      if (typeof d !== 'string') throw new ImageError(`${what}: rootfs.diff_ids[${i}] must be a string`);
      try {
        digestHex(d);
      } catch (err) {
        throw new ImageError(`${what}: rootfs.diff_ids[${i}]: ${(err as Error).message}`);
      }
    });
  }
  checkStringArray(v.layerDigests, `${what}: layerDigests`);
  return v as unknown as ImageConfig;
}

/** The platform an image config declares (os/architecture/variant only). */
export function configPlatform(config: ImageConfig): Platform {
  const p: Platform = { os: config.os, architecture: config.architecture };
  if (config.variant) p.variant = config.variant;
  return p;
}
