// The one transformation that turns a Linux container into a Wasm container:
// the kit is bind-mounted read-only at /.tugboat and the process becomes the
// WASI host, which runs the original argv as a Wasm guest. Everything else in
// the spec (namespaces, cgroups, mounts, hooks, user, capabilities, seccomp)
// is left exactly as the caller wrote it. Pure: returns a new spec.
import { encodeGuestConfig, GUEST_ENV_VAR, WASI_BACKENDS, type GuestComponent, type GuestConfig, type WasiBackend } from '../wasi-host/guest-config.js';
import { ConfigError } from '../errors.js';
import type { Mount, Process, Spec } from '../oci/runtime-spec.js';
import { hostArgv, KIT_MOUNT_POINT, type Kit } from './kit.js';

export const WORKLOAD_ANNOTATION = 'io.tugboat.workload';
export const PREOPENS_ANNOTATION = 'io.tugboat.wasm.preopens';
/** Which preview1 implementation runs a core module: "tugboat" (default) or "uvwasi" (node:wasi, container level only). */
export const WASI_BACKEND_ANNOTATION = 'io.tugboat.wasi';

/** The backend an annotation asks for; a value we do not know is a configuration error, not a silent default. */
export function wasiBackendOf(annotations: Record<string, string> | undefined): WasiBackend | undefined {
  const v = annotations?.[WASI_BACKEND_ANNOTATION];
  if (v === undefined || v === '') return undefined;
  if (!WASI_BACKENDS.includes(v as WasiBackend)) throw new ConfigError(`annotation ${WASI_BACKEND_ANNOTATION}=${v}: unknown WASI backend (use ${WASI_BACKENDS.join(' or ')})`);
  return v as WasiBackend;
}

export interface HostProcessOptions {
  /** The container's init (tini in front of the host), not a process exec'd into a running container. */
  asInit?: boolean;
  backend?: WasiBackend;
}

export function kitMount(kit: Kit): Mount {
  return {
    destination: KIT_MOUNT_POINT,
    type: 'bind',
    source: kit.dir,
    options: ['rbind', 'ro', 'nosuid', 'nodev'],
  };
}

export interface WasmRewriteOptions {
  /**
   * A Wasm component: its transpile cache entry on the host, mounted
   * read-only at `component.dir` inside the container.
   */
  component?: GuestComponent & { source: string };
}

/** The read-only bind mount of a component's transpile cache entry. */
export function componentMount(source: string, destination: string): Mount {
  return { destination, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev'] };
}

/** The process that runs `original` as a Wasm guest under the host. */
export function wasmHostProcess(original: Process, kit: Kit, preopens?: Record<string, string>, component?: GuestComponent, opts: HostProcessOptions = {}): Process {
  const guest: GuestConfig = { args: original.args ?? [], env: original.env ?? [] };
  if (preopens) guest.preopens = preopens;
  if (opts.backend && opts.backend !== 'tugboat') guest.backend = opts.backend;
  if (component) {
    guest.component = { dir: component.dir, entry: component.entry, world: component.world };
    if (component.port !== undefined) guest.component.port = component.port;
  }
  return {
    ...original,
    args: hostArgv(kit, opts.asInit ?? false),
    // Only the guest description: nothing of the user's environment may steer
    // Node itself (NODE_OPTIONS and friends).
    env: [`${GUEST_ENV_VAR}=${encodeGuestConfig(guest)}`],
  };
}

export function rewriteSpecForWasm(spec: Spec, kit: Kit, preopens?: Record<string, string>, options: WasmRewriteOptions = {}): Spec {
  if (!spec.process) throw new Error('spec has no process to run');
  const { component } = options;
  const ours = new Set([KIT_MOUNT_POINT, ...(component ? [component.dir] : [])]);
  const mounts = (spec.mounts ?? []).filter((m) => !ours.has(m.destination));
  return {
    ...spec,
    process: wasmHostProcess(spec.process, kit, preopens, component, { asInit: true, backend: wasiBackendOf(spec.annotations) }),
    mounts: [...mounts, kitMount(kit), ...(component ? [componentMount(component.source, component.dir)] : [])],
    annotations: { ...spec.annotations, [WORKLOAD_ANNOTATION]: component ? 'wasm-component' : 'wasm-module' },
  };
}
