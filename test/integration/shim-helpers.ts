// Plumbing shared by the containerd-shim-tugboat-v1 integration tests: the
// fixture images in a containerd namespace, what a namespace leaves in the
// host's cgroup tree and runc root, containerd's Tasks.Wait, and waiting for
// a container's init to handle a signal.
import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startContainerd, type ContainerdHandle } from './daemons/containerd.js';
import { sleep, type ExecResult } from './daemons/process.js';
import { FIXTURES, REPO } from './helpers.js';

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

/** Deletes every task (forced) and container of ctr's namespace. */
export async function removeAllContainers(ctr: Ctr): Promise<void> {
  const tasks = await ctr(['tasks', 'ls', '-q']);
  for (const id of tasks.stdout.split('\n').filter(Boolean)) await ctr(['tasks', 'delete', '--force', id]);
  const cs = await ctr(['containers', 'ls', '-q']);
  for (const id of cs.stdout.split('\n').filter(Boolean)) await ctr(['containers', 'rm', id]);
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

/**
 * A Wasm container's init is tini: it forwards a signal to the host once it
 * has started it (the host, with no handler, then ends by the signal's
 * default action). Only before that, as pid 1 of its namespace, could it
 * drop one. Waits for tini's child.
 */
export async function waitCatches(pid: number, _sig: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim() !== '') return;
    await sleep(50);
  }
  throw new Error(`pid ${pid} never started the WASI host`);
}

/**
 * containerd's Tasks.Wait over gRPC (ctr 1.6 has no `task wait`, and
 * `ctr task attach` deletes the task once it has waited): resolves with the
 * exit status containerd gets from the shim's Task.Wait.
 */
export function waitTask(address: string, namespace: string, id: string): Promise<number> {
  const client = new grpc.Client(`unix:${address}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('containerd-namespace', namespace);
  return new Promise<number>((resolve, reject) => {
    client.makeUnaryRequest(
      '/containerd.services.tasks.v1.Tasks/Wait',
      // WaitRequest{container_id = 1}; ids are < 128 bytes
      (req: string) => Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(req)]), Buffer.from(req)]),
      (buf: Buffer) => {
        // WaitResponse{exit_status = 1 (uint32 varint), exited_at = 2}
        let status = 0;
        if (buf[0] === 0x08) for (let i = 1, shift = 0; i < buf.length; i++, shift += 7) {
          status |= (buf[i]! & 0x7f) << shift;
          if (!(buf[i]! & 0x80)) break;
        }
        return status;
      },
      id,
      md,
      { deadline: Date.now() + 60_000 },
      (err, status) => {
        client.close();
        if (err || status === undefined) reject(err ?? new Error('no WaitResponse'));
        else resolve(status);
      },
    );
  });
}

/** A private containerd that starts the shim (bin/ first on its PATH), with the fixture images in one namespace. */
export interface ShimContainerd {
  readonly handle: ContainerdHandle;
  /** A temp dir of the test's own; the shim's state (TUGBOAT_ROOT, which it inherits from containerd) is under it. Gone after stop(). */
  readonly tmp: string;
  /** ctr in the namespace. */
  ctr(args: string[], timeoutMs?: number): Promise<ExecResult>;
  /**
   * Deletes every task (forced) and container, stops containerd (which kills
   * whatever still names its dir, unmounts, deletes runc state), then
   * removes the namespace's dirs and the temp dir, even when something
   * before failed.
   */
  stop(): Promise<void>;
}

/** Starts a ShimContainerd for namespace `ns`, its temp dir named from `tmpPrefix` (a path prefix, as mkdtemp takes). */
export async function startShimContainerd(ns: string, tmpPrefix: string): Promise<ShimContainerd> {
  const tmp = mkdtempSync(tmpPrefix);
  let handle: ContainerdHandle | undefined;
  const ctr = (args: string[], timeoutMs?: number): Promise<ExecResult> => handle!.ctr(['-n', ns, ...args], timeoutMs === undefined ? {} : { timeoutMs });
  const stop = async (): Promise<void> => {
    try {
      if (handle) {
        await removeAllContainers(ctr);
        await handle.stop();
      }
    } finally {
      removeNamespaceDirs(ns);
      rmSync(tmp, { recursive: true, force: true });
    }
  };
  try {
    // Kept private: the shim's component cache and state. containerd takes
    // its environment (the shims' too, a restart's too) when it starts, so
    // the variable is put back at once and nothing else in this process sees it.
    const savedRoot = process.env.TUGBOAT_ROOT;
    process.env.TUGBOAT_ROOT = join(tmp, 'root');
    try {
      handle = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
    } finally {
      if (savedRoot === undefined) delete process.env.TUGBOAT_ROOT;
      else process.env.TUGBOAT_ROOT = savedRoot;
    }
    await importFixtureImages(ctr, tmp);
  } catch (err) {
    await stop();
    throw err;
  }
  return { handle, tmp, ctr, stop };
}
