// Kubernetes' path: containerd 1.6's CRI plugin driven by our own small CRI
// client, pods on a private CNI bridge (Debian's containernetworking-plugins).
// The first suite proves the harness with runc: a pause sandbox and two
// busybox containers in one network namespace, ExecSync, logs, and a teardown
// that leaves nothing behind. The second runs the same kind of pod with the
// `tugboat` runtime handler (containerd-shim-tugboat-v1 from bin/): pause, a
// Wasm container and a Linux sidecar; then two HTTP components at `container`
// isolation (a container annotation), one under `tugboat seccomp-profile
// --format oci` as its Localhost profile, one under RuntimeDefault.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodSandboxConfig } from './cri/client.js';
import { CRI_NAMESPACE, IMAGES, POD_NETWORK, startPodHarness, type PodHarness } from './cri/pod-harness.js';
import { listProcesses, mountsUnder, sleep } from './daemons/process.js';
import { KERNEL_TELLS_WRITTEN_PAGES } from '../unit/helpers/kernel.js';
import { FIXTURES, fdLinks, REPO, seccompMode, TUGBOAT, wasmHostBelow } from './helpers.js';

const isRoot = process.getuid?.() === 0;
const SHIM_BIN = join(REPO, 'bin', 'containerd-shim-tugboat-v1');
const TOOLS = 'tugboat.local/wasm-tools:latest';
const HTTP = 'tugboat.local/component-http:latest';

/** Keeps running until SIGTERM, then exits 0 at once (busybox sh as pid 1 would otherwise ignore it). */
const SERVE = (hello: string) => ['sh', '-c', `echo ${hello}; trap 'exit 0' TERM; sleep 2147483647 & wait`];

function inSubnet(ip: string): boolean {
  return ip.startsWith(POD_NETWORK.subnet.replace(/\.\d+\/\d+$/, '.'));
}

/** The IPv4 address of eth0 as `ip -4 -o addr show dev eth0` prints it. */
function eth0Address(out: string): string | undefined {
  return /\binet (\d+\.\d+\.\d+\.\d+)\/\d+/.exec(out)?.[1];
}

/** CRI's log format: `<RFC3339Nano> <stream> <P|F> <text>`; the text of the given stream. */
function logText(path: string, stream: 'stdout' | 'stderr'): string {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => /^\S+ (stdout|stderr) ([PF]) (.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === stream)
    .map((m) => (m[2] === 'F' ? `${m[3]}\n` : m[3]))
    .join('');
}

/**
 * A task's argv once it has exec'd its program: `runc start` (and so the CRI
 * call) returns as soon as runc init is released, which may be just before the
 * exec, while /proc still shows `runc init`. Bounded by attempts.
 */
async function cmdlineOnceExeced(pid: number): Promise<string> {
  let cmdline = '';
  for (let i = 0; i < 100; i++) {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.startsWith('runc\0init')) break;
    await sleep(50);
  }
  return cmdline;
}

function bridgePorts(): string[] {
  try {
    return readdirSync(`/sys/class/net/${POD_NETWORK.bridge}/brif`);
  } catch {
    return [];
  }
}

/** Addresses host-local holds (files named by IP in its dataDir). */
function allocatedIps(h: PodHarness): string[] {
  const net = join(h.ipamDataDir, POD_NETWORK.name);
  return existsSync(net) ? readdirSync(net).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
}

async function cleanupOrReport(h: PodHarness | undefined): Promise<void> {
  if (!h) return;
  const problems = await h.cleanup();
  expect(problems).toEqual([]);
  expect(existsSync(`/sys/class/net/${POD_NETWORK.bridge}`)).toBe(false);
  expect(existsSync(h.dir)).toBe(false);
}

describe.skipIf(!isRoot)('CRI pod harness (runc)', () => {
  let h: PodHarness | undefined;
  let pod: { id: string; config: PodSandboxConfig };
  let podIp: string;
  let app: string;
  let sidecar: string;

  beforeAll(async () => {
    h = await startPodHarness();
  });

  afterAll(async () => {
    await cleanupOrReport(h);
  });

  const harness = (): PodHarness => {
    if (!h) throw new Error('harness did not start');
    return h;
  };

  it('speaks CRI runtime.v1 to containerd 1.6 and sees the imported images', async () => {
    const { cri } = harness();
    const v = await cri.version();
    expect(v.runtime_name).toBe('containerd');
    expect(v.runtime_api_version).toBe('v1');
    expect(v.runtime_version).toMatch(/^v?1\.6\./);
    const tags = (await cri.listImages()).flatMap((i) => i.repo_tags);
    expect(tags).toEqual(expect.arrayContaining([IMAGES.pause, IMAGES.busybox, IMAGES.helloWasm]));
  });

  it('runs a pause sandbox with an address from the private bridge', async () => {
    const { cri, runPod } = harness();
    pod = await runPod('cri-runc');
    const s = await cri.podSandboxStatus(pod.id, true);
    expect(s.status?.state).toBe('SANDBOX_READY');
    expect(s.status?.runtime_handler).toBe('');
    podIp = s.status?.network?.ip ?? '';
    expect(inSubnet(podIp), podIp).toBe(true);
    // one veth on our bridge, one address held by host-local (in our private dataDir)
    expect(bridgePorts()).toHaveLength(1);
    expect(allocatedIps(harness())).toEqual([podIp]);
    // the sandbox runs our pause binary under runc
    const info = JSON.parse(s.info.info ?? '{}') as { image?: string; runtimeType?: string; pid?: number };
    expect(info.image).toBe(IMAGES.pause);
    expect(info.runtimeType).toBe('io.containerd.runc.v2');
    expect(await cmdlineOnceExeced(info.pid ?? 0)).toBe('/pause\0');
  });

  it('two busybox containers share the pod network namespace (same eth0 address)', async () => {
    const { cri, startContainer, containerConfig, waitContainer } = harness();
    app = await startContainer(pod.id, pod.config, containerConfig('app', IMAGES.busybox, SERVE('app up')));
    sidecar = await startContainer(pod.id, pod.config, containerConfig('sidecar', IMAGES.busybox, SERVE('sidecar up')));
    await waitContainer(app, 'CONTAINER_RUNNING');
    await waitContainer(sidecar, 'CONTAINER_RUNNING');

    const addr = async (id: string) => {
      const r = await cri.execSync(id, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      expect(r.exit_code, r.stderr.toString()).toBe(0);
      return eth0Address(r.stdout.toString());
    };
    expect(await addr(app)).toBe(podIp);
    expect(await addr(sidecar)).toBe(podIp);

    // the same namespace, not merely the same address: same nsfs inode, same hostname
    const netns = async (id: string) => (await cri.execSync(id, ['readlink', '/proc/self/ns/net'])).stdout.toString().trim();
    const appNs = await netns(app);
    expect(appNs).toMatch(/^net:\[\d+\]$/);
    expect(await netns(sidecar)).toBe(appNs);
    expect((await cri.execSync(sidecar, ['hostname'])).stdout.toString()).toBe('cri-runc\n');
    // but each container has its own pid namespace (kubelet's default): both see their own pid 1
    const pid1 = async (id: string) => (await cri.execSync(id, ['cat', '/proc/1/cmdline'])).stdout.toString().split('\0')[0];
    expect(await pid1(app)).toBe('sh');
    expect(await pid1(sidecar)).toBe('sh');

    const listed = await cri.listContainers({ pod_sandbox_id: pod.id });
    expect(listed.map((c) => c.metadata?.name).sort()).toEqual(['app', 'sidecar']);
    expect(listed.every((c) => c.state === 'CONTAINER_RUNNING')).toBe(true);
  });

  it('ExecSync returns stdout, stderr and the exit code', async () => {
    const { cri } = harness();
    const r = await cri.execSync(app, ['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(r.stdout.toString()).toBe('out\n');
    expect(r.stderr.toString()).toBe('err\n');
    expect(r.exit_code).toBe(3);
    // the sidecar reaches the app over the shared loopback
    const srv = await cri.execSync(app, ['sh', '-c', "nc -l -p 7070 -e echo pong-from-app >/dev/null 2>&1 & echo started"]);
    expect(srv.exit_code, srv.stderr.toString()).toBe(0);
    let reply = '';
    for (let i = 0; i < 50 && reply === ''; i++) {
      if (i > 0) await sleep(100); // the listener may not be bound yet
      reply = (await cri.execSync(sidecar, ['sh', '-c', 'echo ping | nc 127.0.0.1 7070 2>/dev/null'])).stdout.toString();
    }
    expect(reply).toBe('pong-from-app\n');
  });

  it('writes container output to the pod log directory in CRI format', async () => {
    const { cri } = harness();
    const s = (await cri.containerStatus(app)).status;
    expect(s?.log_path).toBe(join(pod.config.log_directory as string, 'app.log'));
    expect(logText(s?.log_path as string, 'stdout')).toBe('app up\n');
  });

  it('stop and remove leave no container, sandbox, veth, address, netns mount or shim', async () => {
    const { cri, containerd } = harness();
    for (const id of [app, sidecar]) {
      await cri.stopContainer(id, 10);
      const s = (await cri.containerStatus(id)).status;
      expect(s?.state).toBe('CONTAINER_EXITED');
      expect(s?.exit_code).toBe(0); // the TERM trap ran: the signal reached pid 1
      await cri.removeContainer(id);
    }
    expect(await cri.listContainers()).toEqual([]);

    await cri.stopPodSandbox(pod.id);
    expect((await cri.podSandboxStatus(pod.id)).status?.state).toBe('SANDBOX_NOTREADY');
    expect(bridgePorts()).toEqual([]);
    expect(allocatedIps(harness())).toEqual([]);
    await cri.removePodSandbox(pod.id);
    expect(await cri.listPodSandbox()).toEqual([]);

    expect(mountsUnder(containerd.state)).toEqual([]);
    expect(mountsUnder(containerd.root)).toEqual([]);
    const shims = listProcesses().filter((p) => /containerd-shim/.test(p.argv[0] ?? '') && p.argv.includes(containerd.address));
    expect(shims.map((p) => p.argv.join(' '))).toEqual([]);
  });
});

describe.skipIf(!isRoot || !existsSync(SHIM_BIN) || !existsSync(join(REPO, 'dist', 'shim.mjs')))('CRI runtime handler tugboat', () => {
  let h: PodHarness | undefined;
  let pod: { id: string; config: PodSandboxConfig };
  let podIp: string;

  beforeAll(async () => {
    h = await startPodHarness({ pathPrepend: [join(REPO, 'bin')] });
  });

  afterAll(async () => {
    await cleanupOrReport(h);
  });

  const harness = (): PodHarness => {
    if (!h) throw new Error('harness did not start');
    return h;
  };
  /** The process CRI reports for a container (its verbose status's info): a pod host's, or a container's init. */
  const pidOf = async (id: string) => (JSON.parse((await harness().cri.containerStatus(id, true)).info.info ?? '{}') as { pid?: number }).pid ?? 0;

  it('runs a pod through containerd-shim-tugboat-v1: pause, two Wasm containers in one pod host, and a Linux sidecar sharing eth0', async () => {
    const { cri, runPod, startContainer, containerConfig, waitContainer, containerd } = harness();
    // More images: a long-running Wasm container (wasm-tools: exitcode sleep) and an HTTP component.
    for (const tar of ['wasm-tools.docker.tar', 'component-http.docker.tar']) {
      const r = await containerd.ctr(['-n', CRI_NAMESPACE, 'images', 'import', join(FIXTURES, tar)], { timeoutMs: 300_000 });
      expect(r.code, r.stderr).toBe(0);
    }
    for (const image of [TOOLS, HTTP]) {
      for (let i = 0; i < 300 && !(await cri.imageStatus(image)); i++) await sleep(100);
    }
    pod = await runPod('cri-tugboat', 'tugboat');
    const s = await cri.podSandboxStatus(pod.id, true);
    expect(s.status?.state).toBe('SANDBOX_READY');
    expect(s.status?.runtime_handler).toBe('tugboat');
    podIp = s.status?.network?.ip ?? '';
    expect(inSubnet(podIp), podIp).toBe(true);
    const info = JSON.parse(s.info.info ?? '{}') as { runtimeType?: string; pid?: number };
    expect(info.runtimeType).toBe('io.containerd.tugboat.v1');
    // the sandbox itself is a Linux container: our pause binary
    expect(await cmdlineOnceExeced(info.pid ?? 0)).toBe('/pause\0');

    const sidecar = await startContainer(pod.id, pod.config, containerConfig('sidecar', IMAGES.busybox, SERVE('sidecar up')));
    await waitContainer(sidecar, 'CONTAINER_RUNNING');
    const wasm = await startContainer(pod.id, pod.config, containerConfig('wasm', IMAGES.helloWasm, [], { args: ['one', 'two'] }));
    const done = await waitContainer(wasm, 'CONTAINER_EXITED');
    expect(done.exit_code, done.message).toBe(0);
    expect(logText(done.log_path, 'stdout')).toMatch(/^hello from wasm\nargs: \S*hello\.wasm one two\n/);
    expect(logText(done.log_path, 'stderr')).toBe('stderr: hello\n');

    // Two more Wasm containers, a sleeper and an HTTP component: guests of one pod host (`pod` is the default for CRI pods).
    const sleeper = await startContainer(pod.id, pod.config, containerConfig('sleeper', TOOLS, ['/exitcode.wasm', 'sleep', '600']));
    const web = await startContainer(pod.id, pod.config, containerConfig('web', HTTP, []));
    await waitContainer(sleeper, 'CONTAINER_RUNNING');
    await waitContainer(web, 'CONTAINER_RUNNING');
    const host = await pidOf(sleeper);
    expect(host).toBeGreaterThan(0);
    expect(await pidOf(web)).toBe(host);
    const hostNode = listProcesses().find((p) => p.ppid === host);
    expect(hostNode?.argv.some((a) => a.endsWith('pod-host.mjs'))).toBe(true);

    // The pod host is in the pod's network namespace: the sidecar's eth0 and loopback.
    const netns = (await cri.execSync(sidecar, ['readlink', '/proc/self/ns/net'])).stdout.toString().trim();
    expect(readlinkSync(`/proc/${host}/ns/net`)).toBe(netns);
    const ip = await cri.execSync(sidecar, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    expect(ip.exit_code, ip.stderr.toString()).toBe(0);
    expect(eth0Address(ip.stdout.toString())).toBe(podIp);
    // The HTTP component serves on the pod's network: the sidecar reaches it on localhost (compiling its 14 MB core module takes a while).
    let body = '';
    for (let i = 0; i < 120 && body === ''; i++) {
      if (i > 0) await sleep(500);
      body = (await cri.execSync(sidecar, ['sh', '-c', 'wget -qO- http://127.0.0.1:8080/from-sidecar 2>/dev/null'])).stdout.toString();
    }
    expect(body).toBe('hello from a wasm component: /from-sidecar\n');

    // every task of the pod is served by our shim, none by runc's
    const shims = listProcesses().filter((p) => p.argv.includes(containerd.address) && p.argv.includes('-namespace'));
    expect(shims.length).toBeGreaterThan(0);
    expect(shims.every((p) => p.argv.some((a) => a.endsWith('shim.mjs'))), shims.map((p) => p.argv.join(' ')).join('\n')).toBe(true);
  }, 300_000);

  it("takes `tugboat seccomp-profile --format oci` as a Localhost profile: a container-isolation host under it opens its userfaultfd, under RuntimeDefault none", async () => {
    const { cri, startContainer, containerConfig, waitContainer } = harness();
    const profile = join(harness().dir, 'tugboat-wasm-host.json');
    writeFileSync(profile, execFileSync(TUGBOAT, ['seccomp-profile', '--format', 'oci'], { encoding: 'utf8' }));
    const sidecar = (await cri.listContainers({ pod_sandbox_id: pod.id })).find((c) => c.metadata?.name === 'sidecar')?.id ?? '';
    expect(sidecar).not.toBe('');
    // Each in a container (and host) of its own, on its own port of the pod's network: the pod host's `web` has 8080.
    const own = (name: string, port: number, seccomp: { profile_type: 'Localhost' | 'RuntimeDefault'; localhost_ref?: string }) => {
      const c = containerConfig(name, HTTP, [], { annotations: { 'io.tugboat.isolation': 'container' }, envs: [{ key: 'PORT', value: String(port) }] });
      c.linux!.security_context!.seccomp = seccomp;
      return startContainer(pod.id, pod.config, c);
    };
    const fast = await own('web-localhost', 8081, { profile_type: 'Localhost', localhost_ref: profile });
    const plain = await own('web-default', 8082, { profile_type: 'RuntimeDefault' });
    for (const id of [fast, plain]) await waitContainer(id, 'CONTAINER_RUNNING');
    // Answers from the sidecar once compiled: many requests through one host, each on an instance put back as it was made.
    const get = async (port: number, path: string) => (await cri.execSync(sidecar, ['sh', '-c', `wget -qO- http://127.0.0.1:${port}${path} 2>/dev/null`])).stdout.toString();
    for (const port of [8081, 8082]) {
      let body = '';
      for (let i = 0; i < 120 && body === ''; i++) {
        if (i > 0) await sleep(500);
        body = await get(port, '/first');
      }
      expect(body).toBe('hello from a wasm component: /first\n');
    }
    const bodies = (await cri.execSync(sidecar, ['sh', '-c', 'for i in $(seq 1 50); do wget -qO- http://127.0.0.1:8081/id/$i; done'])).stdout.toString();
    expect(bodies).toBe(Array.from({ length: 50 }, (_, i) => `id ${i + 1}\n`).join(''));

    const hostOf = async (id: string) => wasmHostBelow(await pidOf(id));
    const fastHost = await hostOf(fast);
    const plainHost = await hostOf(plain);
    // Hosts of their own, not the pod host's guests.
    expect(new Set([fastHost, plainHost]).size).toBe(2);
    expect(seccompMode(fastHost)).toBe('2');
    expect(seccompMode(plainHost)).toBe('2');
    if (KERNEL_TELLS_WRITTEN_PAGES) expect(fdLinks(fastHost)).toContain('anon_inode:[userfaultfd]');
    expect(fdLinks(plainHost)).not.toContain('anon_inode:[userfaultfd]');
  }, 300_000);

  it('stop and remove clean the pod up', async () => {
    const { cri, containerd } = harness();
    for (const c of await cri.listContainers({ pod_sandbox_id: pod.id })) {
      await cri.stopContainer(c.id, 10);
      await cri.removeContainer(c.id);
    }
    await cri.stopPodSandbox(pod.id);
    expect(bridgePorts()).toEqual([]);
    expect(allocatedIps(harness())).toEqual([]);
    await cri.removePodSandbox(pod.id);
    expect(await cri.listPodSandbox()).toEqual([]);
    expect(mountsUnder(containerd.state)).toEqual([]);
  });
});
