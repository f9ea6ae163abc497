// HTTP components, host side, without runc: every request gets an answer
// (500 for a guest that traps, answers an error or never answers), the
// public proxy, its port choice and its drain.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_HTTP_PORT, httpPort, startHttpProxy } from '../../src/wasi-host/component-http.js';
import { guardedHandler } from '../../src/wasi-host/component-run.js';

/** Just enough of wasi:http/types to see what reached the client. */
function fakeTypes() {
  const sent: { param: unknown; status: number; body: string; finished: boolean }[] = [];
  class Fields {}
  class OutgoingResponse {
    status = 200;
    chunks: Uint8Array[] = [];
    finished = false;
    constructor(readonly headers: unknown) {}
    setStatusCode(c: number) {
      this.status = c;
    }
    body() {
      return { write: () => ({ blockingWriteAndFlush: (b: Uint8Array) => void this.chunks.push(b) }), response: this };
    }
  }
  const types = {
    Fields,
    OutgoingResponse,
    OutgoingBody: { finish: (body: { response: OutgoingResponse }) => void (body.response.finished = true) },
    ResponseOutparam: {
      set(param: unknown, r: { tag: 'ok' | 'err'; val: unknown }) {
        const resp = r.val as OutgoingResponse;
        sent.push({
          param,
          status: resp.status,
          get body() {
            return Buffer.concat(resp.chunks).toString();
          },
          get finished() {
            return resp.finished;
          },
        });
      },
    },
  };
  return { types, sent };
}

describe('guarded incoming handler', () => {
  it('passes a good answer through untouched', () => {
    const { types, sent } = fakeTypes();
    const errors: string[] = [];
    const handle = guardedHandler(types as never, (_req, out) => {
      const r = new types.OutgoingResponse(new types.Fields());
      r.setStatusCode(201);
      types.ResponseOutparam.set(out, { tag: 'ok', val: r });
    }, (m) => errors.push(m));
    const out = {};
    handle({}, out);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.status).toBe(201);
    expect(errors).toEqual([]);
  });

  it.each([
    ['a trap', () => {
      throw new WebAssembly.RuntimeError('unreachable');
    }],
    ['no answer at all', () => undefined],
  ])('answers 500 for %s and keeps going', (_what, guest) => {
    const { types, sent } = fakeTypes();
    const errors: string[] = [];
    const handle = guardedHandler(types as never, guest, (m) => errors.push(m));
    for (const out of [{}, {}]) handle({}, out);
    expect(sent.map((s) => [s.status, s.body, s.finished])).toEqual([
      [500, 'internal server error\n', true],
      [500, 'internal server error\n', true],
    ]);
  });

  it('turns an error answer (the shim would process.exit) into a 500', () => {
    const { types, sent } = fakeTypes();
    const errors: string[] = [];
    const handle = guardedHandler(types as never, (_req, out) => types.ResponseOutparam.set(out, { tag: 'err', val: { tag: 'internal-error' } }), (m) => errors.push(m));
    handle({}, {});
    expect(sent.map((s) => s.status)).toEqual([500]);
    expect(errors[0]).toMatch(/guest answered with an error/);
  });
});

describe('HTTP port', () => {
  it('annotation, then PORT, then 8080', () => {
    expect(httpPort({ args: ['a'], env: ['PORT=9000'], component: { dir: '/c', entry: 'c.mjs', world: 'http', port: 7000 } })).toBe(7000);
    expect(httpPort({ args: ['a'], env: ['PORT=9000'] })).toBe(9000);
    expect(httpPort({ args: ['a'], env: ['PORT=nope'] })).toBe(DEFAULT_HTTP_PORT);
    expect(httpPort({ args: ['a'], env: [] })).toBe(8080);
  });
});

describe('public proxy', () => {
  let upstream: Server;
  let upstreamPort: number;
  let release: (() => void) | undefined;
  beforeAll(async () => {
    upstream = createServer((req, res) => {
      if (req.url === '/hold') {
        release = () => res.end('held\n');
        return;
      }
      let body = '';
      req.on('data', (d: Buffer) => (body += d));
      req.on('end', () => res.writeHead(200, { 'x-up': '1' }).end(`${req.method} ${req.url} ${body}`));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamPort = (upstream.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => upstream.close(() => r())));

  const start = (up: number) =>
    new Promise<{ proxy: ReturnType<typeof startHttpProxy>; port: number }>((resolve, reject) => {
      const started = startHttpProxy(0, up, () => void started.then((proxy) => resolve({ proxy, port: (proxy.server.address() as AddressInfo).port })), reject);
    });

  it('forwards method, path, body and headers', async () => {
    const { proxy, port } = await start(upstreamPort);
    const r = await fetch(`http://127.0.0.1:${port}/p?q=1`, { method: 'POST', body: 'data' });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-up')).toBe('1');
    expect(await r.text()).toBe('POST /p?q=1 data');
    await proxy.drain();
  });

  it('answers 500 when the internal server is gone', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const { proxy, port } = await start(deadPort);
    const r = await fetch(`http://127.0.0.1:${port}/x`);
    expect(r.status).toBe(500);
    await proxy.drain();
  });

  it('drain waits for the request in flight', async () => {
    const { proxy, port } = await start(upstreamPort);
    const held = fetch(`http://127.0.0.1:${port}/hold`).then((r) => r.text());
    while (proxy.inFlight() === 0 || !release) await new Promise((r) => setTimeout(r, 5));
    let drained = false;
    const draining = proxy.drain().then(() => (drained = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(drained).toBe(false);
    release();
    expect(await held).toBe('held\n');
    await draining;
    expect(proxy.inFlight()).toBe(0);
  });
});
