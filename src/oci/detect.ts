// Decides, once per container, whether it is a Wasm or a Linux workload.
// First match wins; the reason is kept for logs and `tugboat inspect`.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { isWasmPlatform } from './platform.js';
import { resolveInRoot } from './scoped-path.js';
import type { Platform } from './types.js';
import { wasmKind } from './wasm-kind.js';

export type WorkloadKind = 'wasm-module' | 'wasm-component' | 'linux';

export interface Workload {
  kind: WorkloadKind;
  reason: string;
  /** For Wasm from the rootfs: the module's path inside the container. */
  modulePath?: string;
}

export interface DetectInput {
  annotations?: Record<string, string>;
  args: readonly string[];
  env: readonly string[];
  /** Image facts when the caller knows the image (tugboat run, the shim). */
  image?: { platform: Platform; wasmLayer?: boolean };
  /** Host path of the container's root filesystem, to sniff the entrypoint. */
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
function fromAnnotations(annotations: Record<string, string>, arg0: string | undefined): Workload | undefined {
  const handler = annotations['run.oci.handler'];
  const variant = annotations['module.wasm.image/variant'];
  for (const [key, value] of [
    ['run.oci.handler', handler],
    ['module.wasm.image/variant', variant],
  ] as const) {
    if (value === 'wasm' || value === 'compat') return { kind: 'wasm-module', reason: `annotation ${key}=${value}` };
    if ((value === 'wasm-smart' || value === 'compat-smart') && looksLikeWasmName(arg0)) {
      return { kind: 'wasm-module', reason: `annotation ${key}=${value} and entrypoint ${arg0}` };
    }
  }
  return undefined;
}

function envPath(env: readonly string[]): string {
  const entry = [...env].reverse().find((e) => e.startsWith('PATH='));
  return entry ? entry.slice(5) : '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
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

function fromEntrypointBytes(rootfs: string, args: readonly string[], env: readonly string[]): Workload | undefined {
  const arg0 = args[0];
  if (arg0 === undefined) return undefined;
  const found = findEntrypoint(rootfs, arg0, env);
  if (found === undefined) return undefined;
  const host = resolveInRoot(rootfs, found);
  if (host === undefined) return undefined;
  const head = readHead(host, 8);
  const kind = wasmKind(head);
  if (kind === 'module') return { kind: 'wasm-module', reason: `entrypoint ${found} is a Wasm module`, modulePath: found };
  if (kind === 'component') {
    return { kind: 'wasm-component', reason: `entrypoint ${found} is a Wasm component`, modulePath: found };
  }
  if (head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) {
    return { kind: 'linux', reason: `entrypoint ${found} is an ELF binary` };
  }
  if (head[0] === 0x23 && head[1] === 0x21) return { kind: 'linux', reason: `entrypoint ${found} is a script` };
  return undefined;
}

export function detectWorkload(input: DetectInput): Workload {
  const annotations = input.annotations ?? {};
  if (isSandbox(annotations)) return { kind: 'linux', reason: 'pod sandbox container' };
  const byAnnotation = fromAnnotations(annotations, input.args[0]);
  if (byAnnotation) return byAnnotation;
  if (input.image && isWasmPlatform(input.image.platform)) {
    const p = input.image.platform;
    return { kind: 'wasm-module', reason: `image platform ${p.os}/${p.architecture}` };
  }
  if (input.image?.wasmLayer) return { kind: 'wasm-module', reason: 'image has a Wasm artifact layer' };
  if (input.rootfs) {
    const byBytes = fromEntrypointBytes(input.rootfs, input.args, input.env);
    if (byBytes) return byBytes;
  }
  return { kind: 'linux', reason: 'no Wasm marker found' };
}
