// The `pod` isolation level: the Wasm containers of one shim group (a
// Kubernetes pod, or an io.containerd.runc.v2.group of ctr containers) are
// guests of one pod host, a Tugboat host process in a runc container that
// holds the group's namespaces and cgroup (pod-host-spec.ts). What confines a
// guest: runc around the pod (the pod is Kubernetes' unit of trust) and, in
// the host, the Wasm sandbox, kernel-resolved paths beneath the guest's own
// root (a descriptor, nothing by path) and its memory limit.
//
// The host is started by the group's first `pod` container and stopped with
// its last one; if it dies, its containers end with 137 and the next one
// starts a new host.
import { UsageError } from '../errors.js';
import type { Spec } from '../oci/runtime-spec.js';
import type { EngineSettings, LifecycleContext, PreparedWorkload, WasmEngine, WasmPrepareInput } from './engine.js';
import { hostedWorkload, prepareHosted } from './hosted-workload.js';
import { loadKit, type Kit } from './kit.js';
// The client (crypto, worker threads, the local host) loads when a pod host starts:
// select-engine.ts imports this module for every command that names the engines.
import type { PodHostClient } from './pod-host-client.js';

/** This shim's pod host (a shim serves one group). */
let current: PodHostClient | undefined;
let starting: Promise<PodHostClient> | undefined;

async function podHost(ctx: LifecycleContext, first: Spec, kit: Kit): Promise<PodHostClient> {
  for (;;) {
    if (current?.isAlive) {
      current.acquire();
      return current;
    }
    starting ??= import('./pod-host-client.js').then(({ PodHostClient }) => PodHostClient.start({
      runc: { binary: ctx.runc.cfg.binary, root: ctx.runc.cfg.root, ...(ctx.runc.cfg.systemdCgroup ? { systemdCgroup: true } : {}) },
      reaper: ctx.reaper,
      kit,
      first,
      onGone: () => {
        if (current && !current.isAlive) current = undefined;
      },
    }))
      .then((c) => (current = c))
      .finally(() => (starting = undefined));
    await starting;
  }
}

/** The shim's pod host, if one runs (for tests and the shim's shutdown). */
export function currentPodHost(): PodHostClient | undefined {
  return current?.isAlive ? current : undefined;
}

async function prepare(input: WasmPrepareInput): Promise<PreparedWorkload> {
  const kit = loadKit(input.settings.kitDir);
  const { spec, preopens, component } = await prepareHosted(input, 'pod');
  return hostedWorkload({
    workload: input.workload,
    isolation: 'pod',
    spec,
    rootfs: input.rootfs,
    preopens,
    ...(component ? { component } : {}),
    host: (ctx, s) => podHost(ctx, s, kit),
    runForeground: () => Promise.reject(new UsageError('isolation pod runs under containerd (a shim group); use container or process')),
  });
}

function describe(settings: EngineSettings): string {
  try {
    return loadKit(settings.kitDir).podHost ? 'pod: one host per shim group, in a runc container' : 'pod: not in this kit (rebuild it)';
  } catch {
    return 'pod: kit not built';
  }
}

export const podEngine: WasmEngine = { level: 'pod', prepare, reopen: () => undefined, describe };
