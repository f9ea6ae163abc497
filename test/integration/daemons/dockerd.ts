// A private Docker 20.10 daemon (Debian's docker.io) on top of a private
// containerd, for integration tests. Everything lives under one
// /tmp/tugboat-d-XXXXXX; the default bridge is a private `tbdockerN` so it
// never meets a system docker0. stop() also runs on process exit.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, type ContainerdHandle } from './containerd.js';
import { cleanEnv, Daemon, makeHarnessDir, registerExitHook, run, runSync, teardownDirSync, updateOwner, waitReady, type ExecResult } from './process.js';

export const DOCKERD_BIN = '/usr/sbin/dockerd';
/** Debian's 20.10 client, matching the daemon; /usr/local/bin/docker (28.x) is not the one under test. */
export const DOCKER_BIN = '/usr/bin/docker';

export interface DockerdHandle {
  dataRoot: string;
  execRoot: string;
  /** unix:///…/docker.sock */
  host: string;
  containerd: ContainerdHandle;
  docker(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  stop(): Promise<void>;
  logs(): string;
  /** Private default bridge and its gateway address. */
  bridge: string;
  gateway: string;
  /** Environment for running other docker clients against this daemon (DOCKER_HOST, DOCKER_CONFIG). */
  env: NodeJS.ProcessEnv;
  /** spawn → `docker version` answered (containerd's own start excluded). */
  readyMs: number;
  pid: number;
}

export interface DockerdOptions {
  /** daemon.json `runtimes`; docker drives each through containerd-shim-runc-v2 with BinaryName = path. */
  runtimes?: Record<string, { path: string; runtimeArgs?: string[] }>;
  /** Extra dockerd flags. */
  extraArgs?: string[];
  /** Options for the embedded containerd (pathPrepend, extraConfig). */
  containerd?: { extraConfig?: string; pathPrepend?: string[] };
}

/**
 * dockerd 20.10 refuses `--bridge` together with `--bip` ("mutually exclusive"),
 * and a non-default `--bridge` must already exist. So we create the bridge with
 * its address ourselves. `ip link add` failing with EEXIST is the claim check
 * between concurrent harnesses.
 */
function createBridge(dir: string): { bridge: string; gateway: string; subnet: string } {
  for (let n = 0; n < 64; n++) {
    const bridge = `tbdocker${n}`;
    if (existsSync(`/sys/class/net/${bridge}`)) continue;
    const subnet = `10.213.${n}.0/24`;
    const gateway = `10.213.${n}.1`;
    if (runSync('ip', ['-4', 'route', 'show', subnet]).stdout.trim() !== '') continue;
    if (runSync('ip', ['link', 'add', 'name', bridge, 'type', 'bridge']).code !== 0) continue;
    updateOwner(dir, { bridge, subnet });
    const steps = [
      ['addr', 'add', `${gateway}/24`, 'dev', bridge],
      ['link', 'set', bridge, 'up'],
    ];
    for (const s of steps) {
      const r = runSync('ip', s);
      if (r.code !== 0) throw new Error(`ip ${s.join(' ')}: ${r.stderr.trim()}`);
    }
    return { bridge, gateway, subnet };
  }
  throw new Error('no free tbdockerN bridge / 10.213.N.0/24 subnet');
}

export async function startDockerd(opts: DockerdOptions = {}): Promise<DockerdHandle> {
  const dir = makeHarnessDir();
  let containerd: Awaited<ReturnType<typeof launch>> | undefined;
  let daemon: Daemon | undefined;
  const unregister = registerExitHook(() => {
    daemon?.stopSync(15_000);
    containerd?.stopSync();
    teardownDirSync(dir);
  });
  try {
    const base = join(dir, 'docker');
    const dataRoot = join(base, 'data');
    const execRoot = join(base, 'exec');
    const sock = join(base, 'docker.sock');
    const host = `unix://${sock}`;
    const clientConfig = join(base, 'client');
    const logPath = join(base, 'dockerd.log');
    for (const d of [dataRoot, execRoot, clientConfig]) mkdirSync(d, { recursive: true, mode: 0o711 });
    writeFileSync(join(clientConfig, 'config.json'), '{}\n');

    const runtimes = opts.runtimes ?? {};
    updateOwner(dir, { runtimes: { runc: 'runc', ...Object.fromEntries(Object.entries(runtimes).map(([k, v]) => [k, v.path])) } });
    const configFile = join(base, 'daemon.json');
    writeFileSync(
      configFile,
      JSON.stringify(
        {
          runtimes,
          // 20.10 still writes a libtrust key, by default to /etc/docker/key.json.
          'deprecated-key-path': join(base, 'key.json'),
          'registry-mirrors': [],
        },
        null,
        2,
      ),
    );

    containerd = await launch({ dir, ...opts.containerd });
    const { bridge, gateway } = createBridge(dir);

    const args = [
      '--data-root', dataRoot,
      '--exec-root', execRoot,
      '--pidfile', join(base, 'dockerd.pid'),
      '-H', host,
      '--containerd', containerd.address,
      '--config-file', configFile,
      '--bridge', bridge,
      '--iptables',
      // ip-forward=true (the default) would flip the host's net.ipv4.ip_forward
      // and set the FORWARD policy to DROP, which breaks other tests' bridges.
      // Loopback port publishing goes through docker-proxy and needs neither.
      '--ip-forward=false',
      '--userland-proxy',
      '--exec-opt', 'native.cgroupdriver=cgroupfs',
      '--storage-driver', 'overlay2',
      '--log-level', 'debug',
      ...(opts.extraArgs ?? []),
    ];
    const env = cleanEnv({}, opts.containerd?.pathPrepend ?? []);
    daemon = new Daemon({ name: 'dockerd', cmd: DOCKERD_BIN, args, env, logPath, cwd: base });
    const clientEnv = cleanEnv({ DOCKER_CONFIG: clientConfig });
    const docker = (a: string[], o: { input?: string; timeoutMs?: number } = {}) =>
      run(DOCKER_BIN, ['-H', host, ...a], { env: clientEnv, input: o.input, timeoutMs: o.timeoutMs ?? 120_000 });

    const d = daemon;
    const readyMs = await waitReady(d, `the API on ${host}`, async () => existsSync(sock) && (await docker(['version', '--format', '{{.Server.APIVersion}}'], { timeoutMs: 5_000 })).code === 0);
    // The client must talk to the server without a version downgrade error.
    const v = await docker(['version', '--format', '{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.Version}}'], { timeoutMs: 10_000 });
    if (v.code !== 0) throw new Error(`docker version: ${v.stderr}`);

    const ctd = containerd;
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        try {
          if (d.running) {
            const ids = await docker(['ps', '-aq'], { timeoutMs: 30_000 });
            const list = ids.stdout.split('\n').filter(Boolean);
            if (list.length) await docker(['rm', '-f', ...list], { timeoutMs: 60_000 });
            // user-defined networks keep their br-* bridges after dockerd exits
            await docker(['network', 'prune', '-f'], { timeoutMs: 30_000 });
          }
          await d.stop(15_000);
          await ctd.stop();
        } finally {
          const problems = teardownDirSync(dir);
          unregister();
          if (problems.length) throw new Error(`dockerd teardown of ${dir}: ${problems.join('; ')}`);
        }
      })();
      return stopping;
    };
    // The nested handle's stop() stops only containerd: the dir belongs to dockerd's stop.
    const containerdHandle: ContainerdHandle = { ...ctd };
    return {
      dataRoot,
      execRoot,
      host,
      containerd: containerdHandle,
      docker,
      stop,
      logs: () => d.logs(),
      bridge,
      gateway,
      env: { DOCKER_HOST: host, DOCKER_CONFIG: clientConfig },
      readyMs,
      pid: d.pid,
    };
  } catch (e) {
    daemon?.stopSync(5_000);
    containerd?.stopSync();
    unregister();
    const problems = teardownDirSync(dir);
    if (problems.length) (e as Error).message += `\n[harness] teardown: ${problems.join('; ')}`;
    throw e;
  }
}

/** For assertions: the harness dir of a handle (parent of dataRoot's parent). */
export function harnessDir(h: DockerdHandle): string {
  return join(h.dataRoot, '..', '..');
}

