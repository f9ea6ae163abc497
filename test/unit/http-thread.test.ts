// One handler thread, in this process: the hand-written handler
// (examples/components/http-bench.wat) served by serveOnThread through its
// own HTTP server (wire/), as a handler thread serves it in a container.
import { request, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPONENT_ENTRY, ensureTranspiled, type ComponentMeta } from '../../src/linux-runtime/component-cache.js';
import type { GuestConfig } from '../../src/wasi-host/guest-config.js';
import { HttpStartError, serveHttpComponent } from '../../src/wasi-host/http/serve.js';
import { serveOnThread, type ThreadServer } from '../../src/wasi-host/http/thread.js';
import { KERNEL_TELLS_WRITTEN_PAGES } from './helpers/kernel.js';

const BENCH = join(import.meta.dirname, '..', '..', 'examples', 'components', 'out', 'http-bench.wasm');
const PROBE = join(import.meta.dirname, '..', '..', 'examples', 'components', 'out', 'http-probe.wasm');

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request; `body` is written in `chunks` pieces with a pause between them. */
function send(port: number, path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer; pauseMs?: number; agent?: false } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body && opts.pauseMs) {
      const half = opts.body.length >> 1;
      req.write(opts.body.subarray(0, half));
      setTimeout(() => req.end(opts.body!.subarray(half)), opts.pauseMs);
    } else req.end(opts.body);
  });
}

/**
 * For the describe it is called in: `path` transpiled once (its meta checked
 * by `check`), and a function that serves it on a new thread; every thread
 * is drained after.
 */
function threadsOf(path: string, check: (meta: ComponentMeta) => void, onRequestFailed: (m: string) => void = () => undefined) {
  let dir = '';
  let config: GuestConfig;
  const servers: ThreadServer[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tugboat-http-thread-'));
    const entry = await ensureTranspiled(path, join(dir, 'cache'));
    check(entry.meta);
    config = { args: [`/${basename(path)}`], env: [], component: { dir: entry.dir, entry: COMPONENT_ENTRY, world: 'http' } };
  }, 120_000);
  afterAll(async () => {
    for (const s of servers) await s.drain();
    rmSync(dir, { recursive: true, force: true });
  });
  return async (pool: number, reuse: boolean, reset = false) => {
    const s = await serveOnThread({ component: { kind: 'container', config }, port: 0, host: '127.0.0.1', pool, reuse, reset, onRequestFailed });
    servers.push(s);
    return s;
  };
}

describe('a handler thread', () => {
  const failures: string[] = [];
  const serve = threadsOf(BENCH, (meta) => expect(meta.reuse).toBe(true), (m) => failures.push(m));

  it('answers: a fixed body with a Content-Length, the echoed header, the body it read', async () => {
    const s = await serve(2, true);
    const r = await send(s.port, '/hello', { headers: { 'x-echo': 'caf\xe9' } });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello from a wasm component\n');
    expect(r.headers['content-length']).toBe('28');
    expect(r.headers['x-echo']).toBe('caf\xe9');
    const post = await send(s.port, '/upload', { method: 'POST', body: Buffer.alloc(300_000, 7) });
    expect(post.headers['x-body-bytes']).toBe('300000');
    const echo = await send(s.port, '/echo', { method: 'POST', body: Buffer.from('ping pong') });
    expect(echo.body.toString()).toBe('ping pong');
    const down = await send(s.port, '/download/1000001');
    expect(down.body.length).toBe(1_000_001);
    expect(down.body.every((b) => b === 0)).toBe(true);
    // Nothing a guest dropped is still held.
    expect(s.stats().resources).toBe(0);
    // Each handler was called straight (direct-handle.ts), not through jco's glue.
    expect(s.stats().directCalls).toBe(4);
  });

  it('reuses a declared instance, one request after another', async () => {
    const s = await serve(1, true);
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) seen.push(String((await send(s.port, '/')).headers['x-instance-requests']));
    expect(seen).toEqual(['1', '2', '3', '4', '5']);
    expect(s.stats().created).toBe(1);
  });

  it('gives every request a fresh instance otherwise, made ahead of it', async () => {
    const s = await serve(2, false);
    for (let i = 0; i < 4; i++) expect((await send(s.port, '/')).headers['x-instance-requests']).toBe('1');
    expect(s.stats().created).toBeGreaterThanOrEqual(5);
    expect(s.stats().created).toBeLessThanOrEqual(6);
  });

  it('puts a one-request instance back as it was made instead of making another: every request still meets a fresh one', async () => {
    const s = await serve(2, false, true);
    for (let i = 0; i < 10; i++) {
      const r = await send(s.port, `/${i}`, { headers: { 'x-echo': `e${i}` } });
      expect([r.status, r.headers['x-instance-requests'], r.headers['x-echo']]).toEqual([200, '1', `e${i}`]);
      const echo = await send(s.port, '/echo', { method: 'POST', body: Buffer.from(`secret ${i}`) });
      expect(echo.body.toString()).toBe(`secret ${i}`);
      expect(echo.headers['x-instance-requests']).toBe('1');
    }
    expect(s.stats()).toMatchObject({ resets: 20, resources: 0 });
    // The two made ahead, and none since.
    expect(s.stats().created).toBe(2);
    expect(s.stats().resetRefused).toBeUndefined();
  });

  it('makes an instance anew when its request failed (a trap leaves its state halfway)', async () => {
    const s = await serve(1, false, true);
    expect((await send(s.port, '/')).headers['x-instance-requests']).toBe('1');
    expect((await send(s.port, '/trap')).status).toBe(500);
    expect((await send(s.port, '/')).headers['x-instance-requests']).toBe('1');
    expect(s.stats()).toMatchObject({ resets: 2, created: 2 });
  });

  it('answers 500 for a trap, drops the instance and serves the next request from a new one', async () => {
    const s = await serve(1, true);
    expect((await send(s.port, '/')).headers['x-instance-requests']).toBe('1');
    expect((await send(s.port, '/')).headers['x-instance-requests']).toBe('2');
    const trapped = await send(s.port, '/trap');
    expect(trapped.status).toBe(500);
    expect(trapped.body.toString()).toBe('internal server error\n');
    expect(failures.at(-1)).toMatch(/wasm trap: .*unreachable/);
    const after = await send(s.port, '/');
    expect(after.status).toBe(200);
    expect(after.headers['x-instance-requests']).toBe('1');
  });

  it('queues requests when every instance is busy, and serves them all', async () => {
    const s = await serve(2, true);
    const body = Buffer.alloc(10_000, 1);
    const all = await Promise.all(Array.from({ length: 12 }, () => send(s.port, '/', { method: 'POST', body, pauseMs: 30, agent: false })));
    expect(all.map((r) => [r.status, r.headers['x-body-bytes']])).toEqual(Array.from({ length: 12 }, () => [200, '10000']));
    // Two instances served twelve requests between them.
    const counts = all.map((r) => Number(r.headers['x-instance-requests'])).sort((a, b) => a - b);
    expect(Math.max(...counts)).toBeGreaterThanOrEqual(6);
    expect(s.stats()).toMatchObject({ created: 2, waiting: 0, busy: 0 });
  });

  it('drains: the request in flight finishes, with Connection: close, then nothing is accepted', async () => {
    const s = await serve(1, true);
    const slow = send(s.port, '/', { method: 'POST', body: Buffer.alloc(1000), pauseMs: 300 });
    while (s.inFlight() === 0) await new Promise((r) => setTimeout(r, 5));
    const drained = s.drain();
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.headers.connection).toBe('close');
    await drained;
    await expect(send(s.port, '/')).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe("a guest's memory from one request to the next", () => {
  // http-probe.wat's /memo/TEXT answers what the previous request on its instance left in its memory, then keeps TEXT.
  const serve = threadsOf(PROBE, (meta) => expect(meta).toMatchObject({ reuse: false, reset: true }));

  it('reaches the next request when an instance is reused as it is (the probe sees what it should)', async () => {
    const s = await serve(1, true);
    expect((await send(s.port, '/memo/secret-of-a')).body.toString()).toBe('');
    expect((await send(s.port, '/memo/b')).body.toString()).toBe('secret-of-a');
  });

  it('never reaches the next request when instances are reset, nor when they are made anew', async () => {
    for (const reset of [true, false]) {
      const s = await serve(1, false, reset);
      for (let i = 0; i < 5; i++) {
        const r = await send(s.port, `/memo/secret-${i}`);
        expect([r.status, r.body.toString()]).toEqual([200, '']);
      }
      expect(s.stats()).toMatchObject(reset ? { resets: 5, created: 1 } : { resets: 0 });
    }
  });

  it('copies back only the pages written, as the kernel tells them (the probe\'s memory is over 1 MiB)', async () => {
    const s = await serve(1, false, true);
    for (let i = 0; i < 3; i++) expect((await send(s.port, `/memo/kept-${i}`)).body.toString()).toBe('');
    // Linux 6.7 or later (this machine's): userfaultfd on memories mapped on their images; before, pagemap's entries tell the pages of the images from those written.
    expect(s.stats().resetCopies).toBe(KERNEL_TELLS_WRITTEN_PAGES ? 'written pages: userfaultfd, images' : 'written pages: images, pagemap entries');
  });
});

// The first handler thread boots while the core modules compile (serve.ts):
// when they cannot be compiled, that thread, already started, is ended and
// the server refused with a link error, the container's 126.
describe('serveHttpComponent', () => {
  const WORKER = join(import.meta.dirname, '..', '..', 'dist', 'host', 'http-worker.mjs');

  it.each([
    ['0 (the kernel picks it)', false],
    ['given', true],
  ])('refuses a component whose core module does not compile, ending the thread it had started (port %s)', async (_port, given) => {
    const dir = mkdtempSync(join(tmpdir(), 'tugboat-http-bad-'));
    try {
      writeFileSync(join(dir, 'component.core.wasm'), Buffer.from('\0asm\x01\0\0\0\x01\xff'));
      const config: GuestConfig = { args: ['/bad.wasm'], env: [], component: { dir, entry: COMPONENT_ENTRY, world: 'http' } } as GuestConfig;
      const started = serveHttpComponent(
        { kind: 'container', config },
        { port: given ? await freePort() : 0, host: '127.0.0.1', threads: 2, pool: 1, reuse: false, onRequestFailed: () => undefined, workerUrl: WORKER },
      );
      const err = await started.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(HttpStartError);
      expect((err as HttpStartError).outcome).toMatchObject({ kind: 'link', message: expect.stringMatching(/^cannot compile component: /) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts every thread on the port given, and the kernel spreads connections over all of them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tugboat-http-threads-'));
    try {
      const entry = await ensureTranspiled(BENCH, join(dir, 'cache'));
      const config: GuestConfig = { args: ['/http-bench.wasm'], env: [], component: { dir: entry.dir, entry: COMPONENT_ENTRY, world: 'http' } };
      const port = await freePort();
      // A reset per request: each thread's count of them says it served.
      const service = await serveHttpComponent({ kind: 'container', config }, { port, host: '127.0.0.1', threads: 3, pool: 1, reuse: false, reset: true, onRequestFailed: () => undefined, workerUrl: WORKER });
      try {
        expect(service.port).toBe(port);
        expect(service.threads).toBe(3);
        // A new connection each, until the kernel has given one to every thread.
        for (let i = 0; i < 300 && (await service.stats()).some((t) => t.pool.resets === 0); i++) {
          const r = await send(port, '/bench', { headers: { 'x-echo': `n${i}` }, agent: false });
          expect([r.status, r.headers['x-echo']]).toEqual([200, `n${i}`]);
        }
        expect((await service.stats()).map((t) => t.pool.resets > 0)).toEqual([true, true, true]);
      } finally {
        await service.drain();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

/** A port nobody listens on now (the kernel's pick, let go). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
