// ttrpc transport: framing, the §10 frame vectors, and a real server and
// client over unix sockets in a temp dir, including hostile input.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  EmptySchema,
  ForwardRequestSchema,
  StateResponseSchema,
  Status,
  Task,
  Events,
  decode,
  encode,
  packAny,
  TaskExitSchema,
} from '../../src/shim/proto/index.js';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from '../../src/shim/ttrpc/envelope.js';
import {
  type CallContext,
  Code,
  type DecodedFrame,
  encodeFrame,
  FrameDecoder,
  HEADER_LENGTH,
  MESSAGE_LENGTH_MAX,
  MessageType,
  TtrpcClient,
  TtrpcClosedError,
  TtrpcError,
  TtrpcServer,
  callMethod,
  registerService,
} from '../../src/shim/ttrpc/index.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** mulberry32: small seeded PRNG so the fuzz run is reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

describe('frames', () => {
  const f = (streamId: number, data: string, type = MessageType.Request): DecodedFrame => ({ streamId, type, flags: 0, data: utf8(data) });

  it('encodes the header big-endian and round-trips', () => {
    const b = encodeFrame({ streamId: 0x01020304, type: 2, flags: 7, data: utf8('abc') });
    expect(b.toString('hex')).toBe('00000003' + '01020304' + '02' + '07' + '616263');
    expect(new FrameDecoder().push(b)).toEqual([{ streamId: 0x01020304, type: 2, flags: 7, data: Buffer.from('abc') }]);
    expect(() => encodeFrame({ streamId: 1, type: 1, flags: 0, data: new Uint8Array(MESSAGE_LENGTH_MAX + 1) })).toThrow(RangeError);
  });

  it('reassembles frames split at every byte boundary', () => {
    const frames = [f(1, 'hello'), f(3, ''), f(5, 'x'.repeat(300))];
    const wire = Buffer.concat(frames.map((x) => encodeFrame(x as never)));
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder();
      const out = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(out.map((x) => x.streamId)).toEqual([1, 3, 5]);
      expect(d.pending()).toBe(0);
    }
    const d = new FrameDecoder();
    const out: DecodedFrame[] = [];
    for (const byte of wire) out.push(...d.push(Buffer.from([byte])));
    expect(out.map((x) => ('data' in x ? text(x.data) : ''))).toEqual(['hello', '', 'x'.repeat(300)]);
  });

  it('decodes thousands of frames from one chunk', () => {
    const wire = Buffer.concat(Array.from({ length: 5000 }, (_, i) => encodeFrame({ streamId: 2 * i + 1, type: 1, flags: 0, data: utf8(String(i)) })));
    const out = new FrameDecoder().push(wire);
    expect(out).toHaveLength(5000);
    expect(out[4999]).toMatchObject({ streamId: 9999 });
  });

  it('discards an oversize frame, reports it after its bytes, and carries on', () => {
    const d = new FrameDecoder();
    const header = Buffer.alloc(HEADER_LENGTH);
    header.writeUInt32BE(MESSAGE_LENGTH_MAX + 1, 0);
    header.writeUInt32BE(7, 4);
    header[8] = 1;
    expect(d.push(header)).toEqual([]);
    expect(d.push(Buffer.alloc(MESSAGE_LENGTH_MAX))).toEqual([]);
    const out = d.push(Buffer.concat([Buffer.alloc(1), encodeFrame({ streamId: 9, type: 1, flags: 0, data: utf8('ok') })]));
    expect(out).toEqual([
      { streamId: 7, type: 1, flags: 0, oversize: true, length: MESSAGE_LENGTH_MAX + 1 },
      { streamId: 9, type: 1, flags: 0, data: Buffer.from('ok') },
    ]);
  });
});

describe('§10 ttrpc frame vectors', () => {
  it('request frame: Connect on stream 1 with the namespace header', () => {
    const wire = hex(
      '00000051 00000001 01 00' +
        '0a17636f6e7461696e6572642e7461736b2e76322e5461736b 1207436f6e6e656374 1a060a0464656d6f ' +
        '2a250a1a636f6e7461696e6572642d6e616d6573706163652d7474727063120764656661756c74',
    );
    const data = encodeRequest({
      service: 'containerd.task.v2.Task',
      method: 'Connect',
      payload: encode(ConnectRequestSchema, { id: 'demo' }),
      metadata: [{ key: 'containerd-namespace-ttrpc', value: 'default' }],
    });
    expect(encodeFrame({ streamId: 1, type: MessageType.Request, flags: 0, data }).toString('hex')).toBe(wire.toString('hex'));
    const [frame] = new FrameDecoder().push(wire);
    expect(frame).toMatchObject({ streamId: 1, type: 1, flags: 0 });
    const req = decodeRequest((frame as { data: Uint8Array }).data);
    expect(req).toMatchObject({ service: 'containerd.task.v2.Task', method: 'Connect', timeoutNano: 0n });
    expect(req.metadata.map((m) => [m.key, m.value])).toEqual([['containerd-namespace-ttrpc', 'default']]);
    expect(decode(ConnectRequestSchema, req.payload).id).toBe('demo');
  });

  it('OK response frame: empty status plus ConnectResponse', () => {
    const wire = hex('00000009 00000001 02 00' + '0a00 1205086410c801');
    const data = encodeResponse(Code.OK, '', encode(ConnectResponseSchema, { shimPid: 100, taskPid: 200 }));
    expect(encodeFrame({ streamId: 1, type: MessageType.Response, flags: 0, data }).toString('hex')).toBe(wire.toString('hex'));
    const resp = decodeResponse(wire.subarray(HEADER_LENGTH));
    expect(resp.status?.code).toBe(0);
    expect(decode(ConnectResponseSchema, resp.payload)).toMatchObject({ shimPid: 100, taskPid: 200, version: '' });
  });

  it('error response frame: NOT_FOUND on stream 3', () => {
    const wire = hex('00000026 00000003 02 00' + '0a24 0805 1220636f6e7461696e6572206e6f7420637265617465643a206e6f7420666f756e64');
    const data = encodeResponse(Code.NOT_FOUND, 'container not created: not found');
    expect(encodeFrame({ streamId: 3, type: MessageType.Response, flags: 0, data }).toString('hex')).toBe(wire.toString('hex'));
    expect(decodeResponse(wire.subarray(HEADER_LENGTH)).status).toMatchObject({ code: 5, message: 'container not created: not found' });
  });
});

/** A raw socket to the server that collects decoded response frames. */
async function rawConnect(path: string): Promise<{ sock: net.Socket; frames: DecodedFrame[]; closed: () => boolean }> {
  const sock = net.connect(path);
  const frames: DecodedFrame[] = [];
  const dec = new FrameDecoder();
  let closed = false;
  sock.on('data', (c: Buffer) => frames.push(...dec.push(c)));
  sock.on('error', () => {});
  sock.on('close', () => (closed = true));
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  return { sock, frames, closed: () => closed };
}

function reqFrame(streamId: number, service: string, method: string, payload: Uint8Array = new Uint8Array(), extra: { timeoutNano?: bigint; metadata?: { key: string; value: string }[] } = {}): Buffer {
  return encodeFrame({ streamId, type: MessageType.Request, flags: 0, data: encodeRequest({ service, method, payload, ...extra }) });
}

function statusOfFrame(f: DecodedFrame | undefined): { code: number; message: string; payload: string } {
  if (!f || f.oversize) throw new Error('no frame');
  const r = decodeResponse(f.data);
  return { code: r.status?.code ?? 0, message: r.status?.message ?? '', payload: text(r.payload) };
}

describe('server and client over a unix socket', () => {
  let dir: string;
  let path: string;
  let server: TtrpcServer;
  let clients: TtrpcClient[];
  let seen: CallContext[];
  let aborted: unknown[];

  const connect = async () => {
    const c = await TtrpcClient.connect(path);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tugboat-ttrpc-'));
    path = join(dir, 's.sock');
    server = new TtrpcServer();
    clients = [];
    seen = [];
    aborted = [];
    server.register('test.Svc', {
      Echo: async (p, ctx) => {
        seen.push(ctx);
        return p;
      },
      Slow: async (p) => {
        await sleep(150);
        return p;
      },
      NotFound: async () => {
        throw new TtrpcError(Code.NOT_FOUND, 'container not created: not found');
      },
      Plain: async () => {
        throw new Error('cannot delete a running process');
      },
      Weird: async () => {
        throw 'a string'; // eslint-disable-line no-throw-literal
      },
      Sync: (() => {
        throw new TtrpcError(Code.FAILED_PRECONDITION, 'thrown synchronously');
      }) as never,
      Big: async () => new Uint8Array(MESSAGE_LENGTH_MAX),
      Hang: (_p, ctx) =>
        new Promise((_resolve, reject) => {
          seen.push(ctx);
          ctx.signal.addEventListener('abort', () => {
            aborted.push(ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        }),
    });
    await server.listen(path);
  });

  afterEach(async () => {
    for (const c of clients) c.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the socket with mode 0600 and removes it on close', async () => {
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    await server.close();
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('calls a method and passes lower-cased, multi-valued metadata', async () => {
    const c = await connect();
    const out = await c.call('test.Svc', 'Echo', utf8('hi'), { metadata: { 'Containerd-Namespace-TTRPC': 'default' } });
    expect(text(out)).toBe('hi');
    expect(seen[0]?.service).toBe('test.Svc');
    expect(seen[0]?.method).toBe('Echo');
    expect(seen[0]?.metadata.get('containerd-namespace-ttrpc')).toEqual(['default']);
    expect(seen[0]?.deadline).toBeUndefined();

    const raw = await rawConnect(path);
    raw.sock.write(reqFrame(1, 'test.Svc', 'Echo', utf8('x'), { metadata: [{ key: 'K', value: 'a' }, { key: 'k', value: 'b' }] }));
    await until(() => raw.frames.length === 1);
    expect(seen[1]?.metadata.get('k')).toEqual(['a', 'b']);
    raw.sock.destroy();
  });

  it('runs calls concurrently and answers out of order', async () => {
    const raw = await rawConnect(path);
    raw.sock.write(Buffer.concat([reqFrame(1, 'test.Svc', 'Slow', utf8('slow')), reqFrame(3, 'test.Svc', 'Echo', utf8('fast'))]));
    await until(() => raw.frames.length === 2);
    expect(raw.frames.map((f) => f.streamId)).toEqual([3, 1]);
    expect(raw.frames.map((f) => statusOfFrame(f).payload)).toEqual(['fast', 'slow']);
    raw.sock.destroy();

    const c = await connect();
    const order: string[] = [];
    await Promise.all([
      c.call('test.Svc', 'Slow', utf8('s')).then(() => order.push('slow')),
      c.call('test.Svc', 'Echo', utf8('f')).then(() => order.push('fast')),
    ]);
    expect(order).toEqual(['fast', 'slow']);
  });

  it('turns timeout_nano into a deadline and aborts the handler signal at it', async () => {
    const c = await connect();
    const t0 = Date.now();
    const err = await c.call('test.Svc', 'Hang', new Uint8Array(), { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TtrpcError);
    expect((err as TtrpcError).code).toBe(Code.DEADLINE_EXCEEDED);
    await until(() => aborted.length === 1);
    expect(aborted[0]).toMatchObject({ code: Code.DEADLINE_EXCEEDED, message: 'context deadline exceeded' });
    expect(seen[0]?.deadline).toBeGreaterThanOrEqual(t0 + 90);
    expect(seen[0]?.deadline).toBeLessThanOrEqual(Date.now() + 10);

    // The server answers with the handler's status when the client waits longer.
    const raw = await rawConnect(path);
    raw.sock.write(reqFrame(1, 'test.Svc', 'Hang', new Uint8Array(), { timeoutNano: 50_000_000n }));
    await until(() => raw.frames.length === 1);
    expect(statusOfFrame(raw.frames[0])).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    raw.sock.destroy();
  });

  it('maps handler failures to status codes', async () => {
    const c = await connect();
    const codeOf = (m: string) => c.call('test.Svc', m, new Uint8Array()).then(() => undefined, (e: TtrpcError) => ({ code: e.code, message: e.message }));
    expect(await codeOf('NotFound')).toEqual({ code: Code.NOT_FOUND, message: 'container not created: not found' });
    expect(await codeOf('Plain')).toEqual({ code: Code.UNKNOWN, message: 'cannot delete a running process' });
    expect(await codeOf('Weird')).toEqual({ code: Code.UNKNOWN, message: 'a string' });
    expect(await codeOf('Sync')).toEqual({ code: Code.FAILED_PRECONDITION, message: 'thrown synchronously' });
    expect(await codeOf('Nope')).toEqual({ code: Code.UNIMPLEMENTED, message: 'method Nope' });
    expect(await codeOf('constructor')).toEqual({ code: Code.UNIMPLEMENTED, message: 'method constructor' });
    expect(await c.call('no.Such', 'Echo', new Uint8Array()).catch((e: TtrpcError) => [e.code, e.message])).toEqual([Code.UNIMPLEMENTED, 'service no.Such']);
    // a reply over 4 MiB is replaced by RESOURCE_EXHAUSTED
    const big = await codeOf('Big');
    expect(big?.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(big?.message).toMatch(/^message length \d+ exceed maximum message size of 4194304$/);
  });

  it('serves thousands of requests from one write, to a peer that reads slowly', async () => {
    const raw = await rawConnect(path);
    raw.sock.pause(); // do not read replies yet: the server must hold back, not buffer without bound
    const n = 5000;
    const payload = new Uint8Array(2048).fill(7);
    raw.sock.write(Buffer.concat(Array.from({ length: n }, (_, i) => reqFrame(2 * i + 1, 'test.Svc', 'Echo', payload))));
    await sleep(200);
    raw.sock.resume();
    await until(() => raw.frames.length === n, 15_000);
    expect(new Set(raw.frames.map((f) => f.streamId)).size).toBe(n);
    expect(raw.frames.every((f) => statusOfFrame(f).code === Code.OK)).toBe(true);
    raw.sock.destroy();
  });

  it('answers INTERNAL when a handler resolves to something that is not bytes', async () => {
    server.register('bad.Svc', { NoBytes: (async () => undefined) as never });
    const c = await connect();
    await expect(c.call('bad.Svc', 'NoBytes', new Uint8Array())).rejects.toMatchObject({ code: Code.INTERNAL });
  });

  it('rejects even stream ids and unparsable requests on their stream; ignores non-request frames', async () => {
    const raw = await rawConnect(path);
    raw.sock.write(reqFrame(2, 'test.Svc', 'Echo'));
    raw.sock.write(encodeFrame({ streamId: 5, type: MessageType.Request, flags: 0, data: hex('0aff') }));
    raw.sock.write(encodeFrame({ streamId: 7, type: MessageType.Response, flags: 0, data: encodeResponse(Code.OK, '') }));
    raw.sock.write(encodeFrame({ streamId: 9, type: 3, flags: 1, data: utf8('future') }));
    raw.sock.write(reqFrame(11, 'test.Svc', 'Echo', utf8('after')));
    await until(() => raw.frames.length === 3);
    await sleep(50);
    expect(raw.frames.map((f) => f.streamId)).toEqual([2, 5, 11]);
    expect(statusOfFrame(raw.frames[0])).toMatchObject({ code: Code.INVALID_ARGUMENT, message: 'StreamID must be odd for client initiated streams' });
    expect(statusOfFrame(raw.frames[1]).code).toBe(Code.INVALID_ARGUMENT);
    expect(statusOfFrame(raw.frames[1]).message).toMatch(/^unmarshal request error: /);
    expect(statusOfFrame(raw.frames[2]).payload).toBe('after');
    // a successful reply carries an explicit empty status
    expect(Buffer.from((raw.frames[2] as { data: Uint8Array }).data.subarray(0, 2)).toString('hex')).toBe('0a00');
    raw.sock.destroy();
  });

  it('answers an oversize frame with RESOURCE_EXHAUSTED and keeps the connection', async () => {
    const raw = await rawConnect(path);
    const header = Buffer.alloc(HEADER_LENGTH);
    header.writeUInt32BE(MESSAGE_LENGTH_MAX + 1, 0);
    header.writeUInt32BE(5, 4);
    header[8] = MessageType.Request;
    raw.sock.write(header);
    raw.sock.write(Buffer.alloc(MESSAGE_LENGTH_MAX + 1, 0x61));
    raw.sock.write(reqFrame(7, 'test.Svc', 'Echo', utf8('still here')));
    await until(() => raw.frames.length === 2);
    expect(raw.frames[0]?.streamId).toBe(5);
    expect(statusOfFrame(raw.frames[0])).toMatchObject({
      code: Code.RESOURCE_EXHAUSTED,
      message: 'message length 4194305 exceed maximum message size of 4194304',
    });
    expect(statusOfFrame(raw.frames[1]).payload).toBe('still here');
    raw.sock.destroy();
  });

  it('aborts in-flight handlers when the connection closes, and reports the close', async () => {
    let closedConns = 0;
    server.onConnectionClosed(() => closedConns++);
    const c = await connect();
    const pending = c.call('test.Svc', 'Hang', new Uint8Array());
    await until(() => seen.length === 1 && server.connections() === 1);
    c.close();
    await expect(pending).rejects.toBeInstanceOf(TtrpcClosedError);
    await until(() => aborted.length === 1 && closedConns === 1);
    expect(aborted[0]).toMatchObject({ code: Code.CANCELLED });
    expect(server.connections()).toBe(0);
    await expect(c.call('test.Svc', 'Echo', new Uint8Array())).rejects.toThrow('ttrpc: closed');
  });

  it('treats a half-close as the end of the connection, and survives a client that leaves mid-reply', async () => {
    const raw = await rawConnect(path);
    raw.sock.write(reqFrame(1, 'test.Svc', 'Hang'));
    await until(() => seen.length === 1);
    raw.sock.end();
    await until(() => aborted.length === 1 && raw.closed());
    expect(aborted[0]).toMatchObject({ code: Code.CANCELLED, message: 'context canceled' });

    for (let i = 0; i < 5; i++) {
      const r = await rawConnect(path);
      r.sock.write(reqFrame(1, 'test.Svc', 'Big'));
      r.sock.write(reqFrame(3, 'test.Svc', 'Echo', new Uint8Array(3 << 20)));
      await sleep(5);
      r.sock.destroy();
    }
    await until(() => server.connections() === 0);
    const c = await connect();
    expect(text(await c.call('test.Svc', 'Echo', utf8('ok')))).toBe('ok');
  });

  it('server close fails pending client calls and fires onClose', async () => {
    const c = await connect();
    let closed = false;
    c.onClose(() => (closed = true));
    const pending = c.call('test.Svc', 'Hang', new Uint8Array()).catch((e: unknown) => e);
    await until(() => seen.length === 1);
    await server.close();
    expect(await pending).toBeInstanceOf(TtrpcClosedError);
    await until(() => closed);
  });

  it('client rejects oversize requests locally and honours abort signals', async () => {
    const c = await connect();
    await expect(c.call('test.Svc', 'Echo', new Uint8Array(MESSAGE_LENGTH_MAX))).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
    const ac = new AbortController();
    const p = c.call('test.Svc', 'Hang', new Uint8Array(), { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: Code.CANCELLED });
    expect(text(await c.call('test.Svc', 'Echo', utf8('next')))).toBe('next');
  });

  it('serves on a net.Server the caller already listens on', async () => {
    const other = new TtrpcServer();
    other.register('x.Y', { Z: async () => utf8('z') });
    const srv = net.createServer();
    const p2 = join(dir, 'fd3.sock');
    await new Promise<void>((r) => srv.listen(p2, r));
    await other.listen(srv);
    const c = await connect();
    clients.push(c);
    const c2 = await TtrpcClient.connect(`unix://${p2}`);
    clients.push(c2);
    expect(text(await c2.call('x.Y', 'Z', new Uint8Array()))).toBe('z');
    await other.close();
  });

  it('typed services: decode requests, encode replies, UNIMPLEMENTED for the rest', async () => {
    const typed = new TtrpcServer();
    registerService(typed, Task, {
      connect: async (req, ctx) => ({ shimPid: 100, taskPid: req.id === 'demo' ? 200 : 0, version: ctx.metadata.get('v')?.[0] ?? '' }),
      state: async (req) => ({ id: req.id, pid: 42, status: Status.RUNNING }),
    });
    registerService(typed, Events, { forward: async () => ({}) });
    const p2 = join(dir, 'typed.sock');
    await typed.listen(p2);
    const c = await TtrpcClient.connect(p2);
    clients.push(c);
    expect(await callMethod(c, Task.method.connect, { id: 'demo' }, { metadata: { v: '2' } })).toMatchObject({ shimPid: 100, taskPid: 200, version: '2' });
    const st = await callMethod(c, Task.method.state, { id: 'demo' });
    expect(st).toMatchObject({ id: 'demo', pid: 42, status: Status.RUNNING });
    expect(st.exitedAt).toBeUndefined();
    // the bytes on the wire are Go's (zero exited_at included)
    const rawState = await c.call('containerd.task.v2.Task', 'State', encode(ConnectRequestSchema, { id: 'demo' }));
    expect(Buffer.from(rawState).toString('hex')).toBe(Buffer.from(encode(StateResponseSchema, { id: 'demo', pid: 42, status: Status.RUNNING })).toString('hex'));
    expect(Buffer.from(rawState).toString('hex')).toBe('0a0464656d6f182a2002520b088092b8c398feffffff01');
    await expect(callMethod(c, Task.method.pause, { id: 'demo' })).rejects.toMatchObject({ code: Code.UNIMPLEMENTED, message: 'method Pause' });
    await expect(c.call('containerd.task.v2.Task', 'Connect', hex('0aff'))).rejects.toMatchObject({ code: Code.INTERNAL });
    const fwd = await callMethod(c, Events.method.forward, { envelope: { namespace: 'default', topic: '/tasks/exit', event: packAny(TaskExitSchema, {}) } });
    expect(fwd.$typeName).toBe(EmptySchema.typeName);
    expect(ForwardRequestSchema.typeName).toBe('containerd.services.events.ttrpc.v1.ForwardRequest');
    await typed.close();
  });

  it('fuzz: 2000 random and mutated frames over many connections do no harm', async () => {
    const rand = prng(0x7ea5eed);
    const int = (n: number) => Math.floor(rand() * n);
    const valid = [
      reqFrame(1, 'test.Svc', 'Echo', utf8('v')),
      reqFrame(3, 'test.Svc', 'NotFound'),
      reqFrame(5, 'containerd.task.v2.Task', 'Connect', encode(ConnectRequestSchema, { id: 'demo' }), { timeoutNano: 1_000_000n }),
      reqFrame(7, 'test.Svc', 'Slow'),
      reqFrame(9, 'test.Svc', 'Hang', new Uint8Array(), { timeoutNano: 5_000_000n, metadata: [{ key: 'a', value: 'b' }] }),
    ];
    const mutate = (): Buffer => {
      const kind = int(6);
      if (kind === 0) return Buffer.from(Array.from({ length: int(64) }, () => int(256))); // garbage
      const base = Buffer.from(valid[int(valid.length)]!);
      if (kind === 1) {
        for (let i = 0, n = 1 + int(4); i < n; i++) base[int(base.length)] = int(256); // flipped bytes
        return base;
      }
      if (kind === 2) return base.subarray(0, int(base.length)); // truncated
      if (kind === 3) {
        base.writeUInt32BE(int(2) ? 0xffffffff : MESSAGE_LENGTH_MAX + int(1000), 0); // huge length field
        return base;
      }
      if (kind === 4) {
        // valid header, random body
        const body = Buffer.from(Array.from({ length: int(40) }, () => int(256)));
        return encodeFrame({ streamId: int(2 ** 32), type: int(4), flags: int(256), data: body });
      }
      return base;
    };

    let sent = 0;
    for (let conn = 0; conn < 40; conn++) {
      const raw = await rawConnect(path);
      const n = 50;
      const frames = Array.from({ length: n }, mutate);
      sent += n;
      // sometimes all in one write, sometimes in random slices
      const wire = Buffer.concat(frames);
      if (int(2)) raw.sock.write(wire);
      else for (let off = 0; off < wire.length; ) {
        const k = 1 + int(97);
        raw.sock.write(wire.subarray(off, off + k));
        off += k;
      }
      const how = int(3);
      if (how === 0) raw.sock.destroy();
      else if (how === 1) raw.sock.end();
      else setTimeout(() => raw.sock.destroy(), int(30));
    }
    expect(sent).toBe(2000);
    await until(() => server.connections() === 0, 10_000);
    const c = await connect();
    expect(text(await c.call('test.Svc', 'Echo', utf8('alive')))).toBe('alive');
    expect(process.exitCode ?? 0).toBe(0);
  });
});
