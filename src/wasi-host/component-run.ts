// The guest's thread for a command component (bundled on its own as
// dist/host/component.mjs, so that preview1 starts never load the shim, which
// starts its IO worker as soon as it is imported). HTTP components are served
// by http/ instead.
//
// The component was transpiled by jco outside the container (see
// src/linux-runtime/component-cache.ts) and its cache entry is mounted
// read-only at config.component.dir. Its imports are set up for the guest by
// component-shim.ts: its files are Tugboat's own wasi:filesystem on the
// kernel-resolved host (./p2/), the rest is @bytecodealliance/preview2-shim's
// (never its filesystem).
import { parentPort } from 'node:worker_threads';
import { componentOutcome } from './component-outcome.js';
import { componentShim, loadComponent } from './component-shim.js';
import type { GuestConfig } from './guest-config.js';
import type { GuestOutcome } from './outcome.js';

export interface ComponentWorkerInput {
  modulePath: string;
  config: GuestConfig;
}

/** The `run` function of an instance's wasi:cli/run export. */
export function runExport(instance: Record<string, unknown>): (() => unknown) | undefined {
  for (const [name, value] of Object.entries(instance)) {
    if (!/^(wasi:cli\/)?run(@|$)/.test(name) || typeof value !== 'object' || value === null) continue;
    const run = (value as { run?: unknown }).run;
    if (typeof run === 'function') return run as () => unknown;
  }
  return undefined;
}

async function runCommand(input: ComponentWorkerInput): Promise<GuestOutcome> {
  let imports: Record<string, unknown>;
  try {
    imports = componentShim(input.config).getImportObject();
  } catch (err) {
    // As for a core module: the guest's directories (or stdio) cannot be set up.
    return { kind: 'error', message: `cannot set up the guest: ${(err as Error).message ?? String(err)}` };
  }
  let instance: Record<string, unknown>;
  try {
    instance = await loadComponent(input.config, imports);
  } catch (err) {
    return { kind: 'link', message: `cannot instantiate component: ${(err as Error).message ?? String(err)}` };
  }
  return runCommandInstance(instance);
}

/** Runs an instance's wasi:cli/run; the guest's fate. */
export async function runCommandInstance(instance: Record<string, unknown>): Promise<GuestOutcome> {
  const run = runExport(instance);
  if (!run) return { kind: 'link', message: 'component exports no wasi:cli/run (not a command component)' };
  try {
    await run();
    return componentOutcome(undefined, true);
  } catch (err) {
    return componentOutcome(err, false);
  }
}

export function runComponentWorker(): void {
  parentPort?.once('message', (input: ComponentWorkerInput) => {
    void runCommand(input).then(
      (result) => parentPort?.postMessage(result),
      (err: unknown) => parentPort?.postMessage({ kind: 'error', message: (err as Error).message ?? String(err) } satisfies GuestOutcome),
    );
  });
}
