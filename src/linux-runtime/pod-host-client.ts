// The shim's side of a pod host (see src/wasi-host/pod-host.ts): it starts
// the host's runc container with two socketpairs preserved into it, speaks
// pod-protocol.ts to it, and is the GuestHost of every `pod` container of
// the shim's group. When the host dies (killed, crashed, OOM-killed) every
// guest in it has ended with 137, and the next container gets a new host.
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { podHostDir } from '../defaults.js';
import { RuntimeError, TugboatError, type ErrorKind } from '../errors.js';
import { log } from '../log.js';
import type { Spec } from '../oci/runtime-spec.js';
import type { HostedEnding, HostedStats } from '../wasi-host/shared/hosted-guest.js';
import { isComponentSpec, type GuestHost, type GuestSpec, type HostUsage } from '../wasi-host/shared/local-host.js';
import { servingOptions } from '../wasi-host/http/settings.js';
import { lineReader, type HostMessage, type Reply, type Request, type WireGuest } from '../wasi-host/shared/pod-protocol.js';
import { memoryCgroupDir, oomKillCount } from './cgroup-stats.js';
import type { Kit } from './kit.js';
import { podHostSpec } from './pod-host-spec.js';
import type { Reaper } from './reaper.js';
import { Runc, type RuncConfig } from './runc.js';
import { sendFds, socketPair } from './sys.js';

/** How long a new pod host may take to say it is ready (Node's start, on a loaded machine). */
const READY_TIMEOUT_MS = 60_000;

export interface PodHostStart {
  /** runc as the shim runs it (binary, root, cgroup driver); the pod host's own log goes to its directory. */
  runc: RuncConfig;
  reaper: Reaper;
  kit: Kit;
  /** The first Wasm container's spec: the group's namespaces and cgroup parent. */
  first: Spec;
  /** Called once the host is gone (stopped or dead). */
  onGone?: () => void;
}

/** A request the host refused: its error, with the kind it had there. */
class HostError extends TugboatError {}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

interface Pending {
  resolve(r: Extract<Reply, { ok: true }>): void;
  reject(e: Error): void;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** How much of a dead host's log the shim's log keeps: its last words (a V8 or libuv abort, an uncaught error). */
const LAST_WORDS_BYTES = 4096;

/** The end of `file` (at most LAST_WORDS_BYTES), or '' when there is none. */
function tailOf(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, LAST_WORDS_BYTES));
    const n = readSync(fd, buf, 0, buf.length, size - buf.length);
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

/** Pod hosts being removed (runc delete, then their directory): the shim waits for them before it exits. */
const teardowns = new Set<Promise<void>>();

/** Resolves once every pod host this process stopped or lost is removed (runc state and directory). */
export async function podHostTeardowns(): Promise<void> {
  while (teardowns.size > 0) await Promise.allSettled([...teardowns]);
}

export class PodHostClient implements GuestHost {
  private alive = true;
  private stopping = false;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly ends = new Map<string, Deferred<HostedEnding>>();
  private users = 0;
  private readonly oomBase: bigint;
  private readonly memCgroup: string | undefined;
  private readonly ready = deferred<void>();

  private constructor(
    readonly id: string,
    readonly pid: number,
    private readonly dir: string,
    private readonly control: net.Socket,
    private readonly fdSock: number,
    private readonly runc: Runc,
    private readonly o: PodHostStart,
  ) {
    this.memCgroup = memoryCgroupDir(pid);
    this.oomBase = oomKillCount(this.memCgroup);
    control.on('data', lineReader((m) => this.onMessage(m as HostMessage), (line) => log().warn({ line, id }, 'bad line from the pod host')));
    control.on('error', (err) => log().debug({ err, id }, 'pod host control socket'));
    control.on('close', () => this.gone('its control socket closed'));
    void o.reaper.track(pid).then((e) => {
      // The control socket usually closes first: the status is said on its own (the host's directory may be gone by now).
      if (!this.stopping) log().warn({ id, pid, status: e.status }, 'pod host exited');
      this.gone(`it exited with ${e.status}`);
    });
  }

  /** Starts a pod host for the group of `o.first`; resolves once it is ready to take guests. */
  static async start(o: PodHostStart): Promise<PodHostClient> {
    const id = `tugboat-pod-${randomBytes(6).toString('hex')}`;
    const dir = podHostDir(id);
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs, { recursive: true, mode: 0o755 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(podHostSpec(o.first, { id, kit: o.kit, rootfs })));
    const [ctlShim, ctlHost] = socketPair('stream');
    const [fdShim, fdHost] = socketPair('seqpacket');
    const logFd = openSync(join(dir, 'host.log'), 'a', 0o600);
    const runc = new Runc({ ...o.runc, log: join(dir, 'runc.json') });
    const closeHostEnds = () => {
      for (const fd of [ctlHost, fdHost, logFd]) {
        try {
          closeSync(fd);
        } catch {
          // closed
        }
      }
    };
    let pid: number;
    try {
      pid = await runc.create(id, dir, {
        pidFile: join(dir, 'init.pid'),
        io: { stdio: ['ignore', logFd, logFd, ctlHost, fdHost], onSpawned: closeHostEnds },
        preserveFds: 2,
      });
    } catch (err) {
      closeHostEnds();
      closeSync(ctlShim);
      closeSync(fdShim);
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const client = new PodHostClient(id, pid, dir, new net.Socket({ fd: ctlShim, readable: true, writable: true }), fdShim, runc, o);
    try {
      await runc.start(id);
      const timer = setTimeout(() => client.gone(`it was not ready within ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS);
      await Promise.race([client.ready.promise, client.ended('').then(() => undefined)]).finally(() => clearTimeout(timer));
      if (!client.alive) throw new RuntimeError(`the pod host ${id} did not start (see ${join(dir, 'host.log')})`);
    } catch (err) {
      await client.stop();
      throw err;
    }
    log().info({ id, pid }, 'pod host ready');
    return client;
  }

  private onMessage(m: HostMessage): void {
    if ('event' in m) {
      if (m.event === 'ready') this.ready.resolve();
      else if (m.event === 'ended') this.endOf(m.key).resolve({ status: m.status, oom: m.oom, at: m.at });
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.ok) p.resolve(m);
    else p.reject(new HostError(m.error, { kind: m.kind as ErrorKind }));
  }

  private endOf(key: string): Deferred<HostedEnding> {
    let d = this.ends.get(key);
    if (!d) this.ends.set(key, (d = deferred()));
    return d;
  }

  /** The host is gone: every guest in it has ended with 137 (an OOM if its cgroup says so). */
  private gone(why: string): void {
    if (!this.alive) return;
    this.alive = false;
    // Its log goes with its directory: what it said last is kept in the shim's.
    if (!this.stopping) log().warn({ id: this.id, why, hostLog: tailOf(join(this.dir, 'host.log')) }, 'pod host died: its containers end with 137');
    const oom = !this.stopping && oomKillCount(this.memCgroup) > this.oomBase;
    for (const d of this.ends.values()) d.resolve({ status: 137, oom, at: Date.now() });
    this.endOf('').resolve({ status: 137, oom, at: Date.now() });
    for (const p of this.pending.values()) p.reject(new RuntimeError(`the pod host ${this.id} is gone (${why})`));
    this.pending.clear();
    this.control.destroy();
    try {
      closeSync(this.fdSock);
    } catch {
      // closed
    }
    const teardown = this.runc
      .delete(this.id, { force: true })
      .catch((err: unknown) => log().debug({ err, id: this.id }, 'runc delete of the pod host'))
      .then(() => {
        try {
          rmSync(this.dir, { recursive: true, force: true });
        } catch (err) {
          log().warn({ err, dir: this.dir }, 'cannot remove the pod host directory');
        }
      });
    teardowns.add(teardown);
    void teardown.finally(() => teardowns.delete(teardown));
    this.o.onGone?.();
  }

  get isAlive(): boolean {
    return this.alive;
  }

  private request(req: WithoutId<Request>, fds: readonly number[] = []): Promise<Extract<Reply, { ok: true }>> {
    if (!this.alive) return Promise.reject(new RuntimeError(`the pod host ${this.id} is gone`));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        // The descriptors first: the host takes them when it reads the line.
        if (fds.length > 0) sendFds(this.fdSock, Buffer.from([0]), fds);
        this.control.write(`${JSON.stringify({ ...req, id })}\n`);
      } catch (err) {
        this.pending.delete(id);
        reject(err as Error);
      }
    });
  }

  /** This container uses the host (until release). */
  acquire(): void {
    this.users++;
  }

  /** A container is done with the host; the last one stops it. */
  release(): void {
    if (--this.users <= 0) void this.stop();
  }

  async create(key: string, spec: GuestSpec): Promise<void> {
    const fds: number[] = [spec.rootFd];
    const index = (fd: number) => (fd < 0 ? -1 : fds.push(fd) - 1);
    const guest: WireGuest = {
      args: spec.args,
      env: spec.env,
      cwd: spec.cwd,
      ...(spec.preopens ? { preopens: spec.preopens } : {}),
      ...(spec.memoryLimit !== undefined ? { memoryLimit: spec.memoryLimit } : {}),
      root: 0,
      stdio: [index(spec.stdio[0]), index(spec.stdio[1]), index(spec.stdio[2])],
    };
    if (isComponentSpec(spec)) {
      guest.component = { dir: index(spec.componentFd), entry: spec.entry, world: spec.world, ...(spec.port !== undefined ? { port: spec.port } : {}), ...servingOptions(spec) };
    } else if (spec.module !== undefined) {
      guest.module = spec.module;
    }
    this.ends.delete(key);
    this.endOf(key);
    await this.request({ op: 'create', key, guest, fds: fds.length }, fds);
  }

  async start(key: string): Promise<void> {
    await this.request({ op: 'start', key });
  }

  async kill(key: string, signal: number): Promise<void> {
    await this.request({ op: 'kill', key, signal });
  }

  async pause(key: string): Promise<void> {
    await this.request({ op: 'pause', key });
  }

  async resume(key: string): Promise<void> {
    await this.request({ op: 'resume', key });
  }

  async stats(key: string): Promise<HostedStats> {
    const r = await this.request({ op: 'stats', key });
    if (!r.stats) throw new RuntimeError('the pod host sent no stats');
    return r.stats;
  }

  async setMemoryLimit(key: string, bytes: number | undefined): Promise<void> {
    await this.request({ op: 'limit', key, bytes: bytes ?? null });
  }

  ended(key: string): Promise<HostedEnding> {
    return this.endOf(key).promise;
  }

  async delete(key: string): Promise<void> {
    if (this.alive) await this.request({ op: 'delete', key });
    this.ends.delete(key);
  }

  async usage(): Promise<HostUsage> {
    const r = await this.request({ op: 'usage' });
    if (!r.usage) throw new RuntimeError('the pod host sent no usage');
    // Its own pid means nothing here (another pid namespace): the container's init is the host we know.
    return { ...r.usage, pid: this.pid };
  }

  /** Stops the host (its guests end with it) and removes its container. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.stopping = true;
    this.gone('stopped');
  }
}
