// Plumbing shared by the containerd-shim-tugboat-v1 integration tests: the
// fixture images in a containerd namespace, and what a namespace leaves in
// the host's cgroup tree and runc root.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecResult } from './daemons/process.js';
import { FIXTURES } from './helpers.js';

type Ctr = (args: string[]) => Promise<ExecResult>;

/** tugboat.local/wasm:<tags> (the fixture layout, all platforms) and tugboat.local/busybox:latest. */
export async function importFixtureImages(ctr: Ctr, tmp: string): Promise<void> {
  const wasmTar = join(tmp, 'wasm.tar');
  execFileSync('tar', ['-C', join(FIXTURES, 'wasm'), '-cf', wasmTar, '.']);
  const w = await ctr(['images', 'import', '--all-platforms', '--base-name', 'tugboat.local/wasm', wasmTar]);
  if (w.code !== 0) throw new Error(`import wasm: ${w.stderr}`);
  const b = await ctr(['images', 'import', join(FIXTURES, 'busybox.docker.tar')]);
  if (b.code !== 0) throw new Error(`import busybox: ${b.stderr}`);
}

/** Cgroup dirs left for `ids` under the namespace's parent (ctr's cgroupsPath is /<ns>/<id>). */
export function cgroupsLeft(ns: string, ids: string[]): string[] {
  return readdirSync('/sys/fs/cgroup').flatMap((ctrl) => ids.map((id) => join('/sys/fs/cgroup', ctrl, ns, id)).filter((d) => existsSync(d)));
}

/** The namespace's cgroup parents and runc root, once empty (the harness leaves them while another containerd runs). */
export function removeNamespaceDirs(ns: string): void {
  for (const dir of [...readdirSync('/sys/fs/cgroup').map((ctrl) => join('/sys/fs/cgroup', ctrl, ns)), join('/run/containerd/runc', ns)]) {
    try {
      rmdirSync(dir);
    } catch {
      // absent, or still in use
    }
  }
}
