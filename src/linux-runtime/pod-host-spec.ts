// The runtime spec of a pod host: the runc container that one shim group's
// Wasm containers share at `pod` isolation. It is made from the first Wasm
// container's spec, and keeps what makes the group a pod:
//   - the network, IPC and UTS namespaces that container joins (the pod
//     sandbox's, under CRI) — or new ones, shared by the group, where it
//     would have made its own (grouped ctr containers);
//   - a cgroup under the same parent as the container's (the pod's), named
//     after the pod host;
// and gets what any container gets: its own pid and mount namespaces,
// containerd's default capabilities, no_new_privileges, Docker's default
// seccomp profile with userfaultfd in user mode only (WASM_HOST_SECCOMP:
// resets of large guest memories), the usual masked paths. Its root is an empty directory,
// read-only, with the runtime kit at /.tugboat; it sees no guest's files by
// path: each guest's root arrives as a descriptor.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { defaultSpec, type LinuxNamespace, type POSIXRlimit, type Spec } from '../oci/runtime-spec.js';
import { withWasmHostSeccomp } from '../oci/seccomp.js';
import { hostArgv, type Kit } from './kit.js';
import { kitMount } from './wasm-bundle.js';

export const POD_HOST_ANNOTATION = 'io.tugboat.pod-host';

/** The group's namespaces, as the first container has them: joined (path), new, or the host's (absent). */
const SHARED: readonly LinuxNamespace['type'][] = ['network', 'ipc', 'uts'];

/** A cgroup beside the container's: same parent (the pod's), the pod host's own name. */
export function podHostCgroupsPath(containerPath: string | undefined, id: string): string {
  if (containerPath === undefined || containerPath === '') return `/tugboat-pods/${id}`;
  // systemd driver: "slice:prefix:name"
  const parts = containerPath.split(':');
  if (!containerPath.startsWith('/') && parts.length === 3) return `${parts[0]}:${parts[1]}:${id}`;
  return posix.join(posix.dirname(containerPath), id);
}

/** Our own RLIMIT_NOFILE hard limit: a pod host holds a few descriptors per guest, hundreds of guests. */
function nofileHardLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const hard = line?.trim().split(/\s+/)[4];
    return hard === undefined || hard === 'unlimited' ? undefined : Number(hard);
  } catch {
    return undefined;
  }
}

export function podHostSpec(first: Spec, o: { id: string; kit: Kit; rootfs: string }): Spec {
  const spec = defaultSpec();
  const own = first.linux?.namespaces ?? [];
  const namespaces: LinuxNamespace[] = [{ type: 'pid' }, { type: 'mount' }];
  for (const type of SHARED) {
    const ns = own.find((n) => n.type === type);
    if (ns) namespaces.push(ns.path ? { type, path: ns.path } : { type });
  }
  const newUts = namespaces.some((n) => n.type === 'uts' && !n.path);
  const nofile = nofileHardLimit();
  const rlimits: POSIXRlimit[] = nofile ? [{ type: 'RLIMIT_NOFILE', hard: nofile, soft: nofile }] : [];
  const podHost = o.kit.podHost;
  if (!podHost) throw new Error(`the runtime kit at ${o.kit.dir} has no pod host (rebuild it: make build)`);
  const made: Spec = {
    ...spec,
    root: { path: o.rootfs, readonly: true },
    process: { ...spec.process!, args: hostArgv(o.kit, true, podHost), env: [], rlimits },
    hostname: newUts ? (first.hostname ?? '') : '',
    mounts: [...(spec.mounts ?? []).filter((m) => m.type !== 'mqueue' && m.type !== 'cgroup' && m.destination !== '/sys'), kitMount(o.kit)],
    linux: {
      ...spec.linux,
      namespaces,
      cgroupsPath: podHostCgroupsPath(first.linux?.cgroupsPath, o.id),
    },
    annotations: { [POD_HOST_ANNOTATION]: 'true' },
  };
  return withWasmHostSeccomp(made);
}
