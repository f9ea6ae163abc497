// Small pure edits applied to a runtime spec by `tugboat run`. Each returns a
// new spec; none touches anything the edit is not about.
import type { Mount, Spec } from '../oci/runtime-spec.js';

export interface Volume {
  source: string;
  destination: string;
  readonly: boolean;
}

export type NetworkMode = 'none' | 'host';

export function withHostname(spec: Spec, hostname: string): Spec {
  return { ...spec, hostname };
}

export function withCgroupsPath(spec: Spec, path: string): Spec {
  return { ...spec, linux: { ...spec.linux, cgroupsPath: path } };
}

/** A hard memory cap with no extra swap, so exceeding it means the OOM killer (137). */
export function withMemoryLimit(spec: Spec, bytes: number): Spec {
  const resources = spec.linux?.resources ?? {};
  return {
    ...spec,
    linux: { ...spec.linux, resources: { ...resources, memory: { ...resources.memory, limit: bytes, swap: bytes } } },
  };
}

export function withNetwork(spec: Spec, mode: NetworkMode, hostFiles: { resolvConf: boolean; hosts: boolean }): Spec {
  const namespaces = spec.linux?.namespaces ?? [];
  if (mode === 'none') {
    const has = namespaces.some((n) => n.type === 'network');
    return has ? spec : { ...spec, linux: { ...spec.linux, namespaces: [...namespaces, { type: 'network' }] } };
  }
  const mounts: Mount[] = [];
  if (hostFiles.resolvConf) mounts.push(bindMount('/etc/resolv.conf', '/etc/resolv.conf', true));
  if (hostFiles.hosts) mounts.push(bindMount('/etc/hosts', '/etc/hosts', true));
  return {
    ...spec,
    mounts: [...(spec.mounts ?? []), ...mounts],
    linux: { ...spec.linux, namespaces: namespaces.filter((n) => n.type !== 'network') },
  };
}

export function bindMount(source: string, destination: string, readonly: boolean): Mount {
  return { destination, type: 'bind', source, options: ['rbind', 'rprivate', ...(readonly ? ['ro'] : [])] };
}

export function withVolumes(spec: Spec, volumes: readonly Volume[]): Spec {
  if (volumes.length === 0) return spec;
  return { ...spec, mounts: [...(spec.mounts ?? []), ...volumes.map((v) => bindMount(v.source, v.destination, v.readonly))] };
}

export function withTerminal(spec: Spec, terminal: boolean): Spec {
  if (!spec.process) return spec;
  return { ...spec, process: { ...spec.process, terminal } };
}

export function withAnnotations(spec: Spec, annotations: Record<string, string>): Spec {
  return { ...spec, annotations: { ...spec.annotations, ...annotations } };
}
