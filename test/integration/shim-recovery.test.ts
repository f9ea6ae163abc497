// containerd-shim-tugboat-v1 recovery (protocols.md §1.5, §1.7, §3.4): tasks
// survive a containerd restart (listed, killable, waitable with the right
// status, removable), a SIGKILLed shim is cleaned up by containerd's
// `shim delete` without leaving processes, runc state, cgroups, mounts or
// sockets, and what happens while containerd is down (a task exits, a shim
// dies, the shim logs more than its log FIFO holds) is sorted out after it
// is back. A private containerd and namespace; everything is torn down in
// afterAll.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Task } from '../../src/shim/proto/index.js';
import { TtrpcClient, callMethod } from '../../src/shim/ttrpc/index.js';
import { CTR_BIN, type ContainerdHandle } from './daemons/containerd.js';
import { isAlive, listProcesses, mountsUnder, shimSocketPath, sleep, withDescendants, type ExecResult } from './daemons/process.js';
import { REPO } from './helpers.js';
import { cgroupsLeft, startShimContainerd, waitCatches, waitTask as waitTaskIn, type ShimContainerd } from './shim-helpers.js';

const RT = 'io.containerd.tugboat.v1';
// Per test process: runc's state (/run/containerd/runc/<ns>) and the cgroup parents are shared by every containerd on the host.
const NS = `tb-recovery-${process.pid}`;
const BUSYBOX = 'tugboat.local/busybox:latest';
const WASM_EXITCODE = 'tugboat.local/wasm:exitcode';
const GROUP = ['--annotation', 'io.containerd.runc.v2.group=sk-grp'];

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))('containerd-shim-tugboat-v1 recovery', () => {
  let d: ShimContainerd | undefined;
  let c: ContainerdHandle | undefined;

  const ctr = (args: string[], timeoutMs?: number): Promise<ExecResult> => d!.ctr(args, timeoutMs);
  const waitTask = (id: string) => waitTaskIn(c!.address, NS, id);
  const bundleOf = (id: string) => join(c!.state, 'io.containerd.runtime.v2.task', NS, id);
  const shimsOf = (id: string) => listProcesses().filter((p) => p.argv.some((a) => a.endsWith('shim.mjs')) && p.argv.includes(c!.address) && p.argv.includes(id));

  beforeAll(async () => {
    d = await startShimContainerd(NS, '/tmp/tugboat-shim-recovery-');
    c = d.handle;
  });

  afterAll(async () => {
    await d?.stop();
  });

  /**
   * Processes still naming a task: its bundle, or its id in the argv of
   * something of our namespace (shim, runc, ctr; other test runs use other
   * namespaces, so the same id there is not ours).
   */
  const mentioning = (ids: string[], bundles: string[]) =>
    listProcesses()
      .filter((p) => p.argv.some((a) => bundles.some((b) => a.includes(b))) || (p.argv.some((a) => a.includes(NS)) && p.argv.some((a) => a.split(/[\s/=]/).some((t) => ids.includes(t)))))
      .map((p) => `${p.pid} ${p.argv.join(' ')}`);

  /** `ctr task ls` row of `id`: pid and status, or undefined when not listed. */
  async function taskRow(id: string): Promise<{ pid: number; status: string } | undefined> {
    const ls = await ctr(['tasks', 'ls']);
    const m = new RegExp(`^${id}\\s+(\\d+)\\s+(\\S+)`, 'm').exec(ls.stdout);
    return m ? { pid: Number(m[1]), status: m[2]! } : undefined;
  }

  async function waitStatus(id: string, ok: (row: { pid: number; status: string } | undefined) => boolean, what: string) {
    let row: { pid: number; status: string } | undefined;
    for (let i = 0; i < 300; i++) {
      row = await taskRow(id);
      if (ok(row)) return row;
      await sleep(100);
    }
    throw new Error(`task ${id} never ${what} (last: ${JSON.stringify(row)})`);
  }

  /** Collects `ctr events` lines while it runs. */
  function events() {
    const child = spawn(CTR_BIN, ['--address', c!.address, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    /** Subscribed once an event of our own making shows up. */
    const ready = async () => {
      for (let i = 0; i < 100 && !out.includes('/namespaces/update'); i++) {
        await c!.ctr(['namespaces', 'label', NS, `probe=${i}`]);
        await sleep(50);
      }
      if (!out.includes('/namespaces/update')) throw new Error('ctr events never subscribed');
    };
    return { lines: () => out.split('\n'), kill: () => child.kill('SIGKILL'), ready };
  }

  it('tasks survive a containerd restart: listed RUNNING, killable, waitable (143 / 137), removable', async () => {
    const w = 'rs-wasm';
    const l = 'rs-linux';
    const g = 'rs-grouped'; // shares rs-wasm's shim: removing it must leave the shim serving rs-wasm
    const restartGroup = ['--annotation', 'io.containerd.runc.v2.group=rs-grp'];
    const ids = [w, l, g];
    try {
      const rw = await ctr(['run', '-d', '--runtime', RT, ...restartGroup, '--platform', 'wasi/wasm', WASM_EXITCODE, w, '/exitcode.wasm', 'sleep', '300']);
      expect(rw.code, rw.stderr).toBe(0);
      const rl = await ctr(['run', '-d', '--runtime', RT, BUSYBOX, l, 'sleep', '300']);
      expect(rl.code, rl.stderr).toBe(0);
      const rg = await ctr(['run', '-d', '--runtime', RT, ...restartGroup, BUSYBOX, g, 'sleep', '300']);
      expect(rg.code, rg.stderr).toBe(0);
      const before = new Map<string, { pid: number; status: string }>();
      for (const id of ids) before.set(id, (await waitStatus(id, (r) => r?.status === 'RUNNING', 'ran'))!);
      await waitCatches(before.get(w)!.pid, 15);
      const shims = [...shimsOf(w), ...shimsOf(l)].map((p) => p.pid);
      expect(shims).toHaveLength(2);
      expect(shimsOf(g)).toEqual([]); // served by rs-wasm's shim, which is named after rs-wasm
      const oldContainerd = c!.pid;

      await c!.restart();

      expect(c!.pid).not.toBe(oldContainerd);
      expect(shims.every(isAlive)).toBe(true);
      // Reloaded from the bundles: same tasks, same pids, still running.
      for (const id of ids) expect(await taskRow(id), id).toEqual(before.get(id));

      // The grouped busybox goes first: its Shutdown must not take rs-wasm's shim down.
      expect((await ctr(['tasks', 'kill', '-s', 'SIGKILL', g])).code).toBe(0);
      expect(await waitTask(g)).toBe(137);
      await waitStatus(g, (r) => r?.status === 'STOPPED', 'stopped');
      expect((await ctr(['tasks', 'rm', g])).code).toBe(0);
      expect((await ctr(['containers', 'rm', g])).code).toBe(0);
      for (let i = 0; i < 50 && existsSync(bundleOf(g)); i++) await sleep(100);
      expect(existsSync(bundleOf(g))).toBe(false);
      expect(shims.every(isAlive)).toBe(true);
      expect(await taskRow(w)).toEqual(before.get(w));

      // Waits in flight while the tasks are killed (a wait arriving after the exit answers at once too).
      const ww = waitTask(w);
      const wl = waitTask(l);
      const k1 = await ctr(['tasks', 'kill', '-s', 'SIGTERM', w]);
      expect(k1.code, k1.stderr).toBe(0);
      const k2 = await ctr(['tasks', 'kill', '-s', 'SIGKILL', l]);
      expect(k2.code, k2.stderr).toBe(0);
      expect(await ww).toBe(143);
      expect(await wl).toBe(137);
      await waitStatus(w, (r) => r?.status === 'STOPPED', 'stopped');
      await waitStatus(l, (r) => r?.status === 'STOPPED', 'stopped');

      // A wait after the exit answers at once with the same status.
      expect(await waitTask(w)).toBe(143);
      expect(await waitTask(l)).toBe(137);

      for (const id of [w, l]) {
        const d = await ctr(['tasks', 'rm', id]);
        expect(d.code, d.stderr).toBe(0);
        const r = await ctr(['containers', 'rm', id]);
        expect(r.code, r.stderr).toBe(0);
      }
      expect((await ctr(['tasks', 'ls', '-q'])).stdout.trim()).toBe('');
      for (let i = 0; i < 100 && shims.some(isAlive); i++) await sleep(100);
      expect(shims.filter(isAlive)).toEqual([]);
      for (const id of ids) {
        expect(existsSync(bundleOf(id)), id).toBe(false);
        expect(existsSync(join('/run/containerd/runc', NS, id)), id).toBe(false);
      }
      for (const key of [w, l, 'rs-grp']) expect(existsSync(shimSocketPath(c!.address, NS, key)), key).toBe(false);
      expect(cgroupsLeft(NS, ids)).toEqual([]);
      expect(mountsUnder(c!.state)).toEqual([]);
    } finally {
      for (const id of ids) {
        await ctr(['tasks', 'delete', '--force', id]);
        await ctr(['containers', 'rm', id]);
      }
    }
  });

  it('SIGKILLed shims (one alone, one serving a group): containerd reports exit 137, tasks and containers removable, nothing orphaned', async () => {
    // sk-alone has its own shim; sk-wasm and sk-linux share one (started first, sk-wasm names it in its argv).
    const tasks = [
      { id: 'sk-alone', shimOf: 'sk-alone', args: ['run', '-d', '--runtime', RT, BUSYBOX, 'sk-alone', 'sh', '-c', 'sleep 300 & sleep 300'] },
      { id: 'sk-wasm', shimOf: 'sk-wasm', args: ['run', '-d', '--runtime', RT, ...GROUP, '--platform', 'wasi/wasm', WASM_EXITCODE, 'sk-wasm', '/exitcode.wasm', 'sleep', '300'] },
      { id: 'sk-linux', shimOf: 'sk-wasm', args: ['run', '-d', '--runtime', RT, ...GROUP, BUSYBOX, 'sk-linux', 'sh', '-c', 'sleep 300 & sleep 300'] },
    ];
    const ev = events();
    try {
      await ev.ready();
      const watched: { id: string; bundle: string; sock: string; shim: number; pids: number[] }[] = [];
      for (const t of tasks) {
        const r = await ctr(t.args);
        expect(r.code, r.stderr).toBe(0);
        const row = await waitStatus(t.id, (x) => x?.status === 'RUNNING', 'ran');
        const bundle = bundleOf(t.id);
        const sock = readFileSync(join(bundle, 'address'), 'utf8').slice('unix://'.length);
        const shim = shimsOf(t.shimOf);
        expect(shim).toHaveLength(1);
        watched.push({ id: t.id, bundle, sock, shim: shim[0]!.pid, pids: withDescendants([row!.pid]) });
      }
      expect(watched[1]!.shim).toBe(watched[2]!.shim);
      expect(watched[1]!.sock).toBe(watched[2]!.sock);
      expect(watched[0]!.shim).not.toBe(watched[1]!.shim);
      // busybox: sh + two sleeps; all of them must go.
      expect(watched[0]!.pids.length).toBeGreaterThanOrEqual(2);
      expect(watched[2]!.pids.length).toBeGreaterThanOrEqual(2);

      for (const pid of new Set(watched.map((x) => x.shim))) process.kill(pid, 'SIGKILL');

      for (const x of watched) {
        // containerd: connection lost → `shim delete` → synthetic TaskExit (137), TaskDelete, bundle removed.
        const exitLine = () => ev.lines().find((line) => line.includes('/tasks/exit') && line.includes(`"container_id":"${x.id}"`));
        for (let i = 0; i < 150 && (exitLine() === undefined || existsSync(x.bundle)); i++) await sleep(100);
        expect(exitLine(), `TaskExit of ${x.id}`).toMatch(/"exit_status":137\b/);
        const row = await taskRow(x.id);
        expect(row === undefined || row.status === 'STOPPED', JSON.stringify(row)).toBe(true);
        expect(existsSync(x.bundle), x.bundle).toBe(false);

        // `ctr task rm` has nothing left to do (containerd already deleted the task); the container goes.
        const d = await ctr(['tasks', 'rm', x.id]);
        expect(d.code === 0 || /not found/.test(d.stderr), d.stderr).toBe(true);
        const r = await ctr(['containers', 'rm', x.id]);
        expect(r.code, r.stderr).toBe(0);
      }

      // Nothing orphaned.
      const all = watched.flatMap((x) => [x.shim, ...x.pids]);
      for (let i = 0; i < 100 && all.some(isAlive); i++) await sleep(100);
      expect(all.filter(isAlive)).toEqual([]);
      expect(mentioning(watched.map((x) => x.id), watched.map((x) => x.bundle))).toEqual([]);
      for (const x of watched) {
        expect(existsSync(join('/run/containerd/runc', NS, x.id)), `runc state of ${x.id}`).toBe(false);
        expect(existsSync(x.sock), x.sock).toBe(false);
        expect(mountsUnder(c!.state).filter((m) => m.includes(x.id))).toEqual([]);
      }
      expect(cgroupsLeft(NS, watched.map((x) => x.id))).toEqual([]);
      expect(mountsUnder(c!.state)).toEqual([]);
      expect((await ctr(['containers', 'ls', '-q'])).stdout.trim()).toBe('');
    } finally {
      ev.kill();
      for (const t of tasks) {
        await ctr(['tasks', 'delete', '--force', t.id]);
        await ctr(['containers', 'rm', t.id]);
      }
    }
  });

  it('while containerd is down a task exits and another shim is SIGKILLed: after the restart one is STOPPED with its status, the other cleaned up', async () => {
    const exits = 'dn-exit';
    const dies = 'dn-shim';
    try {
      // sh as pid 1 exits 7 on SIGTERM (its trap), so the status is the shim's, not a synthetic 137.
      const r1 = await ctr(['run', '-d', '--runtime', RT, BUSYBOX, exits, 'sh', '-c', 'trap "exit 7" TERM; sleep 300 & wait']);
      expect(r1.code, r1.stderr).toBe(0);
      const r2 = await ctr(['run', '-d', '--runtime', RT, '--platform', 'wasi/wasm', WASM_EXITCODE, dies, '/exitcode.wasm', 'sleep', '300']);
      expect(r2.code, r2.stderr).toBe(0);
      const e = await waitStatus(exits, (r) => r?.status === 'RUNNING', 'ran');
      const d = await waitStatus(dies, (r) => r?.status === 'RUNNING', 'ran');
      await waitCatches(e!.pid, 15);
      const exitsShim = shimsOf(exits)[0]!.pid;
      const diesShim = shimsOf(dies)[0]!.pid;
      const diesPids = withDescendants([d!.pid]);
      const diesBundle = bundleOf(dies);
      const diesSock = readFileSync(join(diesBundle, 'address'), 'utf8').slice('unix://'.length);

      await c!.restart(async () => {
        process.kill(e!.pid, 'SIGTERM');
        process.kill(diesShim, 'SIGKILL');
        for (let i = 0; i < 100 && (isAlive(e!.pid) || isAlive(diesShim)); i++) await sleep(50);
      });

      // The shim that lived kept the exit for containerd.
      expect(isAlive(exitsShim)).toBe(true);
      expect(await taskRow(exits)).toEqual({ pid: e!.pid, status: 'STOPPED' });
      expect(await waitTask(exits)).toBe(7);
      const rm = await ctr(['tasks', 'rm', exits]);
      expect(rm.code, rm.stderr).toBe(0);
      expect((await ctr(['containers', 'rm', exits])).code).toBe(0);

      // The dead one: containerd could not reconnect, ran `shim delete` on load and dropped the task.
      for (let i = 0; i < 100 && existsSync(diesBundle); i++) await sleep(100);
      expect(existsSync(diesBundle)).toBe(false);
      expect(await taskRow(dies)).toBeUndefined();
      expect((await ctr(['containers', 'rm', dies])).code).toBe(0);
      const all = [exitsShim, diesShim, ...diesPids];
      for (let i = 0; i < 100 && all.some(isAlive); i++) await sleep(100);
      expect(all.filter(isAlive)).toEqual([]);
      expect(mentioning([exits, dies], [diesBundle, bundleOf(exits)])).toEqual([]);
      for (const id of [exits, dies]) expect(existsSync(join('/run/containerd/runc', NS, id)), id).toBe(false);
      expect(existsSync(diesSock)).toBe(false);
      expect(existsSync(shimSocketPath(c!.address, NS, exits))).toBe(false);
      expect(cgroupsLeft(NS, [exits, dies])).toEqual([]);
      expect(mountsUnder(c!.state)).toEqual([]);
    } finally {
      for (const id of [exits, dies]) {
        await ctr(['tasks', 'delete', '--force', id]);
        await ctr(['containers', 'rm', id]);
      }
    }
  });

  it('a shim keeps serving while containerd is down, however much it logs (nobody drains its log FIFO)', async () => {
    const id = 'dn-chatty';
    try {
      const r = await ctr(['run', '-d', '--runtime', RT, BUSYBOX, id, 'sleep', '300']);
      expect(r.code, r.stderr).toBe(0);
      await waitStatus(id, (x) => x?.status === 'RUNNING', 'ran');
      const address = readFileSync(join(bundleOf(id), 'address'), 'utf8');
      let served = 0;
      let failure: unknown;
      await c!.restart(async () => {
        // Each call logs a debug line (containerd runs the shim with -debug): well past a pipe's 64 KiB.
        const client = await TtrpcClient.connect(address);
        try {
          for (let i = 0; i < 1500; i++) {
            await callMethod(client, Task.method.state, { id }, { timeoutMs: 5_000 });
            served++;
          }
        } catch (e) {
          failure = e;
        } finally {
          client.close();
        }
      });
      expect(failure).toBeUndefined();
      expect(served).toBe(1500);
      expect(await taskRow(id)).toMatchObject({ status: 'RUNNING' });
    } finally {
      await ctr(['tasks', 'delete', '--force', id]);
      await ctr(['containers', 'rm', id]);
    }
  });
});
