// containerd-shim-tugboat-v1 at scale (protocols.md §1.3 grouping, §1.5):
// 50 containers of one group (io.containerd.runc.v2.group), 25 Wasm and 25
// busybox sleepers, started and stopped concurrently through `ctr`, are served
// by exactly one shim whose open fds come back to where they were, and
// nothing is left afterwards: no shim, no container process, no runc state,
// no cgroup, no mount, no socket. Also: racing first starts of a group, a
// group shim outliving its first container's bundle, and a SIGKILLed group
// shim with 50 containers. A private containerd and namespace; everything is
// torn down in afterAll.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CTR_BIN, startContainerd, type ContainerdHandle } from './daemons/containerd.js';
import { isAlive, listProcesses, mountsUnder, shimSocketPath, sleep, withDescendants, type ExecResult } from './daemons/process.js';
import { REPO } from './helpers.js';
import { cgroupsLeft, importFixtureImages, removeNamespaceDirs, waitCatches, waitTask as waitTaskIn } from './shim-helpers.js';

const RT = 'io.containerd.tugboat.v1';
// Per test process: runc's state (/run/containerd/runc/<ns>) and the cgroup parents are shared by every containerd on the host.
const NS = `tb-scale-${process.pid}`;
const GROUP = 'g50';
const BUSYBOX = 'tugboat.local/busybox:latest';
const WASM_EXITCODE = 'tugboat.local/wasm:exitcode';
// Grouped Wasm containers default to `pod` isolation: this file is about one shim serving containers of their own.
const CONTAINER_LEVEL = ['--annotation', 'io.tugboat.isolation=container'];
const N = 25; // of each kind
const BATCH = 10;

/** Runs `fn` over `items`, at most `width` at a time. */
async function inBatches<T, R>(items: T[], width: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))('containerd-shim-tugboat-v1 scale', () => {
  let c: ContainerdHandle | undefined;
  let tmp: string | undefined;
  const savedRoot = process.env.TUGBOAT_ROOT;

  const ctr = (args: string[], timeoutMs?: number): Promise<ExecResult> => c!.ctr(['-n', NS, ...args], timeoutMs === undefined ? {} : { timeoutMs });
  const waitTask = (id: string) => waitTaskIn(c!.address, NS, id);
  const tasksDir = () => join(c!.state, 'io.containerd.runtime.v2.task', NS);
  const shims = () => listProcesses().filter((p) => p.argv.some((a) => a.endsWith('shim.mjs')) && p.argv.includes(c!.address));

  beforeAll(async () => {
    tmp = mkdtempSync('/tmp/tugboat-shim-scale-');
    // The shim inherits containerd's environment: keep the component cache private.
    process.env.TUGBOAT_ROOT = join(tmp, 'root');
    c = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
    await importFixtureImages(ctr, tmp);
  });

  afterAll(async () => {
    try {
      if (c) {
        const tasks = await ctr(['tasks', 'ls', '-q']);
        await inBatches(tasks.stdout.split('\n').filter(Boolean), BATCH, (id) => ctr(['tasks', 'delete', '--force', id]));
        const cs = await ctr(['containers', 'ls', '-q']);
        await inBatches(cs.stdout.split('\n').filter(Boolean), BATCH, (id) => ctr(['containers', 'rm', id]));
        await c.stop(); // also kills whatever still names the harness dir, unmounts, deletes runc state
      }
    } finally {
      removeNamespaceDirs(NS);
      if (savedRoot === undefined) delete process.env.TUGBOAT_ROOT;
      else process.env.TUGBOAT_ROOT = savedRoot;
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  });

  /** id → [pid, status] from one `ctr task ls`. */
  async function taskTable(): Promise<Map<string, { pid: number; status: string }>> {
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
      t = await taskTable();
      if (ids.every((id) => t.get(id)?.status === status)) return t;
      await sleep(100);
    }
    throw new Error(`not ${status}: ${ids.filter((id) => t.get(id)?.status !== status).join(' ')}`);
  }

  it(`serves ${2 * N} concurrent containers of one group from one shim, and leaks nothing`, async () => {
    const anchor = 'g50-anchor';
    const wasm = Array.from({ length: N }, (_, i) => `g50-w${i}`);
    const linux = Array.from({ length: N }, (_, i) => `g50-l${i}`);
    const ids = wasm.flatMap((w, i) => [w, linux[i]!]); // interleaved: both kinds start and stop together
    const groupOpt = ['--annotation', `io.containerd.runc.v2.group=${GROUP}`];
    const ourSockets = [GROUP, anchor, ...ids].map((k) => shimSocketPath(c!.address, NS, k));

    // The shim exists once the first container of the group does: its fds with one container are the reference.
    const a = await ctr(['run', '-d', '--runtime', RT, ...groupOpt, BUSYBOX, anchor, 'sleep', '300']);
    expect(a.code, a.stderr).toBe(0);
    await waitAll([anchor], 'RUNNING');
    const [shim, ...more] = shims();
    expect(more).toEqual([]);
    expect(shim).toBeDefined();
    const fd0 = fdCount(shim!.pid);

    const started = await inBatches(ids, BATCH, (id) =>
      wasm.includes(id)
        ? ctr(['run', '-d', '--runtime', RT, ...groupOpt, ...CONTAINER_LEVEL, '--platform', 'wasi/wasm', WASM_EXITCODE, id, '/exitcode.wasm', 'sleep', '300'])
        : ctr(['run', '-d', '--runtime', RT, ...groupOpt, BUSYBOX, id, 'sleep', '300']),
    );
    expect(started.map((r, i) => (r.code === 0 ? '' : `${ids[i]}: ${r.stderr}`)).filter(Boolean)).toEqual([]);
    const table = await waitAll(ids, 'RUNNING');

    // Exactly one shim, the same one, serving every task at one address.
    expect(shims().map((p) => p.pid)).toEqual([shim!.pid]);
    const addresses = new Set([anchor, ...ids].map((id) => readFileSync(join(tasksDir(), id, 'address'), 'utf8')));
    expect([...addresses]).toEqual([`unix://${shimSocketPath(c!.address, NS, GROUP)}`]);
    const containerPids = withDescendants(ids.map((id) => table.get(id)!.pid));
    expect(containerPids.length).toBeGreaterThanOrEqual(2 * N);
    expect(containerPids.every(isAlive)).toBe(true);
    // Per container the shim holds its stdio (FIFOs and pipes: 8 for `ctr run -d`'s three) and little else.
    const fdPeak = fdCount(shim!.pid);
    expect(fdPeak).toBeGreaterThan(fd0);
    expect(fdPeak - fd0).toBeLessThanOrEqual(2 * N * 12);

    // Stop all concurrently: SIGTERM to the Wasm containers (tini forwards it to the host), SIGKILL to busybox.
    for (const id of wasm) await waitCatches(table.get(id)!.pid, 15);
    const waits = ids.map((id) => waitTask(id)); // containerd's Tasks.Wait, in flight during the kills
    const killed = await inBatches(ids, BATCH, (id) => ctr(['tasks', 'kill', '-s', wasm.includes(id) ? 'SIGTERM' : 'SIGKILL', id]));
    expect(killed.map((r, i) => (r.code === 0 ? '' : `${ids[i]}: ${r.stderr}`)).filter(Boolean)).toEqual([]);
    const statuses = await Promise.all(waits);
    expect(Object.fromEntries(ids.map((id, i) => [id, statuses[i]]))).toEqual(Object.fromEntries(ids.map((id) => [id, wasm.includes(id) ? 143 : 137])));
    await waitAll(ids, 'STOPPED');
    const removed = await inBatches(ids, BATCH, async (id) => {
      const d = await ctr(['tasks', 'rm', id]);
      const r = await ctr(['containers', 'rm', id]);
      return d.code === 0 && r.code === 0 ? '' : `${id}: ${d.stderr}${r.stderr}`;
    });
    expect(removed.filter(Boolean)).toEqual([]);
    expect([...(await taskTable()).keys()]).toEqual([anchor]);

    // Back to one container: the same shim, its fds where they were.
    expect(shims().map((p) => p.pid)).toEqual([shim!.pid]);
    let fdAfter = fdCount(shim!.pid);
    for (let i = 0; i < 50 && fdAfter > fd0 + 2; i++) {
      await sleep(100);
      fdAfter = fdCount(shim!.pid);
    }
    expect(fdAfter, `fds: ${fd0} with one container, ${fdPeak} with ${2 * N + 1}, ${fdAfter} after`).toBeLessThanOrEqual(fd0 + 2);
    for (let i = 0; i < 100 && containerPids.some(isAlive); i++) await sleep(100);
    expect(containerPids.filter(isAlive)).toEqual([]);
    for (const id of ids) expect(existsSync(join(tasksDir(), id)), id).toBe(false);

    // The last one goes: the shim exits and nothing is left.
    expect((await ctr(['tasks', 'kill', '-s', 'SIGKILL', anchor])).code).toBe(0);
    await waitAll([anchor], 'STOPPED');
    expect((await ctr(['tasks', 'rm', anchor])).code).toBe(0);
    expect((await ctr(['containers', 'rm', anchor])).code).toBe(0);
    for (let i = 0; i < 100 && (isAlive(shim!.pid) || ourSockets.some((s) => existsSync(s))); i++) await sleep(100);
    expect(isAlive(shim!.pid)).toBe(false);
    expect(shims()).toEqual([]);
    expect(ourSockets.filter((s) => existsSync(s))).toEqual([]);
    expect(mountsUnder(c!.state)).toEqual([]);
    expect(cgroupsLeft(NS, [anchor, ...ids])).toEqual([]);
    expect(existsSync(join('/run/containerd/runc', NS)) ? readdirSync(join('/run/containerd/runc', NS)) : []).toEqual([]);
    expect(existsSync(tasksDir()) ? readdirSync(tasksDir()) : []).toEqual([]);
    // Naming our tasks' directory, or a task of ours in something of our namespace (shim, runc, ctr).
    const mentions = listProcesses().filter((p) => p.argv.some((x) => x.includes(tasksDir())) || (p.argv.some((x) => x.includes(NS)) && p.argv.some((x) => x.includes(`${GROUP}-`))));
    expect(mentions.map((p) => `${p.pid} ${p.argv.join(' ')}`)).toEqual([]);
    expect((await ctr(['containers', 'ls', '-q'])).stdout.trim()).toBe('');
  });

  it('the first containers of a group, started all at once, still get one shim', async () => {
    // Every `shim start` races to create the group's socket: exactly one may win, the rest must reuse it.
    for (let round = 0; round < 3; round++) {
      const group = `race${round}`;
      const ids = Array.from({ length: BATCH }, (_, i) => `${group}-${i}`);
      try {
        const started = await Promise.all(ids.map((id) => ctr(['run', '-d', '--runtime', RT, '--annotation', `io.containerd.runc.v2.group=${group}`, BUSYBOX, id, 'sleep', '300'])));
        expect(started.map((r, i) => (r.code === 0 ? '' : `${ids[i]}: ${r.stderr}`)).filter(Boolean)).toEqual([]);
        await waitAll(ids, 'RUNNING');
        const served = shims().filter((p) => ids.some((id) => p.argv.includes(id)));
        expect(served.map((p) => `${p.pid} ${p.argv.join(' ')}`), `round ${round}`).toHaveLength(1);
        const addresses = new Set(ids.map((id) => readFileSync(join(tasksDir(), id, 'address'), 'utf8')));
        expect([...addresses]).toEqual([`unix://${shimSocketPath(c!.address, NS, group)}`]);
      } finally {
        const present = [...(await taskTable()).keys()].filter((id) => ids.includes(id));
        await inBatches(present, BATCH, (id) => ctr(['tasks', 'kill', '-s', 'SIGKILL', id]));
        await waitAll(present, 'STOPPED').catch(() => undefined);
        await inBatches(ids, BATCH, async (id) => {
          await ctr(['tasks', 'rm', id]);
          await ctr(['containers', 'rm', id]);
        });
      }
      for (let i = 0; i < 100 && shims().length > 0; i++) await sleep(100);
      expect(shims()).toEqual([]);
      expect(existsSync(shimSocketPath(c!.address, NS, group))).toBe(false);
      expect(cgroupsLeft(NS, ids)).toEqual([]);
    }
  });

  it('a group shim outlives the container it was started for (its cwd bundle is removed)', async () => {
    const group = 'outlive';
    const opt = ['--annotation', `io.containerd.runc.v2.group=${group}`];
    const ids = ['ol-first', 'ol-second', 'ol-wasm'];
    const rm = async (id: string) => {
      if ((await ctr(['tasks', 'kill', '-s', 'SIGKILL', id])).code === 0) await waitAll([id], 'STOPPED').catch(() => undefined);
      const d = await ctr(['tasks', 'rm', id]);
      const r = await ctr(['containers', 'rm', id]);
      return d.code === 0 && r.code === 0 ? '' : `${id}: ${d.stderr}${r.stderr}`;
    };
    try {
      for (const id of ids.slice(0, 2)) expect((await ctr(['run', '-d', '--runtime', RT, ...opt, BUSYBOX, id, 'sleep', '300'])).code).toBe(0);
      await waitAll(ids.slice(0, 2), 'RUNNING');
      const [shim, ...more] = shims();
      expect(more).toEqual([]);
      expect(await rm('ol-first')).toBe('');
      expect(existsSync(join(tasksDir(), 'ol-first'))).toBe(false);
      expect(isAlive(shim!.pid)).toBe(true);

      // The same shim, now in a deleted directory, creates, runs, execs and reports exits.
      const w = await ctr(['run', '-d', '--runtime', RT, ...opt, '--platform', 'wasi/wasm', WASM_EXITCODE, 'ol-wasm', '/exitcode.wasm', 'sleep', '300']);
      expect(w.code, w.stderr).toBe(0);
      await waitAll(['ol-wasm'], 'RUNNING');
      expect(shims().map((p) => p.pid)).toEqual([shim!.pid]);
      const e = await ctr(['tasks', 'exec', '--exec-id', 'x1', 'ol-second', 'sh', '-c', 'echo exec-ok; exit 3']);
      expect(e.stdout).toBe('exec-ok\n');
      expect(e.code).toBe(3);
      const we = await ctr(['tasks', 'exec', '--exec-id', 'x1', 'ol-wasm', '/exitcode.wasm', '4']);
      expect(we.code, we.stderr).toBe(4);
      expect(await rm('ol-second')).toBe('');
      expect(await rm('ol-wasm')).toBe('');
      for (let i = 0; i < 100 && isAlive(shim!.pid); i++) await sleep(100);
      expect(isAlive(shim!.pid)).toBe(false);
      expect(existsSync(shimSocketPath(c!.address, NS, group))).toBe(false);
      expect(cgroupsLeft(NS, ids)).toEqual([]);
    } finally {
      for (const id of ids) if ((await taskTable()).has(id) || (await ctr(['containers', 'info', id])).code === 0) await rm(id);
    }
  });

  it(`a SIGKILLed group shim serving ${2 * N} containers: containerd cleans every one up (exit 137), nothing orphaned`, async () => {
    const group = 'gkill';
    const ids = Array.from({ length: 2 * N }, (_, i) => `gk-${i}`);
    try {
      const started = await inBatches(ids, BATCH, (id) => ctr(['run', '-d', '--runtime', RT, '--annotation', `io.containerd.runc.v2.group=${group}`, BUSYBOX, id, 'sleep', '300']));
      expect(started.map((r, i) => (r.code === 0 ? '' : `${ids[i]}: ${r.stderr}`)).filter(Boolean)).toEqual([]);
      const table = await waitAll(ids, 'RUNNING');
      const [shim, ...more] = shims();
      expect(more).toEqual([]);
      const containerPids = withDescendants(ids.map((id) => table.get(id)!.pid));
      // (A Wait in flight fails with the connection, as with runc's shim: the exits are read from the events.)
      const ev = spawn(CTR_BIN, ['--address', c!.address, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      ev.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const exitOf = (id: string) => /"exit_status":(\d+)/.exec(out.split('\n').find((l) => l.includes('/tasks/exit') && l.includes(`"container_id":"${id}"`)) ?? '')?.[1];
      try {
        // Subscribed once an event of our own making shows up.
        for (let i = 0; i < 100 && !out.includes('/namespaces/update'); i++) {
          await c!.ctr(['namespaces', 'label', NS, `probe=${i}`]);
          await sleep(50);
        }
        expect(out).toContain('/namespaces/update');
        process.kill(shim!.pid, 'SIGKILL');
        // containerd runs `shim delete` for every task (all at once), then publishes their exits.
        for (let i = 0; i < 300 && ids.some((id) => existsSync(join(tasksDir(), id)) || exitOf(id) === undefined); i++) await sleep(100);
      } finally {
        ev.kill('SIGKILL');
      }
      // containerd's own words for a cleanup that did not end in 137 (it publishes 255 when `shim delete` fails or outlives its timeout).
      const cleanupLog = c!.logs().split('\n').filter((l) => /clean(ing)? up after shim disconnected/.test(l)).join('\n');
      const exits = Object.fromEntries(ids.map((id) => [id, exitOf(id)]));
      expect(exits, cleanupLog).toEqual(Object.fromEntries(ids.map((id) => [id, '137'])));
      expect(ids.filter((id) => existsSync(join(tasksDir(), id)))).toEqual([]);
      expect([...(await taskTable()).keys()].filter((id) => ids.includes(id))).toEqual([]);
      for (let i = 0; i < 100 && containerPids.some(isAlive); i++) await sleep(100);
      expect(containerPids.filter(isAlive)).toEqual([]);
      expect(existsSync(join('/run/containerd/runc', NS)) ? readdirSync(join('/run/containerd/runc', NS)) : []).toEqual([]);
      expect(existsSync(shimSocketPath(c!.address, NS, group))).toBe(false);
      expect(mountsUnder(c!.state)).toEqual([]);
      expect(cgroupsLeft(NS, ids)).toEqual([]);
      expect(listProcesses().filter((p) => p.argv.some((x) => x.includes(tasksDir())) || (p.argv.some((x) => x.includes(NS)) && p.argv.some((x) => /\bgk-\d+\b/.test(x)))).map((p) => `${p.pid} ${p.argv.join(' ')}`)).toEqual([]);
      const removed = await inBatches(ids, BATCH, async (id) => (await ctr(['containers', 'rm', id])).code);
      expect(new Set(removed)).toEqual(new Set([0]));
    } finally {
      const present = [...(await taskTable()).keys()].filter((id) => ids.includes(id));
      await inBatches(present, BATCH, (id) => ctr(['tasks', 'delete', '--force', id]));
      await inBatches(ids, BATCH, (id) => ctr(['containers', 'rm', id]));
    }
  });
});
