// The pod host: one Tugboat host process per shim group (a Kubernetes pod, or
// a group of ctr containers) at the `pod` isolation level, the init of a runc
// container that holds the group's network, IPC and UTS namespaces, sits in a
// cgroup under the pod's and runs under the default seccomp profile. Every
// Wasm container of the group is a guest here: its root directory and stdio
// arrive as descriptors from the shim (pod-protocol.ts), so no guest's files
// are reachable by path from this container, and each guest resolves paths
// beneath its own root only.
//
// Its life is the shim's connection: when the shim goes away (the group is
// done, or the shim died), so does the host and every guest in it.
import { closeSync } from 'node:fs';
import * as net from 'node:net';
import { kindOf } from '../errors.js';
import { sys } from './preview1/sys.js';
import { LocalHost, type GuestSpec } from './shared/local-host.js';
import { CONTROL_FD, FDS_FD, lineReader, type HostMessage, type Request, type WireGuest } from './shared/pod-protocol.js';

// Component guests run on threads of their own, from the bundles beside this one.
// Its runc container's seccomp profile is WASM_HOST_SECCOMP (linux-runtime/pod-host-spec.ts).
const host = new LocalHost({ componentWorker: new URL('./hosted-component.mjs', import.meta.url), httpWorker: new URL('./http-worker.mjs', import.meta.url), userfaultfd: true });
const control = new net.Socket({ fd: CONTROL_FD, readable: true, writable: true });

function send(m: HostMessage): void {
  control.write(`${JSON.stringify(m)}\n`);
}

function say(message: string): void {
  process.stderr.write(`tugboat pod host: ${message}\n`);
}

/** The descriptors sent ahead of a create request (fd 4); they must be there already. */
function takeFds(n: number): number[] {
  if (n === 0) return [];
  const got = sys().recvFds(FDS_FD, n);
  if (!got) throw new Error(`expected ${n} descriptors from the shim, none queued`);
  if (got.fds.length !== n) {
    for (const fd of got.fds) closeSync(fd);
    throw new Error(`expected ${n} descriptors from the shim, got ${got.fds.length}`);
  }
  return got.fds;
}

function guestSpec(w: WireGuest, fds: number[]): GuestSpec {
  const fd = (i: number) => {
    if (i < 0) return -1;
    const v = fds[i];
    if (v === undefined) throw new Error(`descriptor index ${i} out of range`);
    return v;
  };
  const common = {
    args: w.args,
    env: w.env,
    rootFd: fd(w.root),
    cwd: w.cwd,
    ...(w.memoryLimit !== undefined ? { memoryLimit: w.memoryLimit } : {}),
    stdio: [fd(w.stdio[0]), fd(w.stdio[1]), fd(w.stdio[2])] as [number, number, number],
  };
  if (w.component) {
    const c = w.component;
    const { dir: _dir, ...served } = c;
    return { ...common, preopens: w.preopens ?? [], componentFd: fd(c.dir), ...served };
  }
  return { ...common, ...(w.module !== undefined ? { module: w.module } : {}), ...(w.preopens ? { preopens: w.preopens } : {}) };
}

async function create(req: Extract<Request, { op: 'create' }>, fds: number[]): Promise<void> {
  try {
    await host.create(req.key, guestSpec(req.guest, fds));
  } finally {
    // The guest holds its own duplicates.
    for (const fd of fds) closeSync(fd);
  }
  void host.ended(req.key).then((e) => send({ event: 'ended', key: req.key, status: e.status, oom: e.oom, at: e.at }));
}

/** One request; its descriptors are taken before anything waits, so they pair with their line. */
function handle(raw: unknown): void {
  const req = raw as Request;
  let fds: number[] = [];
  let work: Promise<Partial<Extract<HostMessage, { ok: true }>> | void>;
  try {
    if (req.op === 'create') fds = takeFds(req.fds);
    work = dispatch(req, fds);
  } catch (err) {
    work = Promise.reject(err);
  }
  work.then(
    (extra) => send({ id: req.id, ok: true, ...(extra ?? {}) }),
    (err: unknown) => send({ id: req.id, ok: false, error: err instanceof Error ? err.message : String(err), kind: kindOf(err) }),
  );
}

async function dispatch(req: Request, fds: number[]): Promise<Partial<Extract<HostMessage, { ok: true }>> | void> {
  switch (req.op) {
    case 'create':
      return create(req, fds);
    case 'start':
      return host.start(req.key);
    case 'kill':
      return host.kill(req.key, req.signal);
    case 'pause':
      return host.pause(req.key);
    case 'resume':
      return host.resume(req.key);
    case 'stats':
      return { stats: await host.stats(req.key) };
    case 'limit':
      return host.setMemoryLimit(req.key, req.bytes ?? undefined);
    case 'delete':
      return host.delete(req.key);
    case 'usage':
      return { usage: await host.usage() };
    default:
      throw new Error(`unknown request ${JSON.stringify((req as { op?: unknown }).op)}`);
  }
}

// A stray error in one guest's callbacks must not take every guest down.
process.on('unhandledRejection', (err) => say(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));
process.on('uncaughtException', (err) => say(`uncaught exception: ${err.stack ?? String(err)}`));
control.on('data', lineReader(handle, (line) => say(`bad request line: ${line}`)));
control.on('error', (err) => say(`control socket: ${err.message}`));
// The shim is gone: so is this host, and every guest with it.
control.on('close', () => process.exit(0));
send({ event: 'ready', pid: process.pid });
