// 200 Wasm containers of one group in one pod host, started and killed
// concurrently through ctr against a private containerd; afterwards the
// shim and the host hold the descriptors they held before, nothing is
// mounted under the containers' bundles, and once the group's last container
// is gone so are the host's process, runc state, cgroup and directory.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podHostDir } from '../../src/defaults.js';
import { startContainerd, type ContainerdHandle } from './daemons/containerd.js';
import { isAlive, listProcesses, mountsUnder, sleep, startTime, type ExecResult } from './daemons/process.js';
import { FIXTURES, REPO } from './helpers.js';
import { cgroupsLeft, removeNamespaceDirs } from './shim-helpers.js';

const RT = 'io.containerd.tugboat.v1';
const NS = `tb-dense-scale-${process.pid}`;
const TOOLS = 'tugboat.local/wasm-tools:latest';
const N = 200;
const BATCH = 20;

async function inBatches<T, R>(items: T[], width: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))(`${N} guests in one pod host`, () => {
  let c: ContainerdHandle | undefined;
  let tmp: string | undefined;
  const savedRoot = process.env.TUGBOAT_ROOT;
  const ctr = (args: string[]): Promise<ExecResult> => c!.ctr(['-n', NS, ...args], { timeoutMs: 180_000 });
  const group = ['--runtime', RT, '--annotation', 'io.containerd.runc.v2.group=dense'];
  const runcRoot = () => join('/run/containerd/runc', NS);
  const podHosts = () => (existsSync(runcRoot()) ? readdirSync(runcRoot()).filter((n) => n.startsWith('tugboat-pod-')) : []);
  const shims = () => listProcesses().filter((p) => p.argv.some((a) => a.endsWith('shim.mjs')) && p.argv.includes(c!.address));

  beforeAll(async () => {
    tmp = mkdtempSync('/tmp/tugboat-dense-scale-');
    process.env.TUGBOAT_ROOT = join(tmp, 'root');
    c = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
    const r = await ctr(['images', 'import', join(FIXTURES, 'wasm-tools.docker.tar')]);
    if (r.code !== 0) throw new Error(`import: ${r.stderr}`);
  });

  afterAll(async () => {
    try {
      if (c) {
        const tasks = await ctr(['tasks', 'ls', '-q']);
        await inBatches(tasks.stdout.split('\n').filter(Boolean), BATCH, (id) => ctr(['tasks', 'delete', '--force', id]));
        const cs = await ctr(['containers', 'ls', '-q']);
        await inBatches(cs.stdout.split('\n').filter(Boolean), BATCH, (id) => ctr(['containers', 'rm', id]));
        await c.stop();
      }
    } finally {
      removeNamespaceDirs(NS);
      if (savedRoot === undefined) delete process.env.TUGBOAT_ROOT;
      else process.env.TUGBOAT_ROOT = savedRoot;
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  });

  async function statuses(): Promise<Map<string, { pid: number; status: string }>> {
    const ls = await ctr(['tasks', 'ls']);
    const m = new Map<string, { pid: number; status: string }>();
    for (const line of ls.stdout.split('\n').slice(1)) {
      const [id, pid, status] = line.trim().split(/\s+/);
      if (id && pid && status) m.set(id, { pid: Number(pid), status });
    }
    return m;
  }

  async function waitAll(ids: string[], status: string): Promise<Map<string, { pid: number; status: string }>> {
    let t = new Map<string, { pid: number; status: string }>();
    for (let i = 0; i < 600; i++) {
      t = await statuses();
      if (ids.every((id) => t.get(id)?.status === status)) return t;
      await sleep(200);
    }
    throw new Error(`not ${status}: ${ids.filter((id) => t.get(id)?.status !== status).slice(0, 10).join(' ')}…`);
  }

  it(`starts ${N} guests concurrently in one host, kills them concurrently, and leaks nothing`, async () => {
    const anchor = 'dense-anchor';
    const a = await ctr(['run', '-d', ...group, TOOLS, anchor, '/exitcode.wasm', 'sleep', '3600']);
    expect(a.code, a.stderr).toBe(0);
    const t0 = await waitAll([anchor], 'RUNNING');
    const host = t0.get(anchor)!.pid;
    const [shim, ...more] = shims();
    expect(more).toEqual([]);
    const node = listProcesses().find((p) => p.ppid === host)!;
    expect(node.argv.some((x) => x.endsWith('pod-host.mjs'))).toBe(true);
    const before = { shim: fdCount(shim!.pid), host: fdCount(node.pid) };
    // The same process, not a later one that got its pid.
    const started0 = { host: startTime(host), node: startTime(node.pid) };
    const same = (pid: number, t: string | undefined) => isAlive(pid) && startTime(pid) === t;

    const ids = Array.from({ length: N }, (_, i) => `dense-${i}`);
    const started = await inBatches(ids, BATCH, (id) => ctr(['run', '-d', ...group, TOOLS, id, '/exitcode.wasm', 'sleep', '3600']));
    expect(started.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const running = await waitAll(ids, 'RUNNING');
    expect(new Set(ids.map((id) => running.get(id)!.pid))).toEqual(new Set([host]));
    expect(podHosts()).toHaveLength(1);
    expect(shims()).toHaveLength(1);
    console.log(`${N} guests: shim ${fdCount(shim!.pid)} fds (was ${before.shim}), pod host ${fdCount(node.pid)} fds (was ${before.host})`);

    const killed = await inBatches(ids, BATCH, (id) => ctr(['tasks', 'kill', '-s', 'SIGKILL', id]));
    expect(killed.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    await waitAll(ids, 'STOPPED');
    await inBatches(ids, BATCH, async (id) => {
      await ctr(['tasks', 'delete', id]);
      await ctr(['containers', 'rm', id]);
    });
    const left = await statuses();
    expect(ids.filter((id) => left.has(id))).toEqual([]);
    // The anchor still holds the host: it and the shim are back to what they held with one container.
    expect(same(node.pid, started0.node)).toBe(true);
    expect(fdCount(shim!.pid)).toBeLessThanOrEqual(before.shim + 2);
    expect(fdCount(node.pid)).toBeLessThanOrEqual(before.host + 2);
    expect(mountsUnder(join(c!.state, 'io.containerd.runtime.v2.task', NS)).filter((m) => !m.includes(anchor))).toEqual([]);

    // The last container takes the host with it: process, runc state, cgroup, directory.
    const id = podHosts()[0]!;
    expect((await ctr(['tasks', 'kill', '-s', 'SIGKILL', anchor])).code).toBe(0);
    await waitAll([anchor], 'STOPPED');
    await ctr(['tasks', 'delete', anchor]);
    await ctr(['containers', 'rm', anchor]);
    for (let i = 0; i < 100 && (podHosts().length > 0 || same(node.pid, started0.node) || existsSync(podHostDir(id))); i++) await sleep(100);
    expect(podHosts()).toEqual([]);
    expect(same(node.pid, started0.node)).toBe(false);
    expect(same(host, started0.host)).toBe(false);
    expect(existsSync(podHostDir(id))).toBe(false);
    expect(cgroupsLeft(NS, [id, ...ids, anchor])).toEqual([]);
    expect(mountsUnder(join(c!.state, 'io.containerd.runtime.v2.task', NS))).toEqual([]);
    for (let i = 0; i < 100 && shims().length > 0; i++) await sleep(100);
    expect(shims()).toEqual([]);
  }, 900_000);
});
