// Decides, once per container, whether it is a Wasm or a Linux workload,
// and for Wasm which file is the module and whether it is a core module or a
// component. First match wins; the reason is kept for logs and annotations.
// This is the only place that looks up an entrypoint in a root filesystem
// (PATH lookup, like execvp, but inside the root) and the only place that
// tells a module from a component before the container runs.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { isWasmPlatform } from './platform.js';
import { DEFAULT_PATH } from './runtime-spec.js';
import { resolveInRoot } from './scoped-path.js';
import type { Platform } from './types.js';
import { wasmKind } from './wasm-kind.js';

export type WorkloadKind = 'wasm-module' | 'wasm-component' | 'linux';

export interface Workload {
  kind: WorkloadKind;
  reason: string;
  /**
   * argv[0] resolved once, here, to a file of the root filesystem (its path
   * inside the container). For Wasm this is the module. Absent when it is not
   * in the root filesystem (a volume, a typo): runc, or for Wasm the host,
   * then reports it (127).
   */
  entrypoint?: string;
  /** A component's world (command, http), known once it was transpiled (set by the engine). */
  world?: 'command' | 'http' | 'unknown';
}

export interface DetectInput {
  annotations?: Record<string, string>;
  args: readonly string[];
  env: readonly string[];
  /** The process's working directory (relative entrypoints resolve against it). */
  cwd?: string;
  /** Image facts when the caller knows the image (tugboat run, the shim). */
  image?: { platform: Platform; wasmLayer?: boolean };
  /** Host path of the container's root filesystem, to find and sniff the entrypoint. */
  rootfs?: string;
}

const SANDBOX_ANNOTATIONS: Record<string, string> = {
  'io.kubernetes.cri.container-type': 'sandbox',
  'io.kubernetes.cri-o.ContainerType': 'sandbox',
};

function isSandbox(annotations: Record<string, string>): boolean {
  return Object.entries(SANDBOX_ANNOTATIONS).some(([k, v]) => annotations[k] === v);
}

function looksLikeWasmName(arg0: string | undefined): boolean {
  return arg0 !== undefined && /\.(wasm|wat)$/.test(arg0);
}

/** crun's annotations, so manifests written for crun's Wasm handlers work unchanged. */
function fromAnnotations(annotations: Record<string, string>, arg0: string | undefined): string | undefined {
  const handler = annotations['run.oci.handler'];
  const variant = annotations['module.wasm.image/variant'];
  for (const [key, value] of [
    ['run.oci.handler', handler],
    ['module.wasm.image/variant', variant],
  ] as const) {
    if (value === 'wasm' || value === 'compat') return `annotation ${key}=${value}`;
    if ((value === 'wasm-smart' || value === 'compat-smart') && looksLikeWasmName(arg0)) return `annotation ${key}=${value} and entrypoint ${arg0}`;
  }
  return undefined;
}

function envPath(env: readonly string[]): string {
  const entry = [...env].reverse().find((e) => e.startsWith('PATH='));
  return entry ? entry.slice(5) : DEFAULT_PATH;
}

/** argv[0] → container path of a regular file, searched like execvp but inside `rootfs`. */
export function findEntrypoint(rootfs: string, arg0: string, env: readonly string[], cwd = '/'): string | undefined {
  const candidates = arg0.includes('/')
    ? [posix.resolve(cwd, arg0)]
    : envPath(env)
        .split(':')
        .map((dir) => posix.resolve(cwd, dir || '.', arg0));
  for (const candidate of candidates) {
    const host = resolveInRoot(rootfs, candidate);
    if (host === undefined) continue;
    try {
      if (statSync(host).isFile()) return candidate;
    } catch {
      // dangling or unreadable: keep looking
    }
  }
  return undefined;
}

function readHead(path: string, n: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = new Uint8Array(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

interface Entrypoint {
  /** Container path. */
  path: string;
  head: Uint8Array;
}

function entrypoint(input: DetectInput): Entrypoint | undefined {
  const arg0 = input.args[0];
  if (arg0 === undefined || arg0 === '' || input.rootfs === undefined) return undefined;
  const found = findEntrypoint(input.rootfs, arg0, input.env, input.cwd ?? '/');
  if (found === undefined) return undefined;
  const host = resolveInRoot(input.rootfs, found);
  if (host === undefined) return undefined;
  try {
    return { path: found, head: readHead(host, 8) };
  } catch {
    return undefined;
  }
}

function fromEntrypointBytes(ep: Entrypoint): Workload | undefined {
  const { path, head } = ep;
  const kind = wasmKind(head);
  if (kind === 'module') return { kind: 'wasm-module', reason: `entrypoint ${path} is a Wasm module`, entrypoint: path };
  if (kind === 'component') return { kind: 'wasm-component', reason: `entrypoint ${path} is a Wasm component`, entrypoint: path };
  if (head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) {
    return { kind: 'linux', reason: `entrypoint ${path} is an ELF binary`, entrypoint: path };
  }
  if (head[0] === 0x23 && head[1] === 0x21) return { kind: 'linux', reason: `entrypoint ${path} is a script`, entrypoint: path };
  return undefined;
}

/** Wasm by annotation or image: the entrypoint, when found, says module or component. */
function wasm(reason: string, ep: Entrypoint | undefined): Workload {
  if (!ep) return { kind: 'wasm-module', reason };
  return { kind: wasmKind(ep.head) === 'component' ? 'wasm-component' : 'wasm-module', reason, entrypoint: ep.path };
}

export function detectWorkload(input: DetectInput): Workload {
  const annotations = input.annotations ?? {};
  if (isSandbox(annotations)) return { kind: 'linux', reason: 'pod sandbox container' };
  const ep = entrypoint(input);
  const byAnnotation = fromAnnotations(annotations, input.args[0]);
  if (byAnnotation) return wasm(byAnnotation, ep);
  if (input.image && isWasmPlatform(input.image.platform)) {
    const p = input.image.platform;
    return wasm(`image platform ${p.os}/${p.architecture}`, ep);
  }
  if (input.image?.wasmLayer) return wasm('image has a Wasm artifact layer', ep);
  return (ep && fromEntrypointBytes(ep)) ?? { kind: 'linux', reason: 'no Wasm marker found', ...(ep ? { entrypoint: ep.path } : {}) };
}
