// wasi:http served by the host (src/wasi-host/http/): the hand-written
// handler (examples/components/http-bench.wat) at each isolation level a Wasm
// HTTP component can run at: `container` (its own runc container), `pod` (a
// guest of the pod host of its shim group, under a private containerd) and
// `process` (a guest of `tugboat run` itself). A level is a launcher: start
// the component with annotations and a memory cap, give its URL, signal it,
// report its status and the host process's peak memory. At `pod` level, two
// guests of one host are also checked to be kept apart
// (examples/components/http-probe.wat shows what a guest reaches).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CTR_BIN } from './daemons/containerd.js';
import { cleanEnv, listProcesses } from './daemons/process.js';
import { fdLinks, freePort, REPO, TUGBOAT, TugboatSandbox, WASM } from './helpers.js';
import { startShimContainerd, type ShimContainerd } from './shim-helpers.js';
import { KERNEL_TELLS_WRITTEN_PAGES } from '../unit/helpers/kernel.js';

const BENCH = WASM('component-http-bench');
const GiB = 1024 ** 3;

interface Launch {
  annotations?: Record<string, string>;
  /** Memory cap of the guest's host (e.g. 256m). */
  memory?: string;
  /** The fixture image's tag (default: the hand-written handler, component-http-bench). */
  image?: string;
  /** Environment of the guest, besides PORT. */
  env?: Record<string, string>;
  /** `pod`: the shim group to join (default: one of its own), so that guests share a pod host. */
  group?: string;
}

interface HttpGuest {
  port: number;
  stderr(): string;
  /** Signals the guest's host (as its runtime's stop would). */
  signal(name: NodeJS.Signals): void;
  /** Its status once it has ended. */
  exited: Promise<number>;
  /** Peak resident memory of the host process serving it (VmHWM), in bytes. */
  peakMemory(): number;
  /** The host process serving it. */
  hostPid: number;
  /** `pod`: the guest's root filesystem, as the machine sees it. */
  rootfs?: string;
  /** Ends it (whatever state it is in) and removes what it left. */
  cleanup(): Promise<void>;
  /** A runtime's controls (containerd's Task API through ctr), where the test drives one. */
  controls?: {
    pause(): Promise<void>;
    resume(): Promise<void>;
    /** Memory its metrics report. */
    memoryBytes(): Promise<number>;
  };
}

interface Isolation {
  name: string;
  /** What the level needs before its first launch (a containerd), and its removal after the last. */
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
  launch(opts: Launch): Promise<HttpGuest>;
}

/** VmHWM of a process, in bytes. */
const peakOf = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** Bytes of a size like 256m. */
function bytesOf(size: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(size);
  if (!m) throw new Error(`bad size ${size}`);
  return Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase());
}

/** The launcher `child` has ended, asked by `stop` if it still ran (SIGKILL after 20 s). */
async function stopped(child: ChildProcess, exited: Promise<number>, stop: () => void): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  stop();
  const late = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(late);
}

/** A child's output, and its status once it has ended (a signal N as 128+N). */
function watch(child: ChildProcess): { stderr: () => string; exited: Promise<number> } {
  let stderr = '';
  child.stdout!.resume();
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number>((resolve) => child.once('exit', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15))));
  return { stderr: () => stderr, exited };
}

/** The processes below `pid` (children, recursively). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const task of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)) {
    out.push(task, ...descendants(task));
  }
  return out;
}

async function untilAnswering(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await send(port, '/ready');
      return;
    } catch {
      if (i > 600 || child.exitCode !== null) throw new Error(`the HTTP component never came up: ${stderr()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** `tugboat run` of the component in the foreground, on the host's network, at a level (`levelArgs`); `hostOf` finds its host process. */
function tugboatRun(name: string, levelArgs: string[], hostOf: (tb: TugboatSandbox, child: ChildProcess) => number): Isolation {
  return {
    name,
    async launch({ annotations = {}, memory, image, env = {} }) {
      const tb = new TugboatSandbox();
      const port = await freePort();
      const args = ['--root', tb.root, 'run', '--rm', ...levelArgs, '--network', 'host', '-e', `PORT=${port}`];
      for (const [k, v] of Object.entries(env)) args.push('-e', `${k}=${v}`);
      for (const [k, v] of Object.entries(annotations)) args.push('--annotation', `${k}=${v}`);
      if (memory) args.push('--memory', memory);
      const child = spawn(TUGBOAT, [...args, image ? WASM(image) : BENCH], { stdio: ['ignore', 'pipe', 'pipe'] });
      const { stderr, exited } = watch(child);
      await untilAnswering(port, child, stderr);
      const pid = hostOf(tb, child);
      return {
        port,
        stderr,
        signal: (name) => child.kill(name),
        exited,
        peakMemory: () => peakOf(pid),
        hostPid: pid,
        async cleanup() {
          // A stop as its runtime's: drained, then `run --rm` removes the container itself
          // (a SIGKILL would leave that to the --rm watcher, racing tb.cleanup's unmounts).
          await stopped(child, exited, () => child.kill('SIGTERM'));
          tb.cleanup();
        },
      };
    },
  };
}

/** `container`: its own runc container; the host is the Node process below the container's init (tini). */
const CONTAINER = tugboatRun('container', [], (tb) => {
  const list = JSON.parse(execFileSync('runc', ['--root', `${tb.root}/runc`, 'list', '--format', 'json'], { encoding: 'utf8' })) as { pid: number }[];
  const node = descendants(list[0]!.pid).find((p) => /node/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8')));
  if (!node) throw new Error('no host process in the container');
  return node;
});

/** `process`: a guest of `tugboat run` itself (bin/tugboat execs Node: the child is the host). */
const PROCESS = tugboatRun('process', ['--isolation', 'process'], (_tb, child) => child.pid!);

/**
 * `pod`: `ctr run` of the component through the shim under a private
 * containerd, on the host's network, in a shim group of its own: a guest of
 * that group's pod host (a runc container whose init is the host). ctr stays
 * in the foreground (the guest's stdio is its own) and ends with the task.
 */
const POD: Isolation = (() => {
  const RT = 'io.containerd.tugboat.v1';
  const NS = `tb-http-${process.pid}`;
  let d: ShimContainerd | undefined;
  let n = 0;
  const ctr = (args: string[]) => d!.ctr(args);
  return {
    name: 'pod',
    async setup() {
      d = await startShimContainerd(NS, '/tmp/tugboat-http-pod-');
    },
    async teardown() {
      await d?.stop();
    },
    async launch({ annotations = {}, memory, image = 'component-http-bench', env = {}, group }) {
      const id = `http-${++n}`;
      const port = await freePort();
      const args = ['--address', d!.handle.address, '-n', NS, 'run', '--rm', '--net-host', '--runtime', RT, '--platform', 'wasi/wasm'];
      const all = { 'io.tugboat.isolation': 'pod', 'io.containerd.runc.v2.group': group ?? id, ...annotations };
      for (const [k, v] of Object.entries(all)) args.push('--annotation', `${k}=${v}`);
      if (memory) args.push('--memory-limit', String(bytesOf(memory)));
      for (const [k, v] of Object.entries(env)) args.push('--env', `${k}=${v}`);
      args.push('--env', `PORT=${port}`, `tugboat.local/wasm:${image}`, id);
      const child = spawn(CTR_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
      const { stderr, exited } = watch(child);
      await untilAnswering(port, child, stderr);
      /** The pod host: the Node process below the pod host container's init (the task's pid). */
      const ps = await ctr(['tasks', 'ps', id]);
      const init = Number(/^(\d+)/m.exec(ps.stdout.split('\n')[1] ?? '')?.[1]);
      const host = listProcesses().find((p) => p.ppid === init && p.argv.some((a) => a.endsWith('pod-host.mjs')));
      if (!host) throw new Error(`no pod host below ${init}: ${ps.stdout}`);
      return {
        port,
        stderr,
        signal: (name) => void ctr(['tasks', 'kill', '-s', name, id]),
        exited,
        peakMemory: () => peakOf(host.pid),
        hostPid: host.pid,
        rootfs: join(d!.handle.state, 'io.containerd.runtime.v2.task', NS, id, 'rootfs'),
        controls: {
          pause: async () => void expect((await ctr(['tasks', 'pause', id])).code).toBe(0),
          resume: async () => void expect((await ctr(['tasks', 'resume', id])).code).toBe(0),
          memoryBytes: async () => {
            const m = (await ctr(['tasks', 'metrics', id])).stdout;
            return Number(/memory\.usage_in_bytes\s+(\d+)/.exec(m)?.[1] ?? /memory\.usage\s+(\d+)/.exec(m)?.[1]);
          },
        },
        async cleanup() {
          await stopped(child, exited, () => void ctr(['tasks', 'kill', '-s', 'SIGKILL', id]));
          await ctr(['tasks', 'delete', '--force', id]);
          await ctr(['containers', 'rm', id]);
        },
      };
    },
  };
})();


const SHIM_BUILT = process.getuid?.() === 0 && existsSync(join(REPO, 'dist', 'shim.mjs'));
const ISOLATIONS: Isolation[] = [CONTAINER, ...(SHIM_BUILT ? [POD] : []), PROCESS];

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Bytes of the body (when not kept). */
  length: number;
}

interface SendOpts {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Write half the body, wait for `hold` to settle, write the rest. */
  hold?: Promise<unknown>;
  /** Stream this many zero bytes as the body (64 KiB writes, with backpressure). */
  stream?: number;
  /** Count the body's bytes instead of keeping them. */
  countOnly?: boolean;
  agent?: Agent | false;
}

function send(port: number, path: string, opts: SendOpts = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      let length = 0;
      res.on('data', (c: Buffer) => {
        length += c.length;
        if (!opts.countOnly) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), length }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.stream !== undefined) {
      const chunk = Buffer.alloc(64 * 1024);
      let left = opts.stream;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    } else if (opts.body && opts.hold) {
      const half = opts.body.length >> 1;
      req.write(opts.body.subarray(0, half));
      void opts.hold.then(() => req.end(opts.body!.subarray(half)));
    } else req.end(opts.body);
  });
}

describe.each(ISOLATIONS)('wasi:http at $name level', (iso) => {
  const guests: HttpGuest[] = [];
  const launch = async (opts: Launch = {}) => {
    const g = await iso.launch(opts);
    guests.push(g);
    return g;
  };
  beforeAll(async () => {
    await iso.setup?.();
  }, 300_000);
  afterAll(async () => {
    for (const g of guests) await g.cleanup();
    await iso.teardown?.();
  }, 120_000);

  it('answers 500 concurrent requests, each with its own body', async () => {
    const g = await launch();
    const agent = new Agent({ keepAlive: true, maxSockets: 500 });
    const replies = await Promise.all(
      Array.from({ length: 500 }, (_, i) => send(g.port, '/echo', { method: 'POST', body: Buffer.from(`request ${i}`), headers: { 'x-echo': `e${i}` }, agent })),
    );
    agent.destroy();
    replies.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(`request ${i}`);
      expect(r.headers['x-echo']).toBe(`e${i}`);
    });
  });

  it('queues requests when its one instance is busy, without an error', async () => {
    const g = await launch({ annotations: { 'io.tugboat.http.pool': '1', 'io.tugboat.http.threads': '1' } });
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const all = Promise.all(Array.from({ length: 20 }, () => send(g.port, '/', { method: 'POST', body: Buffer.alloc(2000, 1), hold })));
    await new Promise((r) => setTimeout(r, 300));
    release();
    const replies = await all;
    expect(replies.map((r) => [r.status, r.headers['x-body-bytes']])).toEqual(Array.from({ length: 20 }, () => [200, '2000']));
    // One instance served them all, one after another (after the launcher's probe).
    const counts = replies.map((r) => Number(r.headers['x-instance-requests'])).sort((a, b) => a - b);
    expect(counts).toEqual(Array.from({ length: 20 }, (_, i) => counts[0]! + i));
  });

  it('answers 500 for a guest trap and serves the next request from a new instance', async () => {
    const g = await launch({ annotations: { 'io.tugboat.http.pool': '1', 'io.tugboat.http.threads': '1' } });
    const first = Number((await send(g.port, '/')).headers['x-instance-requests']);
    expect((await send(g.port, '/')).headers['x-instance-requests']).toBe(String(first + 1));
    const trap = await send(g.port, '/trap');
    expect(trap.status).toBe(500);
    expect(trap.body.toString()).toBe('internal server error\n');
    const after = await send(g.port, '/');
    expect(after.status).toBe(200);
    expect(after.headers['x-instance-requests']).toBe('1');
    for (let i = 0; !/request failed/.test(g.stderr()) && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    expect(g.stderr()).toMatch(/tugboat: \/http-bench\.wasm: request failed \(answered 500\): wasm trap: .*unreachable/);
  });

  it('with a fresh instance per request (put back as made after each), no request sees what another left', async () => {
    const g = await launch({ annotations: { 'io.tugboat.http.reuse': 'false', 'io.tugboat.http.pool': '1', 'io.tugboat.http.threads': '1' } });
    for (let i = 0; i < 20; i++) {
      const echo = await send(g.port, '/echo', { method: 'POST', body: Buffer.from(`secret ${i}`), headers: { 'x-echo': `e${i}` } });
      expect([echo.status, echo.body.toString(), echo.headers['x-echo'], echo.headers['x-instance-requests']]).toEqual([200, `secret ${i}`, `e${i}`, '1']);
      if (i % 5 === 4) expect((await send(g.port, '/trap')).status).toBe(500);
      const big = await send(g.port, '/upload', { method: 'POST', body: Buffer.alloc(300_000 + i, i) });
      expect([big.status, big.headers['x-body-bytes'], big.headers['x-instance-requests']]).toEqual([200, String(300_000 + i), '1']);
    }
    // A body still leaving when the guest's handle returns is not cut by the instance going back.
    const down = await send(g.port, '/download/20000000', { countOnly: true });
    expect([down.status, down.length]).toEqual([200, 20_000_000]);
    expect((await send(g.port, '/')).headers['x-instance-requests']).toBe('1');
  });

  it("keeps one request's memory from the next (http-probe's /memo answers what the last request left)", async () => {
    const g = await launch({ image: 'component-http-probe', annotations: { 'io.tugboat.http.pool': '1', 'io.tugboat.http.threads': '1' } });
    for (let i = 0; i < 5; i++) {
      const r = await send(g.port, `/memo/secret-${i}`);
      expect([r.status, r.body.toString()]).toEqual([200, '']);
    }
    // Its memory (over 1 MiB) is put back by the pages the kernel saw written: the host holds a
    // userfaultfd, under the seccomp profile Tugboat gives its own host too (WASM_HOST_SECCOMP).
    if (KERNEL_TELLS_WRITTEN_PAGES) expect(fdLinks(g.hostPid)).toContain('anon_inode:[userfaultfd]');
  });

  it('streams a 1 GiB upload and a 1 GiB download with bounded host memory', async () => {
    const g = await launch({ memory: '256m', annotations: { 'io.tugboat.http.threads': '1' } });
    const atStart = g.peakMemory();
    const up = await send(g.port, '/upload', { method: 'POST', stream: GiB });
    expect(up.status).toBe(200);
    expect(up.headers['x-body-bytes']).toBe(String(GiB));
    const down = await send(g.port, `/download/${GiB}`, { countOnly: true });
    expect(down.status).toBe(200);
    expect(down.length).toBe(GiB);
    // Far below a body's size: what the transfers added to the host's peak (a shared
    // host's includes more than this guest: at `process` level, the CLI itself).
    const peak = g.peakMemory();
    console.log(`${iso.name}: host peak ${(atStart / 2 ** 20).toFixed(0)} MiB serving, ${(peak / 2 ** 20).toFixed(0)} MiB after 1 GiB up and down`);
    expect(peak - atStart).toBeLessThan(160 * 1024 ** 2);
    // And at `container` level under the container's 256 MiB cap.
    if (iso.name === 'container') expect(peak).toBeLessThan(200 * 1024 ** 2);
    expect((await send(g.port, '/')).status).toBe(200);
  }, 300_000);

  it('shares its port between its threads', async () => {
    const g = await launch({ annotations: { 'io.tugboat.http.pool': '1', 'io.tugboat.http.threads': '2' } });
    // Each request on a new connection; the kernel spreads connections over the threads'
    // sockets. The first thread answers before the second listens (its start is not waited
    // for here), so ask until a second instance answers, within a bound.
    const counts: number[] = [];
    while (counts.length < 400 && new Set(counts).size === counts.length) counts.push(Number((await send(g.port, '/')).headers['x-instance-requests']));
    // Two instances (one per thread) counted the requests: some count comes twice.
    expect(new Set(counts).size).toBeLessThan(counts.length);
    expect(Math.max(...counts)).toBeLessThan(counts.length);
  });

  it.runIf(iso.name === 'pod')('holds requests while paused and answers them on resume; reports its memory; SIGKILL ends it with 137', async () => {
    const g = await launch({ annotations: { 'io.tugboat.http.pool': '1', 'io.tugboat.http.threads': '1' } });
    const c = g.controls!;
    // Its instance's linear memory, at least.
    expect(await c.memoryBytes()).toBeGreaterThanOrEqual(64 * 1024);
    await c.pause();
    let answered = false;
    const held = send(g.port, '/').then((r) => ((answered = true), r));
    await new Promise((r) => setTimeout(r, 500));
    expect(answered).toBe(false);
    await c.resume();
    expect((await held).status).toBe(200);
    g.signal('SIGKILL');
    expect(await g.exited).toBe(137);
  });

  it.runIf(iso.name === 'pod')('keeps two HTTP guests of one pod host apart: neither sees the other\'s env or files', async () => {
    // examples/components/http-probe.wat answers its environment (/env) and a file opened beneath its root (/file/PATH).
    const a = await launch({ image: 'component-http-probe', group: 'probe', env: { SECRET: 's3cr3t-env' } });
    const b = await launch({ image: 'component-http-probe', group: 'probe' });
    expect(b.hostPid).toBe(a.hostPid);
    const secret = join(a.rootfs!, 'secret.txt');
    writeFileSync(secret, 's3cr3t-file');
    // A reaches its own.
    expect(String((await send(a.port, '/env')).body)).toContain('SECRET=s3cr3t-env\n');
    const own = await send(a.port, '/file/secret.txt');
    expect([own.status, String(own.body)]).toEqual([200, 's3cr3t-file']);
    // B, served by the same process, reaches neither.
    const env = await send(b.port, '/env');
    expect(env.status).toBe(200);
    expect(String(env.body)).toContain(`PORT=${b.port}\n`);
    expect(String(env.body)).not.toContain('s3cr3t');
    for (const path of ['secret.txt', secret, `../../../..${secret}`, `/proc/1/root${secret}`, `/proc/self/root${secret}`, `/proc/${a.hostPid}/root${secret}`]) {
      const r = await send(b.port, `/file/${path}`);
      expect(r.status, path).toBe(404);
      expect(String(r.body), path).not.toContain('s3cr3t');
    }
  });

  it('drains on SIGTERM: the request in flight is answered, new ones are refused, then 143', async () => {
    const g = await launch();
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const inFlight = send(g.port, '/', { method: 'POST', body: Buffer.alloc(100_000, 2), hold });
    await new Promise((r) => setTimeout(r, 300));
    g.signal('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await expect(send(g.port, '/')).rejects.toThrow(/ECONNREFUSED|ECONNRESET|socket hang up/);
    release();
    const r = await inFlight;
    expect(r.status).toBe(200);
    expect(r.headers['x-body-bytes']).toBe('100000');
    expect(await g.exited).toBe(143);
  });
});
