// The guest's thread for a command component (bundled on its own as
// dist/host/component.mjs, so that preview1 starts never load the shim, which
// starts its IO worker as soon as it is imported). HTTP components are served
// by http/ instead.
//
// The component was transpiled by jco outside the container (see
// src/linux-runtime/component-cache.ts) and its cache entry is mounted
// read-only at config.component.dir. It runs with @bytecodealliance/preview2-shim
// as component-shim.ts sets it up for the guest.
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
function runExport(instance: Record<string, unknown>): (() => unknown) | undefined {
  for (const [name, value] of Object.entries(instance)) {
    if (!/^(wasi:cli\/)?run(@|$)/.test(name) || typeof value !== 'object' || value === null) continue;
    const run = (value as { run?: unknown }).run;
    if (typeof run === 'function') return run as () => unknown;
  }
  return undefined;
}

async function runCommand(input: ComponentWorkerInput): Promise<GuestOutcome> {
  let instance: Record<string, unknown>;
  try {
    instance = await loadComponent(input.config, componentShim(input.config).getImportObject());
  } catch (err) {
    return { kind: 'link', message: `cannot instantiate component: ${(err as Error).message ?? String(err)}` };
  }
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

runComponentWorker();
