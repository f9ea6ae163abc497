// The shim's pieces that need no runc: the ordered event publisher against a
// fake containerd Events service, the reaper with a fake waitpid, and the
// Task service's error answers over real ttrpc.
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Events,
  Status,
  Task,
  TaskExitSchema,
  TaskStartSchema,
  anyTypeName,
  decode,
  type ForwardRequest,
} from '../../src/shim/proto/index.js';
import { setLogLevel } from '../../src/log.js';
import { Publisher } from '../../src/shim/publisher.js';
import { Reaper } from '../../src/linux-runtime/reaper.js';
import { registerTaskService } from '../../src/shim/service.js';
import type { WaitResult } from '../../src/linux-runtime/sys.js';
import { TaskManager } from '../../src/shim/task-manager.js';
import { Code, TtrpcClient, TtrpcError, TtrpcServer, callMethod, registerService } from '../../src/shim/ttrpc/index.js';

let dir: string;
const servers: TtrpcServer[] = [];
const clients: TtrpcClient[] = [];

beforeEach(async () => {
  setLogLevel('silent'); // retries log warnings by design
  dir = await mkdtemp(join(tmpdir(), 'tugboat-shim-'));
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function fakeContainerd(failFirst = 0): Promise<{ path: string; got: ForwardRequest[]; calls: () => number }> {
  const path = join(dir, 'containerd.sock.ttrpc');
  const got: ForwardRequest[] = [];
  let calls = 0;
  const server = new TtrpcServer();
  registerService(server, Events, {
    forward: async (req) => {
      calls++;
      if (calls <= failFirst) throw new TtrpcError(Code.UNAVAILABLE, 'try again');
      got.push(req);
      return {};
    },
  });
  await server.listen(path);
  servers.push(server);
  return { path, got, calls: () => calls };
}

describe('Publisher', () => {
  it('forwards events in order with namespace, topic, timestamp and an unprefixed Any', async () => {
    const cd = await fakeContainerd();
    const p = new Publisher(cd.path, 'default', 1);
    p.publish(TaskStartSchema, { containerId: 'c1', pid: 42 });
    p.publish(TaskExitSchema, { containerId: 'c1', id: 'c1', pid: 42, exitStatus: 3 });
    await p.close();
    expect(cd.got.map((f) => f.envelope?.topic)).toEqual(['/tasks/start', '/tasks/exit']);
    const env = cd.got[1]!.envelope!;
    expect(env.namespace).toBe('default');
    expect(env.timestamp).toBeDefined();
    expect(anyTypeName(env.event!)).toBe('containerd.events.TaskExit');
    expect(decode(TaskExitSchema, env.event!.value)).toMatchObject({ containerId: 'c1', id: 'c1', pid: 42, exitStatus: 3 });
  });

  it('retries a failed forward without reordering', async () => {
    const cd = await fakeContainerd(2);
    const p = new Publisher(cd.path, 'default', 1);
    p.publish(TaskStartSchema, { containerId: 'c1', pid: 1 });
    p.publish(TaskExitSchema, { containerId: 'c1', id: 'c1', pid: 1 });
    await p.close();
    expect(cd.calls()).toBe(4);
    expect(cd.got.map((f) => f.envelope?.topic)).toEqual(['/tasks/start', '/tasks/exit']);
  });

  it('never throws from publish, even when containerd is unreachable', async () => {
    const p = new Publisher(join(dir, 'nobody.sock'), 'default', 1);
    expect(() => p.publish(TaskStartSchema, { containerId: 'c1', pid: 1 })).not.toThrow();
    await p.close();
  });
});

describe('Reaper', () => {
  it('resolves each tracked pid once with its status, polling only tracked pids', async () => {
    const states = new Map<number, WaitResult>([
      [10, { state: 'running' }],
      [11, { state: 'exited', status: 143 }],
    ]);
    const polled: number[] = [];
    const r = new Reaper((pid) => {
      polled.push(pid);
      return states.get(pid) ?? { state: 'running' };
    }, 60_000);
    const a = r.track(10);
    const b = await r.track(11);
    expect(b.status).toBe(143);
    states.set(10, { state: 'exited', status: 3 });
    r.poll();
    expect((await a).status).toBe(3);
    const before = polled.length;
    r.poll();
    expect(polled.length).toBe(before); // nothing tracked any more
    r.stop();
  });
});

describe('Task service errors', () => {
  async function shim(): Promise<{ client: TtrpcClient; tasks: TaskManager; shutdowns: () => number }> {
    const events = { publish: () => undefined };
    const settings = { kitDir: join(dir, 'no-kit'), componentCacheDir: join(dir, 'components') };
    const tasks = new TaskManager({ namespace: 'default', events, settings, runcBinary: '/bin/false', reaper: new Reaper(() => ({ state: 'running' }), 60_000) });
    const server = new TtrpcServer();
    let shutdowns = 0;
    registerTaskService(server, tasks, { shutdown: () => shutdowns++ });
    const path = join(dir, 'shim.sock');
    await server.listen(path);
    servers.push(server);
    const client = await TtrpcClient.connect(path);
    clients.push(client);
    return { client, tasks, shutdowns: () => shutdowns };
  }

  it('answers NOT_FOUND "container not created" for unknown ids', async () => {
    const { client } = await shim();
    for (const call of [
      () => callMethod(client, Task.method.state, { id: 'nope' }),
      () => callMethod(client, Task.method.start, { id: 'nope' }),
      () => callMethod(client, Task.method.kill, { id: 'nope', signal: 9 }),
      () => callMethod(client, Task.method.delete, { id: 'nope' }),
      () => callMethod(client, Task.method.wait, { id: 'nope' }),
      () => callMethod(client, Task.method.pids, { id: 'nope' }),
      () => callMethod(client, Task.method.stats, { id: 'nope' }),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: Code.NOT_FOUND, message: 'container not created' });
    }
  });

  it('Connect never fails; Shutdown exits only when no container is left', async () => {
    const { client, shutdowns } = await shim();
    const r = await callMethod(client, Task.method.connect, { id: 'nope' });
    expect(r).toMatchObject({ shimPid: process.pid, taskPid: 0 });
    await callMethod(client, Task.method.shutdown, { id: 'nope' });
    await new Promise((res) => setImmediate(res));
    expect(shutdowns()).toBe(1);
  });

  it('refuses checkpoint and restore with UNIMPLEMENTED', async () => {
    const { client } = await shim();
    await expect(callMethod(client, Task.method.checkpoint, { id: 'x' })).rejects.toMatchObject({ code: Code.UNIMPLEMENTED });
    await expect(callMethod(client, Task.method.create, { id: 'x', bundle: dir, checkpoint: '/cp' })).rejects.toMatchObject({ code: Code.UNIMPLEMENTED });
    // a failed Create leaves nothing registered
    await expect(callMethod(client, Task.method.create, { id: 'x', bundle: join(dir, 'missing') })).rejects.toMatchObject({ code: Code.UNKNOWN });
    await expect(callMethod(client, Task.method.state, { id: 'x' })).rejects.toMatchObject({ code: Code.NOT_FOUND });
  });

  /** A bundle whose entrypoint is a Wasm module, so that Create reaches the Wasm engine. */
  function wasmBundle(name: string, config: object = {}): string {
    const b = join(dir, name);
    mkdirSync(join(b, 'rootfs'), { recursive: true });
    writeFileSync(join(b, 'rootfs', 'app.wasm'), Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
    writeFileSync(join(b, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', root: { path: 'rootfs' }, process: { args: ['/app.wasm'], cwd: '/', user: { uid: 0, gid: 0 } }, ...config }));
    return b;
  }

  it('maps domain errors to the codes containerd expects, once', async () => {
    const { client } = await shim();
    // A bad config.json is the caller's mistake, not UNKNOWN.
    const bad = join(dir, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'config.json'), '{ nope');
    await expect(callMethod(client, Task.method.create, { id: 'a', bundle: bad })).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT, message: expect.stringMatching(/config\.json: invalid JSON at line 1, column 3/) });
    // So is a malformed preopens annotation.
    const pre = wasmBundle('pre', { annotations: { 'io.tugboat.wasm.preopens': '/data=relative' } });
    await expect(callMethod(client, Task.method.create, { id: 'b', bundle: pre })).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT, message: expect.stringMatching(/io\.tugboat\.wasm\.preopens: container path "relative" is not absolute/) });
    // An isolation level nobody offers.
    const iso = wasmBundle('iso', { annotations: { 'io.tugboat.isolation': 'vm' } });
    await expect(callMethod(client, Task.method.create, { id: 'c', bundle: iso })).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT, message: expect.stringMatching(/unknown isolation level "vm"/) });
    // A missing runtime kit is a set-up problem of the host.
    await expect(callMethod(client, Task.method.create, { id: 'd', bundle: wasmBundle('nokit') })).rejects.toMatchObject({ code: Code.FAILED_PRECONDITION, message: expect.stringMatching(/runtime kit not found/) });
    // A stdio scheme the shim does not offer.
    const io = join(dir, 'io');
    mkdirSync(join(io, 'rootfs'), { recursive: true });
    writeFileSync(join(io, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', root: { path: 'rootfs' }, process: { args: ['/bin/sh'], cwd: '/', user: { uid: 0, gid: 0 } } }));
    await expect(callMethod(client, Task.method.create, { id: 'e', bundle: io, stdout: 'binary:///logger' })).rejects.toMatchObject({ code: Code.UNIMPLEMENTED });
    // Nothing was registered.
    for (const id of ['a', 'b', 'c', 'd', 'e']) await expect(callMethod(client, Task.method.state, { id })).rejects.toMatchObject({ code: Code.NOT_FOUND });
  });

  it('exports the Status enum the state machine uses', () => {
    expect(Status.CREATED).toBe(1);
  });
});
