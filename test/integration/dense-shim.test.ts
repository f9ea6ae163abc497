// Dense hosting through containerd (issue 9): Wasm containers at the `pod`
// and `process` isolation levels, driven by ctr (and the shim's own Task API
// over ttrpc where ctr 1.6 has no command, or where a latency is measured)
// against a private containerd. Every lifecycle call of the Task API, for each
// level; what is specific to a pod host (sharing, isolation between guests,
// its death, fairness) comes after.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_TYPE_URL, Task, packJsonAny } from '../../src/shim/proto/index.js';
import { TtrpcClient, callMethod } from '../../src/shim/ttrpc/index.js';
import { CTR_BIN, type ContainerdHandle } from './daemons/containerd.js';
import { isAlive, listProcesses, sleep, type ExecResult } from './daemons/process.js';
import { FIXTURES, REPO } from './helpers.js';
import { startShimContainerd, waitTask, type ShimContainerd } from './shim-helpers.js';

const RT = 'io.containerd.tugboat.v1';
const NS = `tb-dense-${process.pid}`;
const WASM = (tag: string) => `tugboat.local/wasm:${tag}`;
const LEVELS = ['process', 'pod'] as const;
const TOOLS = 'tugboat.local/wasm-tools:latest';
type Level = (typeof LEVELS)[number];

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))('dense hosting through containerd', () => {
  let d: ShimContainerd | undefined;
  let c: ContainerdHandle | undefined;
  const ctr = (args: string[], timeoutMs?: number): Promise<ExecResult> => d!.ctr(args, timeoutMs);
  const at = (level: Level) => ['--runtime', RT, '--platform', 'wasi/wasm', '--annotation', `io.tugboat.isolation=${level}`];

  beforeAll(async () => {
    d = await startShimContainerd(NS, '/tmp/tugboat-dense-');
    c = d.handle;
    const tools = await ctr(['images', 'import', join(FIXTURES, 'wasm-tools.docker.tar')]);
    if (tools.code !== 0) throw new Error(`import wasm-tools: ${tools.stderr}`);
  });

  afterAll(async () => {
    await d?.stop();
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
      if ((await status(id)) === undefined) {
        await ctr(['containers', 'rm', id]);
        continue;
      }
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

      it('runs components: output, exit status; kill, pause and resume of a spinning one; metrics', async () => {
        const r = await ctr(['run', '--rm', ...at(level), WASM('component-hello'), `${level}-chello`, '/hello.wasm', 'one']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/^hello from wasm\nargs: \/hello.wasm one\n/);
        expect(r.stderr).toBe('stderr: hello\n');
        const e = await ctr(['run', '--rm', ...at(level), WASM('component-exit-with-code'), `${level}-cexit`, '/exit-with-code.wasm', 'a', 'b']);
        expect(e.code, e.stderr).toBe(42);
        const f = await ctr(['run', '--rm', ...at(level), WASM('component-fileio'), `${level}-cfile`, '/fileio.wasm', 'ls', '/']);
        expect(f.code, f.stderr).toBe(0);
        expect(f.stdout.split('\n')).toContain('fileio.wasm');
        const id = `${level}-cspin`;
        try {
          expect((await ctr(['run', '-d', ...at(level), WASM('component-exitcode'), id, '/exitcode.wasm', 'spin'])).code).toBe(0);
          await waitStatus(id, 'RUNNING');
          await sleep(1000);
          expect((await ctr(['tasks', 'pause', id])).code).toBe(0);
          await waitStatus(id, 'PAUSED');
          const cpu = async () => BigInt(/cpu\.usage_usec\s+(\d+)|cpuacct\.usage\s+(\d+)/.exec((await ctr(['tasks', 'metrics', id])).stdout)?.slice(1).find(Boolean) ?? '0');
          await sleep(300);
          const a = await cpu();
          await sleep(500);
          expect(await cpu()).toBe(a);
          expect((await ctr(['tasks', 'resume', id])).code).toBe(0);
          await waitStatus(id, 'RUNNING');
          const client = await shimClient(id);
          try {
            const t0 = performance.now();
            await callMethod(client, Task.method.kill, { id, signal: 9 });
            expect((await callMethod(client, Task.method.wait, { id })).exitStatus).toBe(137);
            console.log(`${level}: SIGKILL of a spinning component took ${(performance.now() - t0).toFixed(1)} ms`);
          } finally {
            client.close();
          }
        } finally {
          await remove(id);
        }
      });

      it('a memory limit from the spec caps the guest (137 with a message), and a guest below it runs', async () => {
        const over = await ctr(['run', '--rm', ...at(level), '--memory-limit', String(32 << 20), WASM('exitcode'), `${level}-oom`, '/exitcode.wasm', 'alloc', '64']);
        expect(over.code).toBe(137);
        expect(over.stderr).toContain("out of memory (the guest's memory cap)");
        const under = await ctr(['run', '--rm', ...at(level), '--memory-limit', String(32 << 20), WASM('exitcode'), `${level}-fits`, '/exitcode.wasm', 'alloc', '8']);
        expect(under.code, under.stderr).toBe(0);
        // A component's core modules grow within the same limit (component-grow: 1 MiB per argument).
        const mib = (n: number) => Array.from({ length: n }, (_, i) => String(i));
        const comp = await ctr(['run', '--rm', ...at(level), '--memory-limit', String(8 << 20), WASM('component-grow'), `${level}-coom`, '/grow.wasm', ...mib(10)]);
        expect(comp.code).toBe(137);
        expect(comp.stderr).toContain("out of memory (the guest's memory cap)");
        const cfits = await ctr(['run', '--rm', ...at(level), '--memory-limit', String(8 << 20), WASM('component-grow'), `${level}-cfits`, '/grow.wasm', ...mib(3)]);
        expect(cfits.code, cfits.stderr).toBe(0);
      });
    });
  }

  describe('the pod host', () => {
    const group = (g: string) => ['--runtime', RT, '--annotation', `io.containerd.runc.v2.group=${g}`];
    const runcRoot = () => join('/run/containerd/runc', NS);
    const podHosts = () => (existsSync(runcRoot()) ? readdirSync(runcRoot()).filter((n) => n.startsWith('tugboat-pod-')) : []);
    const hostPid = async (id: string) => Number(/^(\d+)/m.exec((await ctr(['tasks', 'ps', id])).stdout.split('\n')[1] ?? '')?.[1]);

    it('serves the Wasm containers of a group from one host: a runc container in the group\'s cgroup parent, its own namespaces, seccomp', async () => {
      const ids = ['share-a', 'share-b'];
      try {
        for (const id of ids) expect((await ctr(['run', '-d', ...group('share'), TOOLS, id, '/exitcode.wasm', 'sleep', '600'])).code).toBe(0);
        for (const id of ids) await waitStatus(id, 'RUNNING');
        const [a, b] = [await hostPid(ids[0]!), await hostPid(ids[1]!)];
        expect(a).toBeGreaterThan(0);
        expect(b).toBe(a);
        expect(podHosts()).toHaveLength(1);
        const cg = readFileSync(`/proc/${a}/cgroup`, 'utf8');
        expect(cg).toMatch(new RegExp(`:memory:/${NS}/tugboat-pod-[0-9a-f]{12}$`, 'm'));
        expect(readlinkSync(`/proc/${a}/ns/net`)).not.toBe(readlinkSync('/proc/self/ns/net'));
        expect(readlinkSync(`/proc/${a}/ns/mnt`)).not.toBe(readlinkSync('/proc/self/ns/mnt'));
        const node = listProcesses().find((p) => p.ppid === a);
        expect(node?.argv.some((x) => x.endsWith('pod-host.mjs'))).toBe(true);
        expect(readFileSync(`/proc/${node!.pid}/status`, 'utf8')).toMatch(/^Seccomp:\s+2$/m);
      } finally {
        await remove(...ids);
      }
      // The last container of the group took the host with it.
      for (let i = 0; i < 50 && podHosts().length > 0; i++) await sleep(100);
      expect(podHosts()).toEqual([]);
    });

    it('a component guest killed while it spins leaves none of its descriptors in the host', async () => {
      const anchor = 'fds-anchor';
      const spinners = Array.from({ length: 5 }, (_, i) => `fds-spin-${i}`);
      const starters = Array.from({ length: 5 }, (_, i) => `fds-start-${i}`);
      try {
        expect((await ctr(['run', '-d', ...group('fds'), TOOLS, anchor, '/exitcode.wasm', 'sleep', '600'])).code).toBe(0);
        await waitStatus(anchor, 'RUNNING');
        const host = await hostPid(anchor);
        const node = listProcesses().find((p) => p.ppid === host && p.argv.some((a) => a.endsWith('pod-host.mjs')))!;
        expect(node, `no pod host below ${host}`).toBeDefined();
        const before = readdirSync(`/proc/${node.pid}/fd`).length;
        for (const id of spinners) expect((await ctr(['run', '-d', ...group('fds'), WASM('component-exitcode'), id, '/exitcode.wasm', 'spin'])).code).toBe(0);
        for (const id of spinners) await waitStatus(id, 'RUNNING');
        // Its thread is ended by Worker.terminate(): no cleanup of its own runs there.
        // A host that died says why in the shim's log (its status, its last words).
        const why = () => c!.logs().split('\n').filter((l) => l.includes('pod host')).join('\n');
        for (const id of spinners) {
          const k = await ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
          expect(k.code, `${id}: ${k.stderr}; tasks: ${k.code === 0 ? '' : (await ctr(['tasks', 'ls'])).stdout}; shim: ${k.code === 0 ? '' : why()}`).toBe(0);
        }
        for (const id of spinners) await waitStatus(id, 'STOPPED');
        await remove(...spinners);
        // Killed the moment they start: their threads are loading (a thread
        // terminated inside koffi's load aborted the whole host; thread-gate.ts).
        for (const id of starters) {
          expect((await ctr(['run', '-d', ...group('fds'), WASM('component-exitcode'), id, '/exitcode.wasm', 'spin'])).code).toBe(0);
          const k = await ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
          expect(k.code, `${id}: ${k.stderr}; shim: ${k.code === 0 ? '' : why()}`).toBe(0);
        }
        for (const id of starters) await waitStatus(id, 'STOPPED');
        await remove(...starters);
        expect(existsSync(`/proc/${node.pid}`), 'the pod host ended while its spinning guests were killed').toBe(true);
        const after = readdirSync(`/proc/${node.pid}/fd`).length;
        expect(after).toBeLessThanOrEqual(before + 2);
      } finally {
        await remove(anchor, ...spinners, ...starters);
      }
    });

    it('keeps guests apart: a file, an env var and output of one are unreachable from the other', async () => {
      const [a, b] = ['iso-a', 'iso-b'];
      try {
        expect((await ctr(['run', '-d', ...group('iso'), '--env', 'SECRET=s3cr3t-env', TOOLS, a, '/exitcode.wasm', 'sleep', '600'])).code).toBe(0);
        expect((await ctr(['run', '-d', ...group('iso'), TOOLS, b, '/exitcode.wasm', 'sleep', '600'])).code).toBe(0);
        await waitStatus(b, 'RUNNING');
        expect(await hostPid(a)).toBe(await hostPid(b));
        const w = await ctr(['tasks', 'exec', '--exec-id', 'w', a, '/fileio.wasm', 'write', '/secret.txt', 's3cr3t-file']);
        expect(w.code, w.stderr).toBe(0);
        const aRoot = join(c!.state, 'io.containerd.runtime.v2.task', NS, a, 'rootfs');
        expect(readFileSync(join(aRoot, 'secret.txt'), 'utf8')).toBe('s3cr3t-file');
        for (const path of ['/secret.txt', join(aRoot, 'secret.txt'), `/../../../..${join(aRoot, 'secret.txt')}`, `/proc/1/root${join(aRoot, 'secret.txt')}`]) {
          const r = await ctr(['tasks', 'exec', '--exec-id', `r${path.length}`, b, '/fileio.wasm', 'read', path]);
          expect(r.code, path).toBe(1);
          expect(r.stdout).not.toContain('s3cr3t');
        }
        const ls = await ctr(['tasks', 'exec', '--exec-id', 'ls', b, '/fileio.wasm', 'ls', '/']);
        expect(ls.stdout.split('\n')).not.toContain('secret.txt');
        const env = await ctr(['tasks', 'exec', '--exec-id', 'env', b, '/hello.wasm']);
        expect(env.code, env.stderr).toBe(0);
        expect(env.stdout).not.toContain('s3cr3t');
        // A's exec'd guest got A's env, and its output reached A's exec only.
        const envA = await ctr(['tasks', 'exec', '--exec-id', 'env', a, '/hello.wasm']);
        expect(envA.stdout).toContain('env: SECRET=s3cr3t-env');
      } finally {
        await remove(a, b);
      }
    });

    it('loses no output: short-lived execs and containers of one host printing and exiting at once, under load', async () => {
      // A guest here ends within a millisecond of its start, often before its
      // client has opened its end of the output FIFOs, and the client deletes
      // it as soon as it sees the exit: every byte must still reach the FIFOs,
      // for a few lines and for more than the pipes and FIFO hold. Two
      // spinning processes make the machine busy, as a loaded CI is.
      //
      // The execs are driven through the shim's Task API with readers of our
      // own that open each FIFO late, as ctr's do: ctr 1.6 itself loses the
      // output of some short execs under load with any shim (measured with
      // containerd-shim-runc-v2 and busybox under the same load: 1-6 of 160
      // execs lost their stdout or stderr), so through ctr this test measured
      // ctr. Containers still go through ctr; only their status is checked
      // (README, Limitations).
      const id = 'out-a';
      const spinners = [0, 1].map(() => spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
      const lost: string[] = [];
      const fifoDir = mkdtempSync(join(d!.tmp, 'fifo-'));
      let client: TtrpcClient | undefined;
      try {
        expect((await ctr(['run', '-d', ...group('out'), '--env', 'MARK=every-byte', TOOLS, id, '/exitcode.wasm', 'sleep', '600'])).code).toBe(0);
        await waitStatus(id, 'RUNNING');
        client = await shimClient(id);
        // 256 KiB, numbered lines: more than a pipe, a FIFO and the shim's buffer together.
        const big = Array.from({ length: 4096 }, (_, i) => `${String(i).padStart(6, '0')} ${'x'.repeat(56)}`).join('\n') + '\n';
        writeFileSync(join(c!.state, 'io.containerd.runtime.v2.task', NS, id, 'rootfs', 'big.txt'), big);
        /** One exec through the Task API; its FIFOs read by `cat`s that start `lateMs` after Start was sent. */
        const exec = async (execId: string, args: string[], lateMs: number) => {
          const [stdout, stderr] = ['out', 'err'].map((n) => join(fifoDir, `${execId}-${n}`));
          execFileSync('mkfifo', [stdout!, stderr!]);
          const spec = { args, env: ['MARK=every-byte'], cwd: '/', user: { uid: 0, gid: 0 } };
          await callMethod(client!, Task.method.exec, { id, execId, stdout, stderr, spec: packJsonAny(OCI_TYPE_URL.Process, spec) });
          const read = (path: string) =>
            new Promise<string>((resolve) => {
              setTimeout(() => {
                const cat = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'ignore'] });
                let out = '';
                cat.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
                cat.once('close', () => resolve(out));
              }, lateMs);
            });
          const outputs = Promise.all([read(stdout!), read(stderr!)]);
          await callMethod(client!, Task.method.start, { id, execId });
          const { exitStatus } = await callMethod(client!, Task.method.wait, { id, execId });
          await callMethod(client!, Task.method.delete, { id, execId });
          const [o, e] = await outputs;
          return { exitStatus, stdout: o, stderr: e };
        };
        const check = (what: string, r: { exitStatus: number; stdout: string; stderr: string }, ok: boolean) => {
          if (!ok) lost.push(`${what}: status ${r.exitStatus}, ${r.stdout.length} bytes on stdout, stderr ${JSON.stringify(r.stderr.slice(0, 200))}`);
        };
        for (let round = 0; round < 16; round++) {
          await Promise.all([
            ...[0, 1, 2, 3].map(async (i) => {
              const r = await exec(`h${round}-${i}`, ['/hello.wasm', `r${round}`], (round + i) % 4 === 0 ? 0 : 5 * i);
              check(`exec h${round}-${i}`, r, r.exitStatus === 0 && r.stdout.startsWith(`hello from wasm\nargs: /hello.wasm r${round}\n`) && r.stdout.includes('env: MARK=every-byte\n') && r.stderr === 'stderr: hello\n');
            }),
            (async () => {
              const r = await exec(`big${round}`, ['/fileio.wasm', 'read', '/big.txt'], round % 3 === 0 ? 0 : 10);
              check(`exec big${round}`, r, r.exitStatus === 0 && r.stdout === big);
            })(),
            (async () => {
              // A container, not an exec: its status must be exact, but its output is ctr's to lose
              // (ctr 1.6's task.Delete closes its FIFO readers before it drains them).
              const r = await ctr(['run', '--rm', ...group('out'), TOOLS, `out-run-${round}`, '/hello.wasm', `c${round}`]);
              if (r.code !== 0) lost.push(`run out-run-${round}: status ${r.code}, stderr ${JSON.stringify(r.stderr.slice(0, 200))}`);
            })(),
          ]);
        }
      } finally {
        client?.close();
        for (const s of spinners) s.kill('SIGKILL');
        await remove(id);
        rmSync(fifoDir, { recursive: true, force: true });
      }
      expect(lost).toEqual([]);
    });

    it('when the host dies, each of its containers ends with 137, and the next container gets a new host', async () => {
      const ids = ['die-a', 'die-b'];
      for (const id of ids) expect((await ctr(['run', '-d', ...group('die'), TOOLS, id, '/exitcode.wasm', 'sleep', '600'])).code).toBe(0);
      for (const id of ids) await waitStatus(id, 'RUNNING');
      const pid = await hostPid(ids[0]!);
      const waits = ids.map((id) => waitTask(c!.address, NS, id));
      process.kill(pid, 'SIGKILL');
      expect(await Promise.all(waits)).toEqual([137, 137]);
      // The shim says so in its log, with the host's status.
      for (let i = 0; i < 50 && !c!.logs().includes('pod host exited'); i++) await sleep(100);
      expect(c!.logs()).toMatch(/pod host exited.*"status":137|"status":137.*pod host exited/);
      expect(c!.logs()).toContain('pod host died: its containers end with 137');
      for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
      const next = await ctr(['run', '--rm', ...group('die'), TOOLS, 'die-c', '/hello.wasm']);
      expect(next.code, next.stderr).toBe(0);
      expect(next.stdout).toContain('hello from wasm');
      for (const id of ids) {
        await ctr(['tasks', 'delete', id]);
        await ctr(['containers', 'rm', id]);
      }
      for (let i = 0; i < 50 && podHosts().length > 0; i++) await sleep(100);
      expect(podHosts()).toEqual([]);
    });

    it("a spinning guest does not hold up a neighbour's timer (yield points)", async () => {
      const ids = ['fair-alone', 'fair-spin', 'fair-tick'];
      const ticks = async (id: string) => {
        const t = await ctr(['run', '--rm', ...group('fair'), TOOLS, id, '/exitcode.wasm', 'ticks', '100', '20']);
        expect(t.code, t.stderr).toBe(0);
        const m = /lateness p50 (\d+) us p90 (\d+) us worst (\d+) us/.exec(t.stdout);
        return { p50: Number(m?.[1]) / 1000, p90: Number(m?.[2]) / 1000, worst: Number(m?.[3]) / 1000 };
      };
      const show = (l: { p50: number; p90: number; worst: number }) => `median ${l.p50.toFixed(1)}, p90 ${l.p90.toFixed(1)}, worst ${l.worst.toFixed(1)} ms`;
      try {
        // The same pod host keeps running between the two (a sleeper holds it).
        expect((await ctr(['run', '-d', ...group('fair'), TOOLS, 'fair-hold', '/exitcode.wasm', 'sleep', '600'])).code).toBe(0);
        const alone = await ticks(ids[0]!);
        expect((await ctr(['run', '-d', ...group('fair'), TOOLS, ids[1]!, '/exitcode.wasm', 'spin'])).code).toBe(0);
        await waitStatus(ids[1]!, 'RUNNING');
        await sleep(300);
        const beside = await ticks(ids[2]!);
        console.log(`pod: a 20 ms timer woke up late by: alone ${show(alone)}; beside a spinning guest ${show(beside)} (goal: 50 ms)`);
        // The goal is 50 ms. The worst wake-up on a loaded 2-core machine is the kernel's scheduling of a
        // busy process (it shows alone too, and in plain JavaScript with a 10 ms cooperative loop): asserted
        // with slack; nine in ten wake-ups are asserted at the goal.
        expect(beside.p90).toBeLessThan(50);
        expect(beside.worst).toBeLessThan(500);
      } finally {
        await remove('fair-hold', ...ids);
      }
    });
  });
});
