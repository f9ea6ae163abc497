// Where Tugboat keeps things, and the environment variables that move them.
// This is the only module that reads Tugboat's settings from the environment:
// everything else takes the values below as arguments, so a test (or a front
// end with a flag) can always say where things go.
//
//   TUGBOAT_ROOT       data root: image store, containers, component cache (/var/lib/tugboat)
//   TUGBOAT_STATE      runtime state of the OCI CLI: derived bundles (/run/tugboat)
//   TUGBOAT_KIT        runtime kit mounted into Wasm containers (build/kit of this checkout)
//   TUGBOAT_RUNC       runc binary (runc from PATH)
//   TUGBOAT_LOG_LEVEL  log level (warn; the shim: info)
//   TUGBOAT_LAYER_LIMITS  bounds on unpacking a layer (entries=N,size=SIZE,ratio=N)
//   TUGBOAT_TRANSPILE_MEMORY  memory of the child that transpiles a component (1g)
//   TUGBOAT_RM_WATCHER  `off`: no watcher for `tugboat run --rm` (see src/cli/run-lifecycle.ts)
//   TUGBOAT_TEST_PAUSE_AT  a phase at which a command stops itself (fault tests only)
//   XDG_RUNTIME_DIR    private temp dirs of the shim (console sockets, process files)
//   TTRPC_ADDRESS      containerd's ttrpc socket for events (set by containerd)
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.js';
import { checkContainerId } from './oci/names.js';
import { parseByteSize } from './units.js';

type Env = NodeJS.ProcessEnv;

export const DEFAULT_DATA_ROOT = '/var/lib/tugboat';
export const DEFAULT_STATE_DIR = '/run/tugboat';
/** runc's own default --root, used by Docker and podman when they pass none. */
export const DEFAULT_RUNC_ROOT = '/run/runc';
/** containerd-shim-runc-v2's runc root (Options.root), one directory per namespace below it. */
export const CONTAINERD_RUNC_ROOT = '/run/containerd/runc';
/** Name of the directory, inside containerd's bundle, that holds the shim's derived bundle. */
export const SHIM_DERIVED_BUNDLE = 'tugboat-wasm';

function setting(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** The data root: `--root`, else TUGBOAT_ROOT, else /var/lib/tugboat; always absolute. */
export function dataRoot(explicit?: string, env: Env = process.env): string {
  return resolve(explicit ?? setting(env, 'TUGBOAT_ROOT') ?? DEFAULT_DATA_ROOT);
}

/** Runtime state of the OCI CLI (a tmpfs: it dies with the containers). */
export function stateDir(env: Env = process.env): string {
  return resolve(setting(env, 'TUGBOAT_STATE') ?? DEFAULT_STATE_DIR);
}

export function runcBinary(explicit?: string, env: Env = process.env): string {
  return explicit ?? setting(env, 'TUGBOAT_RUNC') ?? 'runc';
}

/**
 * The runtime kit: `--kit`, else TUGBOAT_KIT, else build/kit of the checkout
 * this code runs from. Resolved here, once: the directory becomes the source
 * of a bind mount that runc reads from another working directory.
 */
export function kitDir(explicit?: string, env: Env = process.env): string {
  const given = explicit ?? setting(env, 'TUGBOAT_KIT');
  if (given !== undefined) return resolve(given);
  // The code is either a bundle (dist/tugboat.mjs, dist/shim.mjs) or a module
  // (dist/defaults.js): look upwards for build/kit.
  const here = dirname(fileURLToPath(import.meta.url));
  let dir = here;
  for (let i = 0; i < 3; i++) {
    const candidate = join(dir, 'build', 'kit');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return resolve(here, '..', 'build', 'kit');
}

/** Memory the transpiling child may use: TUGBOAT_TRANSPILE_MEMORY (a size, e.g. 2g), else 1 GiB. */
export function transpileMemoryLimit(env: Env = process.env): number {
  const raw = setting(env, 'TUGBOAT_TRANSPILE_MEMORY');
  if (raw === undefined) return 1024 ** 3;
  const bytes = parseByteSize(raw);
  if (bytes === undefined || bytes < 128 * 1024 ** 2) throw new UsageError(`TUGBOAT_TRANSPILE_MEMORY: invalid size ${JSON.stringify(raw)} (at least 128m, e.g. 1g)`);
  return bytes;
}

/**
 * TUGBOAT_YIELD_INTERVAL: loop iterations and call-cycle entries between a
 * shared host's yield points (`pod` and `process` isolation); undefined for
 * the instrumenter's default (10,000). 0 inserts none, for measuring what
 * they cost: a guest that spins then holds its host (no pause, no kill, no
 * neighbour's timer) until it makes a WASI call.
 */
export function yieldInterval(env: Env = process.env): number | undefined {
  const raw = setting(env, 'TUGBOAT_YIELD_INTERVAL');
  if (raw === undefined) return undefined;
  if (!/^\d{1,9}$/.test(raw)) throw new UsageError(`TUGBOAT_YIELD_INTERVAL: invalid count ${JSON.stringify(raw)} (0 for none, else e.g. 10000)`);
  return Number(raw);
}

/** TUGBOAT_LAYER_LIMITS as given (the CLI parses it like --layer-limits). */
export function envLayerLimits(env: Env = process.env): string | undefined {
  return setting(env, 'TUGBOAT_LAYER_LIMITS');
}

/** TUGBOAT_RM_WATCHER=off: `tugboat run --rm` starts no watcher (the next command that writes collects instead). */
export function rmWatcherEnabled(env: Env = process.env): boolean {
  return setting(env, 'TUGBOAT_RM_WATCHER') !== 'off';
}

/** TUGBOAT_TEST_PAUSE_AT: the phase at which a command stops itself, for the fault tests (src/test-pause.ts). */
export function testPausePhase(env: Env = process.env): string | undefined {
  return setting(env, 'TUGBOAT_TEST_PAUSE_AT');
}

/** TUGBOAT_LOG_LEVEL as given (the logger checks it). */
export function envLogLevel(env: Env = process.env): string | undefined {
  return setting(env, 'TUGBOAT_LOG_LEVEL');
}

/** Where the shim makes its private temp dirs (console sockets, exec process files). */
export function runtimeTmpDir(env: Env = process.env): string {
  return setting(env, 'XDG_RUNTIME_DIR') ?? tmpdir();
}

/** containerd's ttrpc address for events: TTRPC_ADDRESS, else `<address>.ttrpc`. */
export function ttrpcAddress(containerdAddress: string, env: Env = process.env): string {
  return setting(env, 'TTRPC_ADDRESS') ?? `${containerdAddress}.ttrpc`;
}

/**
 * Transpiled Wasm components, by sha256: `<root>/components`. Persistent on
 * purpose (/run is a tmpfs and a transpile costs ~0.3–1 s), and shared by all
 * three front ends: the shim and the OCI CLI have no root of their own and use
 * the default data root.
 */
export function componentCacheDir(root: string = dataRoot()): string {
  return join(root, 'components');
}

/** `inner` is `outer` or below it (both absolute and normalised). */
function within(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith('/') ? outer : `${outer}/`);
}

/**
 * runc's `--root` as runc uses it: made absolute against the working
 * directory (runc's filepath.Abs), default /run/runc. Refused (status 2): a
 * root with control characters, and one inside Tugboat's state dir, where
 * runc's state would mix with the derived bundles.
 */
export function ociRuncRoot(explicit: string | undefined, env: Env = process.env): string {
  const raw = explicit ?? DEFAULT_RUNC_ROOT;
  if (/[\u0000-\u001f\u007f]/.test(raw)) throw new UsageError(`--root: invalid runc root ${JSON.stringify(raw)} (control characters)`);
  const root = resolve(raw);
  const state = stateDir(env);
  if (within(root, state)) throw new UsageError(`--root ${raw}: runc's state cannot live inside Tugboat's state dir ${state}`);
  return root;
}

/**
 * The directory runc keeps container `id` in, under a root from
 * ociRuncRoot, refused when it is Tugboat's state dir or data root or lies
 * above either: runc's own `delete` of a container it does not know removes
 * that directory whole (`--root /run delete tugboat` would wipe /run/tugboat).
 */
export function ociRuncContainerDir(runcRoot: string, id: string, env: Env = process.env): string {
  const dir = join(runcRoot, checkContainerId(id, 'container id'));
  for (const ours of [stateDir(env), dataRoot(undefined, env)]) {
    if (within(ours, dir)) throw new UsageError(`--root ${runcRoot} with container ${id} names ${dir}, which holds Tugboat's ${ours}; refusing`);
  }
  return dir;
}

/** The key of a runc root among the derived bundles: `%` as `%25`, then `/` as `%` (one key per root). */
export function runcRootKey(runcRoot: string): string {
  return runcRoot.replaceAll('%', '%25').replaceAll('/', '%');
}

/**
 * The OCI CLI's derived bundle of a Wasm container:
 * `<state>/bundles/<key of the runc root>/<id>`, from a validated runc root
 * (ociRuncRoot) and a validated id only. bin/tugboat derives the same path
 * in sh (to hand `delete` of a Linux container straight to runc), and makes
 * the same refusals: keep the two in step (test/integration/oci-cli.test.ts
 * checks them against each other).
 */
export function ociDerivedBundleDir(runcRoot: string | undefined, id: string, env: Env = process.env): string {
  const root = ociRuncRoot(runcRoot, env);
  ociRuncContainerDir(root, id, env);
  return join(stateDir(env), 'bundles', runcRootKey(root), id);
}

/** The shim's derived bundle of a Wasm container, inside containerd's bundle. */
export function shimDerivedBundleDir(bundle: string): string {
  return join(bundle, SHIM_DERIVED_BUNDLE);
}

/** A pod host's bundle (its spec and an empty root): `<state>/pods/<pod host id>`. */
export function podHostDir(id: string, env: Env = process.env): string {
  return join(stateDir(env), 'pods', id);
}
