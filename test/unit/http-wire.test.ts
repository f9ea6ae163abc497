// The handler thread's HTTP/1.1 server (src/wasi-host/http/wire/), on real
// sockets: what goes over the wire for each kind of request and answer, as
// node:http's server would do it, and what a hostile or broken client gets.
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { WireServer } from '../../src/wasi-host/http/wire/server.js';
import type { WireRequest } from '../../src/wasi-host/http/wire/request.js';
import type { WireResponse } from '../../src/wasi-host/http/wire/response.js';

type Handler = (req: WireRequest, res: WireResponse) => void;

const servers: WireServer[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function serve(handler: Handler, timeouts?: { headers: number; request: number; keepAlive: number }): Promise<WireServer> {
  const s = new WireServer(handler, timeouts);
  servers.push(s);
  await s.listen({ port: 0, host: '127.0.0.1' });
  return s;
}

/** The whole body of a request, then `answer` with it. */
function readBody(req: WireRequest, answer: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.once('end', () => answer(Buffer.concat(chunks)));
}

function fixed(res: WireResponse, status: number, body: string, headers: string[] = []): void {
  const b = Buffer.from(body);
  res.writeHead(status, [...headers, 'content-length', String(b.length)]).end(b);
}

/** A raw client: what it writes, and everything it reads until the server closes (or `until` is met). */
class Raw {
  readonly socket: Socket;
  text = '';
  closed: Promise<void>;
  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.text += d;
    });
    this.socket.on('error', () => undefined);
    this.closed = new Promise((r) => this.socket.once('close', () => r()));
  }
  send(text: string | Buffer): this {
    this.socket.write(text);
    return this;
  }
  async until(pred: (text: string) => boolean, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (!pred(this.text)) {
      if (Date.now() > deadline) throw new Error(`never got what was awaited; got ${JSON.stringify(this.text)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.text;
  }
  /** Answers so far, one per status line. */
  count(status: string): number {
    return this.text.split(status).length - 1;
  }
}

describe('the handler thread\'s HTTP server', () => {
  it('answers with a status line, the headers given, a Date, and keeps the connection for the next request', async () => {
    const s = await serve((req, res) => fixed(res, 200, `hi ${req.method} ${req.url}`, ['x-a', 'b']));
    const c = new Raw(s.port).send('GET /one?q=1 HTTP/1.1\r\nhost: x\r\n\r\n');
    await c.until((t) => t.includes('hi GET /one?q=1'));
    c.send('GET /two HTTP/1.1\r\nhost: x\r\n\r\n');
    const text = await c.until((t) => t.includes('hi GET /two'));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\nx-a: b\r\ncontent-length: 15\r\ndate: \w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT\r\n\r\nhi GET \/one\?q=1HTTP\/1\.1 200 OK\r\n/);
    expect(c.socket.destroyed).toBe(false);
    c.socket.destroy();
  });

  it('chunks a body of no given length for HTTP/1.1, and closes the connection after it for HTTP/1.0', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, []);
      res.write(Buffer.from('abc'));
      res.end(Buffer.from('de'));
    });
    const c11 = new Raw(s.port).send('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    const t11 = await c11.until((t) => t.endsWith('0\r\n\r\n'));
    expect(t11).toContain('transfer-encoding: chunked\r\n');
    expect(t11.split('\r\n\r\n')[1]).toBe('3\r\nabc\r\n2\r\nde\r\n0');
    c11.socket.destroy();
    const c10 = new Raw(s.port).send('GET / HTTP/1.0\r\n\r\n');
    await c10.closed;
    expect(c10.text).not.toContain('chunked');
    expect(c10.text).toContain('connection: close\r\n');
    expect(c10.text.endsWith('\r\n\r\nabcde')).toBe(true);
  });

  it('keeps an HTTP/1.0 connection that asks for it, saying so', async () => {
    const s = await serve((_req, res) => fixed(res, 200, 'x'));
    const c = new Raw(s.port).send('GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n');
    const text = await c.until((t) => t.endsWith('\r\n\r\nx'));
    expect(text).toContain('connection: keep-alive\r\n');
    c.send('GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n');
    await c.until((t) => c.count('HTTP/1.1 200') === 2);
    c.socket.destroy();
  });

  it('sends no body for HEAD, 204 and 304, whatever the handler writes', async () => {
    const s = await serve((req, res) => {
      const status = req.url === '/204' ? 204 : req.url === '/304' ? 304 : 200;
      res.writeHead(status, req.method === 'HEAD' ? ['content-length', '5'] : []);
      res.end(Buffer.from(status === 200 ? 'hello' : 'nope'));
    });
    const c = new Raw(s.port).send('HEAD / HTTP/1.1\r\nhost: x\r\n\r\nGET /204 HTTP/1.1\r\nhost: x\r\n\r\nGET /304 HTTP/1.1\r\nhost: x\r\n\r\nGET /end HTTP/1.1\r\nhost: x\r\n\r\n');
    const text = await c.until((t) => t.includes('hello'));
    expect(text).not.toContain('nope');
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\ncontent-length: 5\r\ndate: [^\r]+\r\n\r\nHTTP\/1\.1 204 No Content\r\ndate: [^\r]+\r\n\r\nHTTP\/1\.1 304 Not Modified\r\ndate: [^\r]+\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    c.socket.destroy();
  });

  it('answers pipelined requests in the order asked, though the first is answered last', async () => {
    const s = await serve((req, res) => {
      const n = req.url.slice(1);
      setTimeout(() => fixed(res, 200, `answer ${n};`), n === '1' ? 100 : 0);
    });
    const c = new Raw(s.port).send(['1', '2', '3'].map((n) => `GET /${n} HTTP/1.1\r\nhost: x\r\n\r\n`).join(''));
    const text = await c.until((t) => t.includes('answer 3;'));
    expect([...text.matchAll(/answer (\d);/g)].map((m) => m[1])).toEqual(['1', '2', '3']);
    c.socket.destroy();
  });

  it('streams a request body to a slow reader, pausing the socket, and loses no byte', async () => {
    let sum = 0;
    const s = await serve((req, res) => {
      let n = 0;
      req.on('data', (c) => {
        n += c.length;
        for (const b of c) sum += b;
        req.pause();
        setTimeout(() => req.resume(), 1);
      });
      req.once('end', () => fixed(res, 200, String(n)));
    });
    const body = Buffer.alloc(4 << 20);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    const expected = body.reduce((a, b) => a + b, 0);
    const got = await new Promise<string>((resolve, reject) => {
      const r = request({ host: '127.0.0.1', port: s.port, method: 'POST', path: '/' }, (res) => {
        let t = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (t += d));
        res.on('end', () => resolve(t));
      });
      r.on('error', reject);
      r.end(body);
    });
    expect(got).toBe(String(body.length));
    expect(sum).toBe(expected);
  });

  it('gives a chunked request body and its trailers', async () => {
    const s = await serve((req, res) => readBody(req, (b) => fixed(res, 200, `${b} ${req.rawTrailers.join('=')}`)));
    const c = new Raw(s.port).send('POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 42\r\n\r\n');
    await c.until((t) => t.includes('abc x-sum=42'));
    c.socket.destroy();
  });

  it('writes the trailers of a chunked answer', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, []);
      res.addTrailers({ 'x-sum': '7' });
      res.end(Buffer.from('body'));
    });
    const c = new Raw(s.port).send('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    const text = await c.until((t) => t.endsWith('x-sum: 7\r\n\r\n'));
    expect(text.split('\r\n\r\n').slice(1).join('\r\n\r\n')).toBe('4\r\nbody\r\n0\r\nx-sum: 7\r\n\r\n');
    c.socket.destroy();
  });

  it('refuses a body that breaks its Content-Length, longer or shorter', async () => {
    const errors: string[] = [];
    const s = await serve((req, res) => {
      res.writeHead(200, ['content-length', '3']);
      try {
        if (req.url === '/long') res.write(Buffer.from('abcd'));
        else res.end(Buffer.from('ab'));
      } catch (err) {
        errors.push((err as Error).message);
        res.destroy();
      }
    });
    for (const path of ['/long', '/short']) {
      const c = new Raw(s.port).send(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
      await c.closed;
      expect(c.text).toBe('');
    }
    expect(errors).toEqual([expect.stringMatching(/longer than its Content-Length/), expect.stringMatching(/short of its Content-Length/)]);
  });

  it('answers 100 Continue to Expect: 100-continue, and 417 to an expectation it cannot meet', async () => {
    const s = await serve((req, res) => readBody(req, (b) => fixed(res, 200, `got ${b}`)));
    const c = new Raw(s.port).send('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n');
    await c.until((t) => t.includes('100 Continue'));
    c.send('ok');
    const text = await c.until((t) => t.includes('got ok'));
    expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n')).toBe(true);
    c.socket.destroy();
    const bad = new Raw(s.port).send('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: something\r\n\r\nok');
    await bad.closed;
    expect(bad.text).toMatch(/^HTTP\/1\.1 417 Expectation Failed\r\n/);
  });

  it.each([
    ['garbage', 'NOT HTTP AT ALL\r\n\r\n', 400],
    ['both Content-Length and Transfer-Encoding (smuggling)', 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['two different Content-Lengths', 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd', 400],
    ['a bare LF in a header', 'GET / HTTP/1.1\r\nhost: x\nx-a: b\r\n\r\n', 400],
    ['a head over 16 KiB', `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ])('refuses %s with its status and closes, never calling the handler', async (_what, text, status) => {
    let called = 0;
    const s = await serve((_req, res) => {
      called++;
      fixed(res, 200, 'no');
    });
    const c = new Raw(s.port).send(text);
    await c.closed;
    expect(c.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [^\\r]+\\r\\nconnection: close\\r\\ncontent-length: 0\\r\\n\\r\\n$`));
    expect(called).toBe(0);
  });

  it('cuts a body broken halfway: its reader hears the connection close', async () => {
    let cut: Promise<void> | undefined;
    const s = await serve((req) => {
      cut = new Promise((r) => req.once('close', () => r()));
      req.on('data', () => undefined);
    });
    const c = new Raw(s.port).send('POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nZZZ\r\n');
    await c.closed;
    await cut;
  });

  it('answers a client that half-closes after its request', async () => {
    const s = await serve((_req, res) => setTimeout(() => fixed(res, 200, 'late'), 50));
    const c = new Raw(s.port);
    c.socket.end('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await c.closed;
    expect(c.text).toMatch(/late$/);
  });

  it('ends the connection after an answer to Connection: close, and reads nothing after it', async () => {
    let called = 0;
    const s = await serve((_req, res) => {
      called++;
      fixed(res, 200, 'bye');
    });
    const c = new Raw(s.port).send('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await c.closed;
    expect(c.text).toContain('connection: close\r\n');
    expect(c.count('HTTP/1.1 200')).toBe(1);
    expect(called).toBe(1);
  });

  it('answers an upgrade as a plain request without a body, then ends the connection', async () => {
    const s = await serve((req, res) => readBody(req, (b) => fixed(res, 200, `plain ${b.length}`)));
    const c = new Raw(s.port).send('GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nsome websocket bytes');
    await c.closed;
    expect(c.text).toMatch(/connection: close\r\n\r\nplain 0$/);
  });

  it('throws away the body a handler did not read, and serves the next request on the connection', async () => {
    const s = await serve((req, res) => fixed(res, 200, `seen ${req.url}`));
    const c = new Raw(s.port).send(`POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n`);
    await c.until((t) => t.includes('seen /a'));
    c.send(Buffer.alloc(100_000, 'z'));
    c.send('GET /b HTTP/1.1\r\nhost: x\r\n\r\n');
    const text = await c.until((t) => t.includes('seen /b'));
    expect(text).not.toContain('400');
    c.socket.destroy();
  });

  it('drains: an idle connection ends at once, one in flight gets its answer with Connection: close', async () => {
    let answer: (() => void) | undefined;
    const s = await serve((_req, res) => {
      answer = () => fixed(res, 200, 'last');
    });
    const idle = new Raw(s.port).send('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    while (answer === undefined) await new Promise((r) => setTimeout(r, 5));
    answer();
    answer = undefined;
    await idle.until((t) => t.includes('last'));
    expect(idle.text).not.toContain('connection: close');
    const busy = new Raw(s.port).send('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    while (answer === undefined) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    s.drain();
    await idle.closed;
    answer!();
    await busy.closed;
    expect(busy.text).toMatch(/connection: close\r\n\r\nlast$/);
  });

  it('ends a connection idle past the keep-alive timeout, and answers 408 to a head too slow', async () => {
    const s = await serve((_req, res) => fixed(res, 200, 'ok'), { headers: 2, request: 10, keepAlive: 1 });
    const idle = new Raw(s.port).send('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await idle.until((t) => t.endsWith('ok'));
    // Generous: the tick counts whole seconds.
    await Promise.race([idle.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('idle connection not ended')), 8000))]);
    const slow = new Raw(s.port).send('GET / HTTP/1.1\r\nhost: x\r\n');
    await Promise.race([slow.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('slow head not refused')), 10000))]);
    expect(slow.text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  }, 30_000);
});
