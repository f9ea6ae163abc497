// The thread of one command component guest in a shared host (bundled as
// dist/host/hosted-component.mjs; the host's side is shared/hosted-component.ts).
// An HTTP component guest is served by handler threads of ./http/ instead
// (shared/hosted-http-component.ts).
//
// jco's glue enters the guest's core modules from JavaScript, and a core
// module calls another through JavaScript frames: JSPI cannot suspend there,
// so a component cannot share a thread with other guests the way a preview1
// module does. Each component guest gets this thread: the kernel schedules
// it beside the host's, `worker.terminate()` ends it even while it spins, and
// pause waits here, at the yield points of its core modules (shared/cores.ts).
// Its core modules were instrumented and compiled by the host's cache (shared
// by every guest with the same component) and arrive here compiled.
//
// What the guest sees: shared/guest-imports.ts; the host's network.
import { parentPort, workerData } from 'node:worker_threads';
import { adoptThreadGate } from '../thread-gate.js';
import { componentOutcome } from './component-outcome.js';
import { runExport } from './component-run.js';
import type { GuestOutcome } from './outcome.js';
import type { HostedComponentInput } from './shared/component-protocol.js';
import { coreModuleOf, loadGlue } from './shared/component-glue.js';
import { Cores } from './shared/cores.js';
import { hostedGuestImports } from './shared/guest-imports.js';

/** The guest's ending, with a trap after a refused grow counted as running out of memory. */
function outcome(cores: Cores, thrown: unknown, returned: boolean): GuestOutcome {
  const o = componentOutcome(thrown, returned);
  return o.kind === 'trap' && cores.growRefused ? { kind: 'oom' } : o;
}

async function runCommand(input: HostedComponentInput, cores: Cores): Promise<GuestOutcome> {
  let instance: Record<string, unknown>;
  try {
    const instantiate = await loadGlue(input.glue);
    instance = await instantiate(coreModuleOf(input.modules), hostedGuestImports(input), cores.instantiate);
  } catch (err) {
    if (cores.growRefused) return { kind: 'oom' };
    return { kind: 'link', message: `cannot instantiate component: ${(err as Error).message ?? String(err)}` };
  }
  const run = runExport(instance);
  if (!run) return { kind: 'link', message: 'component exports no wasi:cli/run (not a command component)' };
  try {
    await run();
    return outcome(cores, undefined, true);
  } catch (err) {
    return outcome(cores, err, false);
  }
}

// First: no terminate may land while this thread loads koffi (thread-gate.ts).
adoptThreadGate(workerData);

// A warning Node prints from this thread (an experimental API, a descriptor
// closed behind its back) would land on the stderr of whoever hosts us,
// which may be the guest's own (`tugboat run --isolation process`).
process.removeAllListeners('warning');

parentPort?.once('message', (input: HostedComponentInput) => {
  const cores = new Cores(new Int32Array(input.ctl));
  const run: Promise<GuestOutcome> =
    input.world === 'http' ? Promise.resolve({ kind: 'error', message: 'an HTTP component is served by handler threads, not this one' }) : runCommand(input, cores);
  void run.then(
    (result) => parentPort?.postMessage(result),
    (err: unknown) => parentPort?.postMessage({ kind: 'error', message: (err as Error).message ?? String(err) } satisfies GuestOutcome),
  );
});
