// Dense hosting through containerd (issue 9): Wasm containers at the `pod`
// and `process` isolation levels, driven by ctr (and the shim's own Task API
// over ttrpc where ctr 1.6 has no command, or where a latency is measured)
// against a private containerd. Every lifecycle call of the Task API, for each
// level; what is specific to a pod host (sharing, isolation between guests,
// its death, fairness) comes after.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_TYPE_URL, Task, packJsonAny } from '../../src/shim/proto/index.js';
import { TtrpcClient, callMethod } from '../../src/shim/ttrpc/index.js';
import { CTR_BIN, startContainerd, type ContainerdHandle } from './daemons/containerd.js';
import { sleep, type ExecResult } from './daemons/process.js';
import { REPO } from './helpers.js';
import { importFixtureImages, removeNamespaceDirs } from './shim-helpers.js';

const RT = 'io.containerd.tugboat.v1';
const NS = `tb-dense-${process.pid}`;
const WASM = (tag: string) => `tugboat.local/wasm:${tag}`;
const LEVELS = ['process', 'pod'] as const;
type Level = (typeof LEVELS)[number];

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))('dense hosting through containerd', () => {
  let c: ContainerdHandle | undefined;
  let tmp: string | undefined;
  const savedRoot = process.env.TUGBOAT_ROOT;
  const ctr = (args: string[], timeoutMs?: number): Promise<ExecResult> => c!.ctr(['-n', NS, ...args], timeoutMs === undefined ? {} : { timeoutMs });
  const at = (level: Level) => ['--runtime', RT, '--platform', 'wasi/wasm', '--annotation', `io.tugboat.isolation=${level}`];

  beforeAll(async () => {
    tmp = mkdtempSync('/tmp/tugboat-dense-');
    process.env.TUGBOAT_ROOT = join(tmp, 'root');
    c = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
    await importFixtureImages(ctr, tmp);
  });

  afterAll(async () => {
    try {
      if (c) {
        const tasks = await ctr(['tasks', 'ls', '-q']);
        for (const id of tasks.stdout.split('\n').filter(Boolean)) await ctr(['tasks', 'delete', '--force', id]);
        const cs = await ctr(['containers', 'ls', '-q']);
        for (const id of cs.stdout.split('\n').filter(Boolean)) await ctr(['containers', 'rm', id]);
        await c.stop();
      }
    } finally {
      removeNamespaceDirs(NS);
      if (savedRoot === undefined) delete process.env.TUGBOAT_ROOT;
      else process.env.TUGBOAT_ROOT = savedRoot;
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  });

  async function status(id: string): Promise<string | undefined> {
    const ls = await ctr(['tasks', 'ls']);
    return new RegExp(`^${id}\\s+\\d+\\s+(\\S+)`, 'm').exec(ls.stdout)?.[1];
  }

  async function waitStatus(id: string, want: string): Promise<void> {
    for (let i = 0; i < 300; i++) {
      if ((await status(id)) === want) return;
      await sleep(100);
    }
    throw new Error(`task ${id} never reached ${want} (last: ${await status(id)})`);
  }

  async function remove(...ids: string[]): Promise<void> {
    for (const id of ids) {
      await ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
      await waitStatus(id, 'STOPPED').catch(() => undefined);
      await ctr(['tasks', 'delete', id]);
      await ctr(['containers', 'rm', id]);
    }
  }

  /** The shim's own Task API (ttrpc), for what ctr 1.6 cannot do or cannot time. */
  async function shimClient(id: string): Promise<TtrpcClient> {
    const address = readFileSync(join(c!.state, 'io.containerd.runtime.v2.task', NS, id, 'address'), 'utf8');
    return TtrpcClient.connect(address);
  }

  /** `ctr events` while `fn` runs: the task topics seen for `id`, in order. */
  async function topicsDuring(id: string, fn: () => Promise<void>): Promise<string[]> {
    const events = spawn(CTR_BIN, ['--address', c!.address, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    events.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const topics = () =>
      out
        .split('\n')
        .filter((l) => l.includes(`"${id}"`) && l.includes('/tasks/'))
        .map((l) => /\/tasks\/[a-z-]+/.exec(l)?.[0] ?? '');
    try {
      await sleep(300); // ctr events subscribes asynchronously
      await fn();
      for (let j = 0; j < 40 && !topics().includes('/tasks/delete'); j++) await sleep(50);
    } finally {
      events.kill('SIGKILL');
    }
    return topics();
  }

  for (const level of LEVELS) {
    describe(`isolation ${level}`, () => {
      it('runs modules: output, exit status, a trap (134), a missing module (127), env and args', async () => {
        const r = await ctr(['run', '--rm', ...at(level), '--env', 'GREETING=hi', WASM('hello'), `${level}-hello`, '/hello.wasm', 'one']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/^hello from wasm\nargs: \/hello.wasm one\n/);
        expect(r.stdout).toContain('env: GREETING=hi\n');
        expect(r.stderr).toBe('stderr: hello\n');
        const e = await ctr(['run', '--rm', ...at(level), WASM('exitcode'), `${level}-exit`, '/exitcode.wasm', '3']);
        expect(e.code, e.stderr).toBe(3);
        const t = await ctr(['run', '--rm', ...at(level), WASM('exitcode'), `${level}-trap`, '/exitcode.wasm', 'trap']);
        expect(t.code).toBe(134);
        expect(t.stdout).toBe('about to trap\n');
        expect(t.stderr).toContain('tugboat: wasm trap in /exitcode.wasm: unreachable');
        const m = await ctr(['run', '--rm', ...at(level), WASM('exitcode'), `${level}-missing`, '/nope.wasm']);
        expect(m.code).toBe(127);
        expect(m.stderr).toContain('/nope.wasm: wasm module not found');
      });

      it('kill: any signal is 128+N (SIGTERM 143), SIGKILL of a spinning guest takes effect at once; SIGWINCH is ignored', async () => {
        const ids = [`${level}-term`, `${level}-spin`];
        try {
          const s = await ctr(['run', '-d', ...at(level), WASM('exitcode'), ids[0]!, '/exitcode.wasm', 'sleep', '600']);
          expect(s.code, s.stderr).toBe(0);
          const p = await ctr(['run', '-d', ...at(level), WASM('exitcode'), ids[1]!, '/exitcode.wasm', 'spin']);
          expect(p.code, p.stderr).toBe(0);
          await waitStatus(ids[1]!, 'RUNNING');
          await sleep(300); // spinning now
          expect((await ctr(['tasks', 'kill', '-s', 'SIGWINCH', ids[0]!])).code).toBe(0);
          await sleep(200);
          expect(await status(ids[0]!)).toBe('RUNNING');
          expect((await ctr(['tasks', 'kill', '-s', 'SIGTERM', ids[0]!])).code).toBe(0);
          const term = await shimClient(ids[0]!);
          try {
            expect((await callMethod(term, Task.method.wait, { id: ids[0]! })).exitStatus).toBe(143);
          } finally {
            term.close();
          }
          const client = await shimClient(ids[1]!);
          try {
            const t0 = performance.now();
            await callMethod(client, Task.method.kill, { id: ids[1]!, signal: 9 });
            const k = await callMethod(client, Task.method.wait, { id: ids[1]! });
            const ms = performance.now() - t0;
            expect(k.exitStatus).toBe(137);
            // 100 ms is the goal on a quiet machine; the slack is for a loaded 2-core CI.
            expect(ms).toBeLessThan(500);
            console.log(`${level}: SIGKILL of a spinning guest took ${ms.toFixed(1)} ms`);
          } finally {
            client.close();
          }
        } finally {
          await remove(...ids);
        }
      });

      it('exec runs another module in the container; ps shows the host; pause and resume; metrics', async () => {
        const id = `${level}-x`;
        try {
          const d = await ctr(['run', '-d', ...at(level), WASM('exitcode'), id, '/exitcode.wasm', 'sleep', '600']);
          expect(d.code, d.stderr).toBe(0);
          await waitStatus(id, 'RUNNING');
          const e = await ctr(['tasks', 'exec', '--exec-id', 'e1', id, '/exitcode.wasm', '4']);
          expect(e.code, e.stderr).toBe(4);
          const out = await ctr(['tasks', 'exec', '--exec-id', 'e2', id, '/exitcode.wasm', 'alloc', '1']);
          expect(out.code, out.stderr).toBe(0);
          expect(out.stdout).toBe('allocated 1 MiB\n');
          const ps = await ctr(['tasks', 'ps', id]);
          expect(ps.code, ps.stderr).toBe(0);
          const pid = Number(/^(\d+)/m.exec(ps.stdout.split('\n')[1] ?? '')?.[1]);
          expect(existsSync(`/proc/${pid}`)).toBe(true);
          expect((await ctr(['tasks', 'pause', id])).code).toBe(0);
          await waitStatus(id, 'PAUSED');
          expect((await ctr(['tasks', 'resume', id])).code).toBe(0);
          await waitStatus(id, 'RUNNING');
          const m = await ctr(['tasks', 'metrics', id]);
          expect(m.code, m.stderr).toBe(0);
          expect(m.stdout).toMatch(/pids\.current\s+1\b/);
          const usage = Number(/memory\.usage_in_bytes\s+(\d+)/.exec(m.stdout)?.[1] ?? /memory\.usage\s+(\d+)/.exec(m.stdout)?.[1]);
          expect(usage).toBeGreaterThan(1 << 20); // at least its linear memory
        } finally {
          await remove(id);
        }
      });

      it('pause stops a spinning guest at its next yield point; resume lets it go on', async () => {
        const id = `${level}-pause-spin`;
        try {
          expect((await ctr(['run', '-d', ...at(level), WASM('exitcode'), id, '/exitcode.wasm', 'spin'])).code).toBe(0);
          await waitStatus(id, 'RUNNING');
          await sleep(200);
          expect((await ctr(['tasks', 'pause', id])).code).toBe(0);
          await waitStatus(id, 'PAUSED');
          const cpu = async () => BigInt(/cpu\.usage_usec\s+(\d+)|cpuacct\.usage\s+(\d+)/.exec((await ctr(['tasks', 'metrics', id])).stdout)?.slice(1).find(Boolean) ?? '0');
          const a = await cpu();
          await sleep(500);
          expect(await cpu()).toBe(a);
          expect((await ctr(['tasks', 'resume', id])).code).toBe(0);
          await sleep(500);
          expect(await cpu()).toBeGreaterThan(a);
        } finally {
          await remove(id);
        }
      });

      it('update lowers the memory limit for later growth: the guest that grows past it ends 137, after a TaskOOM', async () => {
        const id = `${level}-upd`;
        const topics = await topicsDuring(id, async () => {
          const d = await ctr(['run', '-d', ...at(level), WASM('exitcode'), id, '/exitcode.wasm', 'sleepalloc', '2', '64']);
          expect(d.code, d.stderr).toBe(0);
          const client = await shimClient(id);
          try {
            await callMethod(client, Task.method.update, { id, resources: packJsonAny(OCI_TYPE_URL.LinuxResources, { memory: { limit: 32 << 20 } }) });
            const w = await callMethod(client, Task.method.wait, { id });
            expect(w.exitStatus).toBe(137);
          } finally {
            client.close();
          }
          await ctr(['tasks', 'delete', id]);
          await ctr(['containers', 'rm', id]);
        });
        expect(topics).toEqual(['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete']);
      });

      it('a memory limit from the spec caps the guest (137 with a message), and a guest below it runs', async () => {
        const over = await ctr(['run', '--rm', ...at(level), '--memory-limit', String(32 << 20), WASM('exitcode'), `${level}-oom`, '/exitcode.wasm', 'alloc', '64']);
        expect(over.code).toBe(137);
        expect(over.stderr).toContain("out of memory (the guest's memory cap)");
        const under = await ctr(['run', '--rm', ...at(level), '--memory-limit', String(32 << 20), WASM('exitcode'), `${level}-fits`, '/exitcode.wasm', 'alloc', '8']);
        expect(under.code, under.stderr).toBe(0);
      });
    });
  }
});
