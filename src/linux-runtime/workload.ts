// The one path from "a spec and a root filesystem" to "something that can
// run", for all three front ends: detection (once), then for Wasm the engine
// of the container's isolation level, which derives what it needs into the
// home the front end chose. The front ends decide only where files go and
// when to remove them (PreparedWorkload.remove).
import { resolve } from 'node:path';
import { componentCacheDir, dataRoot, kitDir } from '../defaults.js';
import { log } from '../log.js';
import { detectWorkload } from '../oci/detect.js';
import type { Spec } from '../oci/runtime-spec.js';
import type { Platform } from '../oci/types.js';
import type { EngineSettings, PreparedWorkload } from './engine.js';
import { runcWorkload } from './runc-workload.js';
import { isolationOf, registeredEngines, wasmEngineFor, type IsolationChoice } from './select-engine.js';

export { removeDerivedBundle as removeWorkloadHome } from './derived-bundle.js';

export interface WorkloadInput {
  /** Container id (for logs). */
  id: string;
  /** The caller's spec. */
  spec: Spec;
  /** The caller's bundle: relative paths in `spec` are relative to it, and a Linux container runs from it. */
  bundle: string;
  /** The root filesystem on the host; default: the spec's root.path in `bundle`. */
  rootfs?: string;
  /** What the front end knows about the image (detection rules 2 and 3). */
  image?: { name?: string; platform: Platform; wasmLayer: boolean };
  /** Where an engine may derive files for this container (e.g. a derived bundle). */
  home: string;
  settings: EngineSettings;
  /** How the front end picks the isolation level (default: `container`, any level allowed). */
  isolation?: IsolationChoice;
  /** The front end's own edits of the spec for a Wasm container only (its defaults for Tugboat's host: `tugboat run`'s seccomp). */
  wasmSpec?: (spec: Spec) => Spec;
}

/** Engine settings from the defaults (src/defaults.ts), with a front end's explicit --kit / --root. */
export function engineSettings(explicit: { kitDir?: string | undefined; root?: string | undefined } = {}): EngineSettings {
  return { kitDir: kitDir(explicit.kitDir), componentCacheDir: componentCacheDir(dataRoot(explicit.root)) };
}

export async function prepareWorkload(input: WorkloadInput): Promise<PreparedWorkload> {
  const { spec, id } = input;
  const rootfs = input.rootfs ?? resolve(input.bundle, spec.root?.path ?? 'rootfs');
  const annotations = spec.annotations ?? {};
  // Bad input first: an unknown or unavailable level fails before anything is looked at.
  const level = isolationOf(annotations, input.isolation);
  const workload = detectWorkload({
    annotations,
    args: spec.process?.args ?? [],
    env: spec.process?.env ?? [],
    cwd: spec.process?.cwd ?? '/',
    rootfs,
    ...(input.image ? { image: { platform: input.image.platform, wasmLayer: input.image.wasmLayer } } : {}),
  });
  log().info({ id, workload: { kind: workload.kind, reason: workload.reason }, entrypoint: workload.entrypoint, image: input.image }, 'workload detected');
  if (workload.kind === 'linux') return runcWorkload({ workload, isolation: undefined, spec, bundle: input.bundle });
  const engine = wasmEngineFor(level, input.isolation);
  const hostSpec = input.wasmSpec ? input.wasmSpec(spec) : spec;
  return engine.prepare({ id, workload, spec: hostSpec, bundle: input.bundle, rootfs, home: input.home, settings: input.settings });
}

/** The Wasm workload an earlier process prepared in `home`, or undefined (nothing there: a Linux container). */
export function reopenWorkload(home: string, settings: EngineSettings): PreparedWorkload | undefined {
  for (const engine of registeredEngines()) {
    const w = engine.reopen(home, settings);
    if (w) return w;
  }
  return undefined;
}
