// The one transformation that turns a Linux container into a Wasm container:
// the kit is bind-mounted read-only at /.tugboat and the process becomes the
// WASI host, which runs the original argv as a Wasm guest. Everything else in
// the spec (namespaces, cgroups, mounts, hooks, user, capabilities, seccomp)
// is left exactly as the caller wrote it. Pure: returns a new spec.
//
// This is also the only code that builds a GuestConfig (the contract with the
// host, src/wasi-host/guest-config.ts), for the container's init and for every
// process exec'd into it.
import { decodeGuestConfig, defaultPreopens, encodeGuestConfig, GUEST_ENV_VAR, WASI_BACKENDS, type GuestComponent, type GuestConfig, type Preopen, type WasiBackend } from '../wasi-host/guest-config.js';
import { ConfigError } from '../errors.js';
import { callGoesOn } from '../oci/seccomp.js';
import type { Mount, Process, Spec } from '../oci/runtime-spec.js';
import { hostArgv, KIT_MOUNT_POINT, type Kit } from './kit.js';

/** `wasm-module` or `wasm-component` in a derived spec (visible in `runc state`). */
export const WORKLOAD_ANNOTATION = 'io.tugboat.workload';
/** Why detection said so. */
export const WORKLOAD_REASON_ANNOTATION = 'io.tugboat.workload.reason';
/** Which preview1 implementation runs a core module: "tugboat" (default) or "uvwasi" (node:wasi, container level only). */
export const WASI_BACKEND_ANNOTATION = 'io.tugboat.wasi';

/** The backend an annotation asks for; a value we do not know is a configuration error, not a silent default. */
export function wasiBackendOf(annotations: Record<string, string> | undefined): WasiBackend | undefined {
  const v = annotations?.[WASI_BACKEND_ANNOTATION];
  if (v === undefined || v === '') return undefined;
  if (!WASI_BACKENDS.includes(v as WasiBackend)) throw new ConfigError(`annotation ${WASI_BACKEND_ANNOTATION}=${v}: unknown WASI backend (use ${WASI_BACKENDS.join(' or ')})`, { kind: 'InvalidArgument' });
  return v as WasiBackend;
}

export function kitMount(kit: Kit): Mount {
  return {
    destination: KIT_MOUNT_POINT,
    type: 'bind',
    source: kit.dir,
    options: ['rbind', 'ro', 'nosuid', 'nodev'],
  };
}

/** What every guest of one container shares, beyond its own argv, env and cwd. */
export interface GuestSettings {
  /** Extra directories (io.tugboat.wasm.preopens), registered between "/" and ".". */
  preopens?: readonly Preopen[];
  /** The preview1 implementation (io.tugboat.wasi); absent: Tugboat's own. */
  backend?: WasiBackend;
}

export interface WasmRewriteOptions extends GuestSettings {
  /** The init's module inside the container, as detection resolved it. */
  module?: string;
  /**
   * A Wasm component: its transpile cache entry on the host, mounted
   * read-only at `component.dir` inside the container.
   */
  component?: GuestComponent & { source: string };
  /** Detection's verdict, recorded in the annotations. */
  reason?: string;
}

/** The read-only bind mount of a component's transpile cache entry. */
export function componentMount(source: string, destination: string): Mount {
  return { destination, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev'] };
}

/** The process that runs `original` as a Wasm guest under the host. */
/**
 * The process that runs `original` as a Wasm guest under the host. As the
 * container's init (`asInit`) tini stands in front of the host; a process
 * exec'd into a running container is not PID 1 and needs none.
 */
export function wasmHostProcess(original: Process, kit: Kit, options: WasmRewriteOptions = {}, asInit = false): Process {
  const guest: GuestConfig = {
    args: original.args ?? [],
    env: original.env ?? [],
    preopens: defaultPreopens(original.cwd || '/', options.preopens ?? []),
  };
  if (options.module !== undefined) guest.module = options.module;
  if (options.backend !== undefined && options.backend !== 'tugboat') guest.backend = options.backend;
  const { component } = options;
  if (component) {
    const { source: _source, ...inside } = component;
    guest.component = inside;
  }
  return {
    ...original,
    args: hostArgv(kit, asInit),
    // Only the guest description: nothing of the user's environment may steer
    // Node itself (NODE_OPTIONS and friends).
    env: [`${GUEST_ENV_VAR}=${encodeGuestConfig(guest)}`],
  };
}

/** The guest a host process of ours describes, or undefined for any other process. */
export function guestOf(process: Process | undefined): GuestConfig | undefined {
  const raw = (process?.env ?? []).find((e) => e.startsWith(`${GUEST_ENV_VAR}=`));
  return raw === undefined ? undefined : decodeGuestConfig(raw.slice(GUEST_ENV_VAR.length + 1));
}

/**
 * An HTTP component's host may try userfaultfd (resets of large memories:
 * wasi-host/http/written-pages.ts) only where the container's seccomp
 * filter, whoever gave it, neither kills nor traps it.
 */
function withUserfaultfd(options: WasmRewriteOptions, spec: Spec): WasmRewriteOptions {
  const { component } = options;
  if (!component || component.world !== 'http' || !callGoesOn(spec.linux?.seccomp, 'userfaultfd')) return options;
  return { ...options, component: { ...component, userfaultfd: true } };
}

export function rewriteSpecForWasm(spec: Spec, kit: Kit, options: WasmRewriteOptions = {}): Spec {
  if (!spec.process) throw new ConfigError('a Wasm container needs a process to run (process.args)');
  const { component } = options;
  const ours = new Set([KIT_MOUNT_POINT, ...(component ? [component.dir] : [])]);
  const mounts = (spec.mounts ?? []).filter((m) => !ours.has(m.destination));
  return {
    ...spec,
    process: wasmHostProcess(spec.process, kit, withUserfaultfd(options, spec), true),
    mounts: [...mounts, kitMount(kit), ...(component ? [componentMount(component.source, component.dir)] : [])],
    annotations: {
      ...spec.annotations,
      [WORKLOAD_ANNOTATION]: component ? 'wasm-component' : 'wasm-module',
      ...(options.reason !== undefined ? { [WORKLOAD_REASON_ANNOTATION]: options.reason } : {}),
    },
  };
}
