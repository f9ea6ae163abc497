// Where a shim listens (containerd 1.6 runtime/v2/shim/util_unix.go):
// unix:///run/containerd/s/<hex(sha256(<containerd address>/<ns>/<group>))>,
// and the grouping key from the bundle's annotations.
import { renameSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';

export const SOCKET_DIR = '/run/containerd/s';
export const GROUP_ANNOTATIONS = ['io.containerd.runc.v2.group', 'io.kubernetes.cri.sandbox-id'] as const;

/** First grouping annotation present, else the task id. */
export function groupingKey(id: string, annotations: Record<string, string> | undefined): string {
  for (const k of GROUP_ANNOTATIONS) {
    const v = annotations?.[k];
    if (v) return v;
  }
  return id;
}

export function socketAddress(containerdAddress: string, namespace: string, group: string, dir = SOCKET_DIR): string {
  // filepath.Join cleans the path, as Go does
  const key = posix.join(containerdAddress, namespace, group);
  // crypto is loaded here, not with the module: `shim delete` reads addresses, never makes one.
  return `unix://${join(dir, process.getBuiltinModule('node:crypto').createHash('sha256').update(key).digest('hex'))}`;
}

export function socketPath(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

/** Write <bundle>/address atomically (.address then rename), as WriteAddress does. */
export function writeAddress(bundle: string, address: string): void {
  const tmp = join(bundle, '.address');
  writeFileSync(tmp, address);
  renameSync(tmp, join(bundle, 'address'));
}
