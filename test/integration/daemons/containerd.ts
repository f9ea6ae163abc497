// A private containerd 1.6 (Debian's `containerd` package) for integration
// tests: own root/state/sockets under /tmp/tugboat-d-XXXXXX, CRI off unless
// asked, debug log in a file. stop() also runs on process exit.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanEnv, Daemon, makeHarnessDir, registerExitHook, run, teardownDirSync, updateOwner, waitReady, type ExecResult } from './process.js';

export const CONTAINERD_BIN = '/usr/bin/containerd';
export const CTR_BIN = '/usr/bin/ctr';

export interface ContainerdHandle {
  root: string;
  state: string;
  /** grpc socket path */
  address: string;
  ttrpcAddress: string;
  configPath: string;
  /** `ctr --address <ours> …args` (namespace "default" unless args say `-n`). */
  ctr(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  stop(): Promise<void>;
  /**
   * Restarts the containerd process only: SIGTERM to it (its shims and their
   * tasks keep running, as with systemd's KillMode=process), then starts it
   * again on the same config, root, state and sockets. `pid` follows.
   * `whileStopped` runs in between.
   */
  restart(whileStopped?: () => void | Promise<void>): Promise<void>;
  logs(): string;
  /** Time from spawn to the first successful `ctr version`. */
  readyMs: number;
  pid: number;
}

export interface ContainerdOptions {
  /** TOML appended to the generated config: tables only (top-level keys would land in the last table). */
  extraConfig?: string;
  /** Dirs prepended to containerd's PATH (it finds containerd-shim-<name>-v<n> on PATH). */
  pathPrepend?: string[];
  /** Load the CRI plugin (default false). With it on, the caller's extraConfig owns every `[plugins."io.containerd.grpc.v1.cri"…]` table. */
  cri?: boolean;
}

/** Internal: dockerd embeds its containerd in its own harness directory and tears the directory down itself. */
export interface EmbeddedContainerdOptions extends ContainerdOptions {
  dir: string;
}

function toml(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid TOML basic string for these paths
}

export async function startContainerd(opts: ContainerdOptions = {}): Promise<ContainerdHandle> {
  const dir = makeHarnessDir();
  let unregister = () => {};
  let handle: (ContainerdHandle & { stopSync(): void }) | undefined;
  unregister = registerExitHook(() => {
    handle?.stopSync();
    teardownDirSync(dir);
  });
  try {
    handle = await launch({ ...opts, dir });
  } catch (e) {
    unregister();
    teardownDirSync(dir);
    throw e;
  }
  const inner = handle;
  let stopping: Promise<void> | undefined;
  return {
    ...inner,
    get pid() {
      return inner.pid;
    },
    stop() {
      stopping ??= (async () => {
        try {
          await inner.stop();
        } finally {
          const problems = teardownDirSync(dir);
          unregister();
          if (problems.length) throw new Error(`containerd teardown of ${dir}: ${problems.join('; ')}`);
        }
      })();
      return stopping;
    },
  };
}

/**
 * Starts containerd inside an existing harness dir; stop() stops the daemon
 * and its tasks but leaves the directory to the caller's teardown.
 */
export async function launch(opts: EmbeddedContainerdOptions): Promise<ContainerdHandle & { stopSync(): void }> {
  const base = join(opts.dir, 'containerd');
  const root = join(base, 'root');
  const state = join(base, 'state');
  const address = join(base, 'containerd.sock');
  const ttrpcAddress = `${address}.ttrpc`;
  const configPath = join(base, 'config.toml');
  const logPath = join(base, 'containerd.log');
  if (address.length >= 100) throw new Error(`containerd socket path too long: ${address}`);
  mkdirSync(root, { recursive: true, mode: 0o711 });
  mkdirSync(state, { recursive: true, mode: 0o711 });
  updateOwner(opts.dir, { containerdSocket: address });

  const disabled = opts.cri ? [] : ['io.containerd.grpc.v1.cri'];
  const config = [
    'version = 2',
    `root = ${toml(root)}`,
    `state = ${toml(state)}`,
    `disabled_plugins = ${JSON.stringify(disabled)}`,
    '',
    '[grpc]',
    `  address = ${toml(address)}`,
    '',
    '[ttrpc]',
    `  address = ${toml(ttrpcAddress)}`,
    '',
    '[debug]',
    '  level = "debug"',
    '',
    // default is /opt/containerd: keep even this private
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${toml(join(base, 'opt'))}`,
    '',
    opts.extraConfig ?? '',
    '',
  ].join('\n');
  writeFileSync(configPath, config);

  const env = cleanEnv({}, opts.pathPrepend ?? []);
  const clientEnv = cleanEnv();
  const spawnDaemon = () => new Daemon({ name: 'containerd', cmd: CONTAINERD_BIN, args: ['--config', configPath, '--log-level', 'debug'], env, logPath, cwd: base });
  let daemon = spawnDaemon();
  const ctr = (args: string[], o: { input?: string; timeoutMs?: number } = {}) =>
    run(CTR_BIN, ['--address', address, ...args], { env: clientEnv, input: o.input, timeoutMs: o.timeoutMs ?? 120_000 });

  // ctr blocks on a socket that does not exist yet; spawn it only once there is one.
  const ready = async () => {
    try {
      return await waitReady(daemon, `its socket ${address}`, async () => existsSync(address) && (await ctr(['version'], { timeoutMs: 5_000 })).code === 0);
    } catch (e) {
      daemon.stopSync(2_000);
      throw e;
    }
  };
  const readyMs = await ready();

  const restart = async (whileStopped?: () => void | Promise<void>) => {
    // The daemon only: its shims live in their own process groups and keep serving.
    await daemon.stop(10_000);
    if (daemon.running) throw new Error(`containerd (pid ${daemon.pid}) did not stop for the restart`);
    // A SIGTERMed containerd removes its sockets; a SIGKILLed one may not.
    rmSync(address, { force: true });
    rmSync(ttrpcAddress, { force: true });
    try {
      await whileStopped?.();
    } finally {
      daemon = spawnDaemon();
      await ready();
    }
  };

  const stop = async () => {
    if (daemon.running) {
      // Tasks first, so their shims exit on their own and clean their sockets.
      const nss = await ctr(['namespaces', 'ls', '-q'], { timeoutMs: 10_000 });
      const namespaces = nss.code === 0 ? nss.stdout.split('\n').filter(Boolean) : [];
      updateOwner(opts.dir, { namespaces });
      for (const ns of namespaces) {
        const tasks = await ctr(['-n', ns, 'tasks', 'ls', '-q'], { timeoutMs: 10_000 });
        for (const id of tasks.code === 0 ? tasks.stdout.split('\n').filter(Boolean) : []) {
          await ctr(['-n', ns, 'tasks', 'delete', '--force', id], { timeoutMs: 20_000 });
        }
      }
    }
    await daemon.stop(10_000);
  };
  return {
    root,
    state,
    address,
    ttrpcAddress,
    configPath,
    ctr,
    stop,
    restart,
    stopSync: () => daemon.stopSync(10_000),
    logs: () => daemon.logs(),
    readyMs,
    get pid() {
      return daemon.pid;
    },
  };
}
