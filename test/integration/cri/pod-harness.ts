// Kubernetes' path through containerd for the integration tests: a private
// containerd 1.6 with its CRI plugin on, the CNI bridge plugin from Debian's
// containernetworking-plugins on a private bridge and subnet, a pause image
// built here from our own C source, the fixture images imported into the
// "k8s.io" namespace, and a CRI client (client.ts) to drive it like a kubelet
// would. cleanup() removes pods, containers, the bridge, the CNI state, any
// iptables rule naming our network, the pod cgroups and all mounts; the same
// host-side cleanup also runs at process exit and on the next start after a
// SIGKILLed run.
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startContainerd, type ContainerdHandle } from '../daemons/containerd.js';
import { isAlive, readOwner, reapStaleDirs, registerExitHook, runSync, sleep, startTime, unmountAllSync, updateOwner } from '../daemons/process.js';
import { FIXTURES } from '../helpers.js';
import { CriClient, type ContainerConfig, type ContainerState, type ContainerStatus, type PodSandboxConfig } from './client.js';

/** The one CNI network every pod of the harness joins (one harness per host at a time). */
export const POD_NETWORK = {
  name: 'tugboat-cri',
  bridge: 'tbcni0',
  subnet: '10.215.0.0/24',
} as const;

export const CRI_NAMESPACE = 'k8s.io';
/** The Kubernetes namespace in every pod's metadata (it also marks our entries in libcni's cache). */
export const POD_NAMESPACE = 'tugboat-test';
/** Cgroup parent of every pod (cgroupfs driver): /sys/fs/cgroup/<controller>/tugboat-cri/<container id>. */
export const CGROUP_PARENT = '/tugboat-cri';

export const IMAGES = {
  /** Built by this harness: a static `/pause` from PAUSE_C. containerd's sandbox_image. */
  pause: 'tugboat.local/pause:cri',
  busybox: 'tugboat.local/busybox:latest',
  /** hello-wasm.docker.tar: linux/amd64 config, Entrypoint /hello.wasm (CRI in containerd 1.6 matches image platforms against linux only). */
  helloWasm: 'tugboat.local/hello-wasm:latest',
} as const;

const SCRATCH_PREFIX = '/tmp/tugboat-cri-';
const CNI_STATE = '/var/lib/cni';

/** The pod's infra process: sleeps until SIGTERM/SIGINT, reaps children (pid namespace sharing). */
export const PAUSE_C = `#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }

static void on_chld(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_term;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_chld;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  for (;;) pause();
  return 0;
}
`;

export interface PodHarnessOptions {
  /** Dirs put first on containerd's PATH (where it finds containerd-shim-<name>-v<n>). */
  pathPrepend?: string[];
}

export interface PodHarness {
  containerd: ContainerdHandle;
  cri: CriClient;
  /** Private scratch dir: CNI config, pod logs, host-local IPAM state, the pause image build. */
  dir: string;
  cniConfDir: string;
  /** host-local's dataDir: one file per allocated address. */
  ipamDataDir: string;
  logDir: string;
  /** The containerd config actually used (containerd.configPath), for error messages. */
  config(): string;
  /** A kubelet-like sandbox config: own network namespace on our bridge, own pid namespace per container. */
  podConfig(name: string): PodSandboxConfig;
  /** A container config whose log goes to `<name>.log` in the pod's log dir. */
  containerConfig(name: string, image: string, command: string[], extra?: Partial<ContainerConfig>): ContainerConfig;
  /** RunPodSandbox; the id and the config used (CreateContainer needs it again). */
  runPod(name: string, runtimeHandler?: string): Promise<{ id: string; config: PodSandboxConfig }>;
  /** CreateContainer + StartContainer. */
  startContainer(podId: string, podConfig: PodSandboxConfig, config: ContainerConfig): Promise<string>;
  /** Polls ContainerStatus (bounded by attempts) until the state is reached. */
  waitContainer(id: string, state: ContainerState): Promise<ContainerStatus>;
  /** Removes everything; returns what could not be cleaned. Idempotent. */
  cleanup(): Promise<string[]>;
}

// ---------------------------------------------------------------------------
// configuration

function toml(s: string): string {
  return JSON.stringify(s);
}

export function cniConflist(ipamDataDir: string): object {
  return {
    cniVersion: '1.0.0',
    name: POD_NETWORK.name,
    plugins: [
      {
        type: 'bridge',
        bridge: POD_NETWORK.bridge,
        // No gateway address on the bridge and no masquerading: pods reach each
        // other on the private L2 segment only, and the plugin changes no
        // sysctl (ip_forward) and adds no iptables rule on the host.
        isGateway: false,
        ipMasq: false,
        hairpinMode: false,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: POD_NETWORK.subnet }]],
          dataDir: ipamDataDir,
        },
      },
    ],
  };
}

/**
 * Every CRI table containerd needs (startContainerd({ cri: true }) supplies
 * none). containerd itself adds the loopback plugin for `lo` (bin_dir must hold
 * it); the conflist names only the bridge.
 */
export function criConfig(o: { cniConfDir: string; registryDir: string }): string {
  return [
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = ${toml(IMAGES.pause)}`,
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    '  enable_selinux = false',
    // CRI gives the sandbox oom_score_adj -998; lowering it needs CAP_SYS_RESOURCE,
    // which this host's root lacks (runc init: "failed to update
    // /proc/self/oom_score_adj: Permission denied"). true clamps every value
    // to containerd's own, as for a kubelet in a user namespace.
    '  restrict_oom_score_adj = true',
    // netns bind mounts under containerd's (private) state dir instead of /var/run/netns
    '  netns_mounts_under_state_dir = true',
    '',
    '[plugins."io.containerd.grpc.v1.cri".containerd]',
    '  snapshotter = "overlayfs"',
    '  default_runtime_name = "runc"',
    '',
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '  runtime_type = "io.containerd.runc.v2"',
    '',
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    '  SystemdCgroup = false',
    '',
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tugboat]',
    '  runtime_type = "io.containerd.tugboat.v1"',
    // A container's own io.tugboat.* annotations reach the shim (its isolation level), as the README's config has it.
    '  container_annotations = ["io.tugboat.*"]',
    '',
    '[plugins."io.containerd.grpc.v1.cri".cni]',
    '  bin_dir = "/usr/lib/cni"',
    `  conf_dir = ${toml(o.cniConfDir)}`,
    '  max_conf_num = 1',
    '',
    // an empty hosts dir: no /etc/containerd/certs.d lookups
    '[plugins."io.containerd.grpc.v1.cri".registry]',
    `  config_path = ${toml(o.registryDir)}`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------
// pause image

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/** Compiles PAUSE_C statically with the host gcc and packs it as a docker-archive tar named IMAGES.pause. */
export function buildPauseImage(dir: string): string {
  const work = join(dir, 'pause-build');
  const rootfs = join(work, 'rootfs');
  const img = join(work, 'image');
  mkdirSync(rootfs, { recursive: true });
  mkdirSync(img, { recursive: true });
  writeFileSync(join(work, 'pause.c'), PAUSE_C);
  try {
    execFileSync('gcc', ['-static', '-Os', '-s', '-Wall', '-Werror', '-o', join(rootfs, 'pause'), join(work, 'pause.c')], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`building the pause binary needs Debian's gcc and libc6-dev (static libc): ${err.stderr?.toString() || err.message}`);
  }
  const layerTar = join(work, 'layer.tar');
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', layerTar, 'pause']);
  const layer = readFileSync(layerTar);
  const diffId = sha256(layer);
  const config = JSON.stringify({
    created: '1970-01-01T00:00:00Z',
    architecture: goArch(),
    os: 'linux',
    config: { Entrypoint: ['/pause'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
  });
  const configName = `${sha256(config)}.json`;
  mkdirSync(join(img, diffId));
  writeFileSync(join(img, diffId, 'layer.tar'), layer);
  writeFileSync(join(img, configName), config);
  writeFileSync(join(img, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [IMAGES.pause], Layers: [`${diffId}/layer.tar`] }]));
  const out = join(dir, 'pause.docker.tar');
  execFileSync('tar', ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', img, '-cf', out, 'manifest.json', configName, `${diffId}/layer.tar`]);
  rmSync(work, { recursive: true, force: true });
  return out;
}

// ---------------------------------------------------------------------------
// host-side cleanup (synchronous: it also runs from the exit hook)

function safeReaddir(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

function mtimeMs(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

function rmdirQuiet(d: string): boolean {
  try {
    rmdirSync(d);
    return true;
  } catch {
    return false;
  }
}

/** Host-side veths enslaved to our bridge, then the bridge. */
function removeBridgeSync(): string[] {
  const problems: string[] = [];
  const br = POD_NETWORK.bridge;
  if (!existsSync(`/sys/class/net/${br}`)) return problems;
  for (const port of safeReaddir(`/sys/class/net/${br}/brif`)) runSync('ip', ['link', 'del', port], { timeoutMs: 10_000 });
  const r = runSync('ip', ['link', 'del', br], { timeoutMs: 10_000 });
  if (r.code !== 0 && existsSync(`/sys/class/net/${br}`)) problems.push(`ip link del ${br}: ${r.stderr.trim()}`);
  return problems;
}

function splitRule(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string));
  return out;
}

/**
 * Deletes every iptables rule that names our bridge, our subnet's addresses or
 * our CNI network (CNI plugins tag their rules with `name: "<network>"`), then
 * the CNI-* chains those rules jumped to once nothing else uses them. With the
 * conflist above nothing should match; this is the net for plugins that do
 * add rules (portmap, ipMasq).
 */
function cleanIptablesSync(): string[] {
  const problems: string[] = [];
  if (runSync('iptables', ['--version']).code !== 0) return problems;
  const prefix = POD_NETWORK.subnet.replace(/\.\d+\/\d+$/, '.');
  const ours = (l: string) => l.includes(POD_NETWORK.bridge) || l.includes(prefix) || l.includes(`"${POD_NETWORK.name}"`) || l.includes(`name: \\"${POD_NETWORK.name}\\"`);
  for (const table of ['filter', 'nat', 'mangle']) {
    const listed = runSync('iptables', ['-w', '-t', table, '-S'], { timeoutMs: 10_000 });
    if (listed.code !== 0) continue;
    const jumpedTo = new Set<string>();
    for (const l of listed.stdout.split('\n')) {
      if (!l.startsWith('-A ') || !ours(l)) continue;
      const argv = splitRule(l);
      const j = argv.indexOf('-j');
      const target = j >= 0 ? argv[j + 1] : undefined;
      if (target?.startsWith('CNI-')) jumpedTo.add(target);
      argv[0] = '-D';
      const r = runSync('iptables', ['-w', '-t', table, ...argv], { timeoutMs: 10_000 });
      if (r.code !== 0 && !/does a matching rule exist|No chain/i.test(r.stderr)) problems.push(`iptables -t ${table} ${argv.join(' ')}: ${r.stderr.trim()}`);
    }
    for (const chain of jumpedTo) {
      const still = runSync('iptables', ['-w', '-t', table, '-S'], { timeoutMs: 10_000 }).stdout;
      if (still.split('\n').some((l) => l.startsWith('-A ') && l.includes(`-j ${chain}`))) continue; // someone else's too
      runSync('iptables', ['-w', '-t', table, '-F', chain], { timeoutMs: 10_000 });
      runSync('iptables', ['-w', '-t', table, '-X', chain], { timeoutMs: 10_000 });
    }
  }
  return problems;
}

/**
 * libcni's result cache (/var/lib/cni/results/<network>-<sandbox id>-<ifname>,
 * one for our network and one for containerd's own "cni-loopback") for our
 * pods, told apart by their Kubernetes namespace; a host-local store in the
 * default place for our network; then the parents, only if left empty.
 */
function cleanCniStateSync(): void {
  rmSync(join(CNI_STATE, 'networks', POD_NETWORK.name), { recursive: true, force: true });
  const results = join(CNI_STATE, 'results');
  for (const f of safeReaddir(results)) {
    if (!f.startsWith(`${POD_NETWORK.name}-`) && !f.startsWith('cni-loopback-')) continue;
    let ours = f.startsWith(`${POD_NETWORK.name}-`);
    if (!ours) {
      try {
        const cached = JSON.parse(readFileSync(join(results, f), 'utf8')) as { cniArgs?: [string, string][] };
        ours = (cached.cniArgs ?? []).some(([k, v]) => k === 'K8S_POD_NAMESPACE' && v === POD_NAMESPACE);
      } catch {
        continue;
      }
    }
    if (ours) rmSync(join(results, f), { force: true });
  }
  rmdirQuiet(join(CNI_STATE, 'networks'));
  rmdirQuiet(results);
  rmdirQuiet(CNI_STATE);
}

/** Our pod cgroup parent in every v1 controller (and v2), children first; rmdir only succeeds on empty cgroups. */
function cleanCgroupsSync(): string[] {
  const left: string[] = [];
  const roots = existsSync('/sys/fs/cgroup/cgroup.controllers') ? ['/sys/fs/cgroup'] : safeReaddir('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c));
  const rmTree = (d: string): void => {
    for (const e of safeReaddir(d)) {
      const p = join(d, e);
      if (existsSync(join(p, 'cgroup.procs'))) rmTree(p);
    }
    if (!rmdirQuiet(d) && existsSync(d)) left.push(d);
  };
  for (const r of roots) {
    const d = join(r, CGROUP_PARENT);
    if (existsSync(d)) rmTree(d);
  }
  return left.length ? [`cgroups left: ${left.join(' ')}`] : [];
}

/** Everything outside containerd's own harness dir; then the scratch dir. */
export function cleanupHostSync(dir: string): string[] {
  const problems = [...removeBridgeSync(), ...cleanIptablesSync()];
  cleanCniStateSync();
  problems.push(...cleanCgroupsSync());
  const stuck = unmountAllSync(dir);
  if (stuck.length) problems.push(`mounts left: ${stuck.join(' ')}`);
  else rmSync(dir, { recursive: true, force: true });
  return problems;
}

/** Scratch dirs of earlier test processes that died without cleaning up (SIGKILL). */
function reapStaleScratch(): void {
  for (const n of safeReaddir('/tmp')) {
    const dir = join('/tmp', n);
    if (!dir.startsWith(SCRATCH_PREFIX)) continue;
    const owner = readOwner(dir);
    if (!owner && Date.now() - mtimeMs(dir) < 10 * 60_000) continue; // just made by someone, record not written yet
    // (this process's own earlier harness, if still here, failed its cleanup: retry it)
    if (owner && owner.pid !== process.pid && isAlive(owner.pid) && startTime(owner.pid) === owner.start) {
      throw new Error(`another test process (pid ${owner.pid}) owns the CRI pod harness (${dir}, bridge ${POD_NETWORK.bridge}); one at a time per host`);
    }
    const problems = cleanupHostSync(dir);
    if (problems.length) process.stderr.write(`[cri harness] reaping ${dir}: ${problems.join('; ')}\n`);
  }
}

// ---------------------------------------------------------------------------

async function importImage(c: ContainerdHandle, tar: string): Promise<void> {
  if (!existsSync(tar)) throw new Error(`${tar} is missing: run \`make build && scripts/build-fixtures.sh\``);
  const r = await c.ctr(['-n', CRI_NAMESPACE, 'images', 'import', tar], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`ctr -n ${CRI_NAMESPACE} images import ${tar}: ${r.stderr}`);
}

export async function startPodHarness(opts: PodHarnessOptions = {}): Promise<PodHarness> {
  if (process.getuid?.() !== 0) throw new Error('the CRI pod harness needs root');
  // A SIGKILLed run left its containerd, shims and pods running: those go first
  // (containerd's harness reaper), then the bridge, CNI state and cgroups they held.
  reapStaleDirs();
  reapStaleScratch();
  if (existsSync(`/sys/class/net/${POD_NETWORK.bridge}`)) throw new Error(`bridge ${POD_NETWORK.bridge} exists and no test process owns it: delete it (ip link del ${POD_NETWORK.bridge})`);

  const dir = mkdtempSync(SCRATCH_PREFIX);
  updateOwner(dir, { bridge: POD_NETWORK.bridge, subnet: POD_NETWORK.subnet });
  const cniConfDir = join(dir, 'cni', 'net.d');
  const ipamDataDir = join(dir, 'cni', 'ipam');
  const registryDir = join(dir, 'registry-hosts');
  const logDir = join(dir, 'pods');
  for (const d of [cniConfDir, ipamDataDir, registryDir, logDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(cniConfDir, `10-${POD_NETWORK.name}.conflist`), JSON.stringify(cniConflist(ipamDataDir), null, 2));

  let containerd: ContainerdHandle | undefined;
  let cri: CriClient | undefined;
  let unregister = () => {};
  let cleaning: Promise<string[]> | undefined;

  const cleanup = (): Promise<string[]> => {
    cleaning ??= (async () => {
      const problems: string[] = [];
      const note = (what: string, e: unknown) => problems.push(`${what}: ${(e as Error).message}`);
      if (cri && containerd) {
        // Like a kubelet tearing a node down: containers, then their pods.
        try {
          for (const ctr of await cri.listContainers()) {
            try {
              await cri.stopContainer(ctr.id, 0);
              await cri.removeContainer(ctr.id);
            } catch (e) {
              note(`container ${ctr.id}`, e);
            }
          }
          for (const pod of await cri.listPodSandbox()) {
            try {
              await cri.stopPodSandbox(pod.id);
              await cri.removePodSandbox(pod.id);
            } catch (e) {
              note(`pod ${pod.id}`, e);
            }
          }
        } catch (e) {
          note('CRI cleanup', e);
        }
      }
      cri?.close();
      try {
        await containerd?.stop();
      } catch (e) {
        note('containerd', e);
      }
      problems.push(...cleanupHostSync(dir));
      unregister();
      return problems;
    })();
    return cleaning;
  };

  try {
    const buildDir = join(dir, 'images');
    mkdirSync(buildDir);
    const pauseTar = buildPauseImage(buildDir);
    containerd = await startContainerd({ cri: true, extraConfig: criConfig({ cniConfDir, registryDir }), pathPrepend: opts.pathPrepend ?? [] });
    // After containerd's hook: at exit the daemon and its netns mounts go first, then the bridge.
    unregister = registerExitHook(() => {
      cleanupHostSync(dir);
    });
    cri = new CriClient(containerd.address);
    await waitCriReady(cri, containerd);
    await importImage(containerd, pauseTar);
    await importImage(containerd, join(FIXTURES, 'busybox.docker.tar'));
    await importImage(containerd, join(FIXTURES, 'hello-wasm.docker.tar'));
    // CRI learns of ctr's imports from containerd's event stream, not synchronously.
    for (const image of Object.values(IMAGES)) await waitImage(cri, image);
  } catch (e) {
    const problems = await cleanup();
    if (problems.length) (e as Error).message += `\n[cri harness] cleanup after the failure: ${problems.join('; ')}`;
    throw e;
  }

  const c = containerd;
  const client = cri;
  const podConfig = (name: string): PodSandboxConfig => ({
    metadata: { name, uid: randomUUID(), namespace: POD_NAMESPACE, attempt: 0 },
    hostname: name,
    log_directory: join(logDir, name),
    labels: { 'tugboat.test/harness': 'cri' },
    linux: {
      cgroup_parent: CGROUP_PARENT,
      security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } },
    },
  });
  return {
    containerd: c,
    cri: client,
    dir,
    cniConfDir,
    ipamDataDir,
    logDir,
    config: () => readFileSync(c.configPath, 'utf8'),
    podConfig,
    containerConfig: (name, image, command, extra = {}) => ({
      metadata: { name, attempt: 0 },
      image: { image },
      command,
      log_path: `${name}.log`,
      labels: { 'tugboat.test/harness': 'cri' },
      linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
      ...extra,
    }),
    async runPod(name, runtimeHandler = '') {
      const config = podConfig(name);
      mkdirSync(config.log_directory as string, { recursive: true });
      const id = await client.runPodSandbox(config, runtimeHandler);
      return { id, config };
    },
    async startContainer(podId, pc, cc) {
      const id = await client.createContainer(podId, cc, pc);
      await client.startContainer(id);
      return id;
    },
    async waitContainer(id, state) {
      let last: ContainerStatus | null = null;
      for (let i = 0; i < 600; i++) {
        last = (await client.containerStatus(id)).status;
        if (last?.state === state) return last;
        await sleep(100);
      }
      throw new Error(`container ${id} never reached ${state}; last status: ${JSON.stringify(last)}`);
    },
    cleanup,
  };
}

async function waitCriReady(cri: CriClient, c: ContainerdHandle): Promise<void> {
  let last = '';
  for (let i = 0; i < 300; i++) {
    try {
      const s = await cri.status(false, { timeoutMs: 5_000 });
      const conds = s.status?.conditions ?? [];
      const ready = (t: string) => conds.some((x) => x.type === t && x.status);
      if (ready('RuntimeReady') && ready('NetworkReady')) return;
      last = JSON.stringify(conds);
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`containerd's CRI plugin never became ready: ${last}\nlast lines of containerd's log:\n${c.logs().trimEnd().split('\n').slice(-30).join('\n')}`);
}

async function waitImage(cri: CriClient, image: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await cri.imageStatus(image)) return;
    await sleep(100);
  }
  throw new Error(`CRI never saw image ${image} after ctr imported it into ${CRI_NAMESPACE}`);
}
