// The `container` isolation level: each Wasm container is a runc container
// of its own whose init is the Tugboat WASI host (started from the runtime
// kit, bind-mounted read-only), and every process exec'd into it is one more
// host running one more guest, in the same namespaces, cgroup and root.
//
// It derives a bundle (home/config.json) from the caller's spec; the caller's
// bundle is never modified.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { log } from '../log.js';
import type { Workload } from '../oci/detect.js';
import type { Process, Spec } from '../oci/runtime-spec.js';
import { anchorToBundle } from './bundle-spec.js';
import { removeDerivedBundle, writeDerivedBundle } from './derived-bundle.js';
import type { EngineSettings, PreparedWorkload, WasmEngine, WasmPrepareInput } from './engine.js';
import { loadKit, type Kit } from './kit.js';
import { parsePreopens, PREOPENS_ANNOTATION, withPreopenMounts } from './preopens.js';
import { runcWorkload } from './runc-workload.js';
import { guestOf, rewriteSpecForWasm, wasiBackendOf, wasmHostProcess, WORKLOAD_ANNOTATION, WORKLOAD_REASON_ANNOTATION, type GuestSettings, type WasmRewriteOptions } from './wasm-bundle.js';

interface Parts {
  workload: Workload;
  home: string;
  /** The derived spec. */
  spec: Spec;
  /** The guest's view of the container's process. */
  process: Process;
  guest: GuestSettings;
  kit: () => Kit;
}

function prepared(parts: Parts): PreparedWorkload {
  return runcWorkload({
    workload: parts.workload,
    isolation: 'container',
    spec: parts.spec,
    process: parts.process,
    bundle: parts.home,
    execProcess: (p: Process) => wasmHostProcess(p, parts.kit(), parts.guest),
    remove: () => removeDerivedBundle(parts.home),
  });
}

async function prepare(input: WasmPrepareInput): Promise<PreparedWorkload> {
  const { workload } = input;
  if (!input.spec.process) throw new ConfigError('a Wasm container needs a process to run (process.args)');
  // Bad input first, before anything is transpiled or written.
  const preopens = parsePreopens(input.spec.annotations?.[PREOPENS_ANNOTATION]);
  const backend = wasiBackendOf(input.spec.annotations);
  const guest: GuestSettings = { preopens, ...(backend ? { backend } : {}) };
  const kit = loadKit(input.settings.kitDir);
  const spec = withPreopenMounts(anchorToBundle(input.spec, input.bundle), input.rootfs, preopens);
  // The transpiler's plumbing (child processes, hashes) is loaded for components only.
  const c = workload.kind === 'wasm-component' ? await (await import('./component-cache.js')).componentForWorkload(input) : {};
  const derived = rewriteSpecForWasm(spec, kit, {
    ...guest,
    ...(workload.entrypoint !== undefined ? { module: workload.entrypoint } : {}),
    reason: workload.reason,
    ...c,
  });
  await writeDerivedBundle(input.home, derived);
  log().debug({ id: input.id, home: input.home, preopens }, 'derived bundle written');
  return prepared({
    workload: { ...workload, ...(c.component ? { world: c.component.world } : {}) },
    home: input.home,
    spec: derived,
    process: input.spec.process,
    guest,
    kit: () => kit,
  });
}

function reopen(home: string, settings: EngineSettings): PreparedWorkload | undefined {
  const file = join(home, 'config.json');
  if (!existsSync(file)) return undefined;
  const spec = JSON.parse(readFileSync(file, 'utf8')) as Spec;
  const guest = guestOf(spec.process);
  if (!spec.process || !guest) return undefined;
  const annotations = spec.annotations ?? {};
  let kit: Kit | undefined;
  return prepared({
    workload: {
      kind: annotations[WORKLOAD_ANNOTATION] === 'wasm-component' ? 'wasm-component' : 'wasm-module',
      reason: annotations[WORKLOAD_REASON_ANNOTATION] ?? '',
      ...(guest.module !== undefined ? { entrypoint: guest.module } : {}),
    },
    home,
    spec,
    process: { ...spec.process, args: guest.args, env: guest.env },
    // "/" and "." are every guest's own; the rest are the container's.
    guest: { preopens: (guest.preopens ?? []).filter((p) => p.guest !== '/' && p.guest !== '.'), ...(guest.backend ? { backend: guest.backend } : {}) },
    kit: () => (kit ??= loadKit(settings.kitDir)),
  });
}

function describe(settings: EngineSettings): string {
  try {
    const k = loadKit(settings.kitDir);
    return `kit: ${k.dir} (node ${k.nodeVersion})`;
  } catch {
    return `kit: not built (${settings.kitDir})`;
  }
}

export const containerEngine: WasmEngine = { level: 'container', prepare, reopen, describe };
