// Parsing of `tugboat run` option values. Every bad value is a UsageError
// naming the option and the value.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { parseByteSize } from '../units.js';
import type { NetworkMode, Volume } from '../linux-runtime/spec-edits.js';
import type { LayerLimits } from '../oci/layers.js';
import { checkContainerId } from '../oci/names.js';

/** "512m", "1g", "65536", "1.5g" → bytes (Docker's units: binary multiples). */
export function parseSize(value: string, option: string): number {
  const bytes = parseByteSize(value);
  if (bytes === undefined) throw new UsageError(`${option}: invalid size ${JSON.stringify(value)} (examples: 64m, 1g)`);
  return bytes;
}

export function parseMemory(value: string): number {
  const bytes = parseSize(value, '--memory');
  // Below this a Node-based Wasm container cannot even start; say so up front.
  if (bytes < 6 * 1024 * 1024) throw new UsageError(`--memory: ${value} is below the 6 MiB minimum`);
  return bytes;
}

/**
 * `--layer-limits entries=N,size=SIZE,ratio=N` (any subset): bounds on the
 * work one image layer may cause when it is unpacked.
 */
export function parseLayerLimits(value: string): Partial<LayerLimits> {
  const option = '--layer-limits';
  const out: Partial<LayerLimits> = {};
  for (const part of value.split(',')) {
    const [key, v] = part.split('=', 2) as [string, string | undefined];
    const count = (): number => {
      if (v === undefined || !/^[1-9]\d*$/.test(v)) throw new UsageError(`${option}: ${key} needs a positive integer, got ${JSON.stringify(v ?? '')}`);
      return Number(v);
    };
    if (key === 'entries') out.maxEntries = count();
    else if (key === 'ratio') out.maxRatio = count();
    else if (key === 'size' && v !== undefined) out.maxBytes = parseSize(v, `${option} size`);
    else throw new UsageError(`${option}: unknown limit ${JSON.stringify(part)} (entries=N, size=SIZE, ratio=N)`);
  }
  return out;
}

/** HOST:CONTAINER[:ro|rw] with an existing absolute-or-relative host path. */
export function parseVolume(value: string, cwd = process.cwd()): Volume {
  const parts = value.split(':');
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) {
    throw new UsageError(`-v: expected HOST:CONTAINER[:ro], got ${JSON.stringify(value)}`);
  }
  const [host, container, mode] = parts as [string, string, string | undefined];
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw new UsageError(`-v: unknown mode ${JSON.stringify(mode)} in ${value} (ro or rw)`);
  if (!isAbsolute(container)) throw new UsageError(`-v: container path must be absolute: ${container}`);
  const source = resolve(cwd, host);
  if (!existsSync(source)) throw new UsageError(`-v: host path does not exist: ${source}`);
  return { source, destination: container, readonly: mode === 'ro' };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** -e KEY=VALUE, or -e KEY to copy KEY from our own environment (skipped when unset, as docker does). */
export function parseEnvArg(value: string, hostEnv: NodeJS.ProcessEnv = process.env): string | undefined {
  const eq = value.indexOf('=');
  const name = eq === -1 ? value : value.slice(0, eq);
  if (!ENV_NAME.test(name)) throw new UsageError(`-e: invalid variable name ${JSON.stringify(name)}`);
  if (eq !== -1) return value;
  const v = hostEnv[name];
  return v === undefined ? undefined : `${name}=${v}`;
}

/** Docker's env-file format: KEY=VALUE or KEY per line, # comments, blank lines ignored, no quoting. */
export function parseEnvFile(path: string, hostEnv: NodeJS.ProcessEnv = process.env): string[] {
  let text: string;
  try {
    if (!statSync(path).isFile()) throw new Error('not a regular file');
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--env-file: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const out: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    try {
      const kv = parseEnvArg(line, hostEnv);
      if (kv !== undefined) out.push(kv);
    } catch (err) {
      throw new UsageError(`--env-file ${path}:${i + 1}: ${(err as Error).message.replace(/^-e: /, '')}`);
    }
  });
  return out;
}

export function parseNetwork(value: string): NetworkMode {
  if (value === 'none' || value === 'host') return value;
  throw new UsageError(`--network: unsupported mode ${JSON.stringify(value)} (none or host; bridge networking comes with containerd or docker)`);
}

export function parseContainerName(value: string): string {
  return checkContainerId(value, '--name');
}

/** --annotation KEY=VALUE (the value may contain "="). */
export function parseAnnotation(value: string): [string, string] {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new UsageError(`--annotation: expected KEY=VALUE, got ${JSON.stringify(value)}`);
  return [value.slice(0, eq), value.slice(eq + 1)];
}

/** --isolation: where a Wasm guest runs (`pod` needs a shim group, so containerd). */
export function parseIsolation(value: string): 'container' | 'process' {
  if (value === 'container' || value === 'process') return value;
  if (value === 'pod') throw new UsageError('--isolation pod: a pod host serves a containerd shim group (CRI pods, ctr --annotation io.containerd.runc.v2.group=…); use container or process');
  throw new UsageError(`--isolation: unknown level ${JSON.stringify(value)} (container or process)`);
}

/** -p HOST:CONTAINER: TCP ports, 1-65535. */
export function parsePublish(value: string): { host: number; container: number } {
  const m = /^(\d{1,5}):(\d{1,5})(\/tcp)?$/.exec(value);
  const port = (v: string | undefined) => {
    const n = Number(v);
    return Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined;
  };
  const host = port(m?.[1]);
  const container = port(m?.[2]);
  if (host === undefined || container === undefined) throw new UsageError(`-p: expected HOST:CONTAINER (TCP ports), got ${JSON.stringify(value)}`);
  return { host, container };
}
