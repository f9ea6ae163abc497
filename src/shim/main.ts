// containerd-shim-tugboat-v1: containerd runtime v2 shim (runtime type
// io.containerd.tugboat.v1). One binary, three modes (protocols.md §1):
//   start  — pick the socket for the task's group, reuse a live shim or spawn
//            the daemon with the listening socket as fd 3, print the address
//   delete — clean up after a dead shim: runc delete --force, unmount rootfs,
//            print a binary DeleteResponse (137)
//   (none) — the daemon: ttrpc Task service, subreaper, event publisher
import { chmodSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import type * as Net from 'node:net';
import { join, resolve } from 'node:path';
import { exitCodeFor } from '../errors.js';
import { envLogLevel, shimDerivedBundleDir, stateDir, ttrpcAddress } from '../defaults.js';
import { isLogLevel, log, setLogFdLossy, setLogFile, setLogLevel } from '../log.js';
// Only what `start` and `delete` need is imported statically: containerd
// starts this binary twice per task and waits for it (50 dead tasks of a
// group are 50 concurrent `delete`s within containerd's cleanup timeout).
// The daemon loads the task service below, on demand; node:net and
// node:child_process are loaded where a mode uses them (net()), and
// `delete` spawns nothing and connects nowhere in the usual case.
import { removeDerivedBundle } from '../linux-runtime/derived-bundle.js';
import { TUGBOAT_VERSION as VERSION } from '../version.js';
import { groupingKey, socketAddress, socketPath, SOCKET_DIR, writeAddress } from './address.js';
import { parseShimFlags, type ShimFlags } from './flags.js';
import { nowMs, secondsAndNanos } from './proto/clock.js';
import { encodeDeleteResponse } from './proto/delete-response.js';
import { readShimOptions, runcConfigFor } from './runc-options.js';
import { unmountAll } from './rootfs.js';

const NAME = 'containerd-shim-tugboat-v1';

const net = (): typeof Net => process.getBuiltinModule('node:net');

function readAllStdin(): Buffer {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      if (code === 'EOF' || code === 'EBADF') break;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

function bundleAnnotations(bundle: string): Record<string, string> {
  try {
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { annotations?: Record<string, string> };
    return spec.annotations ?? {};
  } catch {
    return {};
  }
}

/**
 * Whether a shim listens on the socket at `path`. Only a refusal (or no
 * socket) is an answer of "dead": under load a live shim's socket can be slow
 * to connect, and treating slowness as death would unlink the socket of a
 * shim that serves other tasks (a second shim for one group, or a group cut
 * off from its shim). Slow attempts are retried; no answer at all counts as alive.
 */
async function shimListens(path: string): Promise<boolean> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const answer = await new Promise<'alive' | 'dead' | 'slow'>((res) => {
      const s = net().connect(path);
      const done = (a: 'alive' | 'dead' | 'slow') => {
        clearTimeout(t);
        s.destroy();
        res(a);
      };
      const t = setTimeout(() => done('slow'), 1000);
      s.once('connect', () => done('alive'));
      s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'dead' : 'slow'));
    });
    if (answer !== 'slow') return answer === 'alive';
  }
  return true;
}

function listen(path: string): Promise<Net.Server> {
  return new Promise((res, rej) => {
    const srv = net().createServer();
    srv.once('error', rej);
    srv.listen(path, () => {
      srv.off('error', rej);
      res(srv);
    });
  });
}

/**
 * The group's socket exists: reuse the shim behind it, or replace a dead
 * one's socket. Under a lock, because two starts that both found it dead
 * would each unlink the other's new socket (two shims for one group), and a
 * start that probes between another's bind and listen sees a refusal.
 */
async function reuseOrTakeOver(path: string): Promise<'reuse' | Net.Server> {
  if (await shimListens(path)) return 'reuse';
  mkdirSync(stateDir(), { recursive: true, mode: 0o700 });
  const { withFileLock } = await import('../oci/file-lock.js');
  return withFileLock(join(stateDir(), 'shim-start.lock'), 'exclusive', 'a shim start', async () => {
    if (await shimListens(path)) return 'reuse';
    rmSync(path, { force: true });
    return listen(path);
  });
}

async function start(f: ShimFlags): Promise<number> {
  readAllStdin(); // the options Any; Create brings it again
  const bundle = process.cwd();
  const address = socketAddress(f.address, f.namespace, groupingKey(f.id, bundleAnnotations(bundle)));
  const path = socketPath(address);
  mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o700 });
  let srv: Net.Server;
  try {
    srv = await listen(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    const taken = await reuseOrTakeOver(path);
    if (taken === 'reuse') {
      // A live shim serves this group: containerd will send it Create for this id.
      writeAddress(bundle, address);
      writeSync(1, address);
      return 0;
    }
    srv = taken;
  }
  chmodSync(path, 0o600);
  const handle = (srv as unknown as { _handle: { fd: number } })._handle;
  const args = [process.argv[1]!, '-namespace', f.namespace, '-id', f.id, '-address', f.address, '-publish-binary', f.publishBinary];
  if (f.debug) args.push('-debug');
  const child = process.getBuiltinModule('node:child_process').spawn(process.execPath, [...process.execArgv, ...args], {
    cwd: bundle,
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', handle.fd],
    env: process.env,
  });
  child.unref();
  writeAddress(bundle, address);
  writeSync(1, address);
  // Do not close srv: libuv would unlink the socket path the daemon serves on.
  return 0;
}

async function del(f: ShimFlags): Promise<number> {
  const bundle = resolve(f.bundle || process.cwd());
  const cfg = runcConfigFor(f.namespace, bundle, readShimOptions(bundle));
  // Nothing for runc to do when it has no state for the id (the usual case:
  // containerd runs `delete` after every normal Delete + Shutdown).
  if (f.id && existsSync(join(cfg.root, f.id))) {
    try {
      const { Runc } = await import('../linux-runtime/runc.js');
      await new Runc(cfg).delete(f.id, { force: true });
    } catch (err) {
      process.stderr.write(`warning: failed to remove runc container: ${(err as Error).message}\n`);
    }
  }
  await unmountAll(join(bundle, 'rootfs'));
  await removeDerivedBundle(shimDerivedBundleDir(bundle));
  // A shim that died (SIGKILL, crash) leaves its socket behind. A grouped shim
  // may still serve other tasks on it: remove it only if nobody answers.
  try {
    const sock = socketPath(readFileSync(join(bundle, 'address'), 'utf8').trim());
    if (existsSync(sock) && !(await shimListens(sock))) rmSync(sock, { force: true });
  } catch {
    // no address file
  }
  let pid = 0;
  try {
    pid = Number(readFileSync(join(bundle, 'init.pid'), 'utf8').trim()) || 0;
  } catch {
    // never created
  }
  writeSync(1, encodeDeleteResponse({ pid, exitStatus: 137, exitedAt: secondsAndNanos(nowMs()) }));
  return 0;
}

async function daemon(f: ShimFlags): Promise<void> {
  const bundle = process.cwd();
  // containerd created the `log` FIFO and reads it into its own log.
  // containerd reads <bundle>/log of every task into its own log. A
  // read-write handle of our own keeps the FIFO from ever having no reader, so
  // a containerd restart does not turn log writes into EPIPE. When the bundle
  // we log into is deleted (a grouped shim outliving its first task), nobody
  // would drain that FIFO any more: move to a live task's bundle.
  let logBundle: string | undefined;
  let logKeep: number | undefined;
  let logStale = false;
  const useLogBundle = (b: string | undefined) => {
    const fifo = b === undefined ? undefined : join(b, 'log');
    const old = logKeep;
    if (fifo !== undefined && existsSync(fifo)) {
      logKeep = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
      // Written through this non-blocking fd: while containerd does not read
      // (restarting, stopped) a full FIFO drops records instead of blocking
      // the whole shim on a write.
      setLogFdLossy(logKeep);
      logBundle = b;
    } else {
      logKeep = undefined;
      setLogFile('/dev/null');
      logBundle = undefined;
    }
    if (old !== undefined) closeSync(old);
  };
  useLogBundle(bundle);
  const level = envLogLevel();
  setLogLevel(f.debug ? 'debug' : level !== undefined && isLogLevel(level) ? level : 'info');
  const { setChildSubreaper } = await import('../linux-runtime/sys.js');
  const { Reaper } = await import('../linux-runtime/reaper.js');
  const { Publisher } = await import('./publisher.js');
  const { TaskManager } = await import('./task-manager.js');
  const { registerTaskService } = await import('./service.js');
  const { TtrpcServer } = await import('./ttrpc/index.js');

  setChildSubreaper();
  process.on('SIGPIPE', () => undefined);
  // The daemon is the only record of its containers' exit statuses: a stray
  // error in one callback is logged, not allowed to take every task down.
  process.on('unhandledRejection', (err) => log().error({ err }, 'unhandled rejection in shim'));
  process.on('uncaughtException', (err) => log().error({ err }, 'uncaught exception in shim'));
  const reaper = new Reaper();
  reaper.start();
  const publisher = new Publisher(ttrpcAddress(f.address), f.namespace);
  const tasks = new TaskManager({
    namespace: f.namespace,
    events: publisher,
    reaper,
    // containerd's API is loaded on the first Create, and only then.
    imageFacts: async (id) => (await import('./containerd-api.js')).containerImageFacts({ address: f.address, namespace: f.namespace }, id),
    onContainerRemoved: (b) => {
      if (b !== logBundle) return;
      const other = tasks.bundles()[0];
      // The last one: keep logging there until Shutdown; a later Create moves on.
      if (other !== undefined) useLogBundle(other);
      else logStale = true;
    },
    onContainerAdded: (b) => {
      if (logStale) {
        logStale = false;
        useLogBundle(b);
      }
    },
  });
  const server = new TtrpcServer();
  let socketFile: string | undefined;
  let shuttingDown = false;
  const shutdown = async (why: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log().info({ why }, 'shim exiting');
    await server.close().catch(() => undefined);
    if (socketFile) rmSync(socketFile, { force: true });
    // The group's pod host goes with its last container: its runc state and directory must not outlive us.
    await (await import('../linux-runtime/pod-host-client.js')).podHostTeardowns();
    await publisher.close(5000);
    reaper.stop();
    process.exit(0);
  };
  registerTaskService(server, tasks, { shutdown: () => void shutdown('shutdown with no containers') });
  let srv: Net.Server;
  if (f.socket) {
    socketFile = socketPath(f.socket);
    srv = await listen(socketFile);
  } else {
    srv = net().createServer();
    await new Promise<void>((res, rej) => {
      srv.once('error', rej);
      srv.listen({ fd: 3 }, () => res());
    });
    try {
      socketFile = socketPath(readFileSync(join(bundle, 'address'), 'utf8').trim());
    } catch {
      // started by hand
    }
  }
  await server.listen(srv);
  // OOM kills of processes other than a container's init (those are checked at exit).
  setInterval(() => tasks.checkOomAll(), 2000).unref();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void shutdown(sig));
  log().info({ pid: process.pid, version: VERSION }, 'shim serving');
}

export async function main(argv: readonly string[]): Promise<number | undefined> {
  let f: ShimFlags;
  try {
    f = parseShimFlags(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return exitCodeFor(err);
  }
  if (f.version) {
    writeSync(1, `${NAME}:\n  Version:  ${VERSION}\n  Runtime:  io.containerd.tugboat.v1\n`);
    return 0;
  }
  if (!f.namespace) {
    process.stderr.write('shim namespace cannot be empty\n');
    return 1;
  }
  switch (f.action) {
    case 'start':
      return start(f);
    case 'delete':
      return del(f);
    case '':
      await daemon(f);
      return undefined; // keep serving
    default:
      process.stderr.write(`unknown action ${JSON.stringify(f.action)}\n`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exit(code);
  },
  (err: unknown) => {
    try {
      log().error({ err }, 'shim failed');
    } catch {
      // no log
    }
    process.stderr.write(`${NAME}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
