// The pieces of the HTTP host that need no component: header fields, the
// instance pool, the cgroup's CPU quota, the serve settings, the reuse
// declaration.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from '@bytecodealliance/jco';
import { describe, expect, it } from 'vitest';
import { customSectionNames, declaresReuse, REUSE_SECTION } from '../../src/oci/component-sections.js';
import { httpAnnotations } from '../../src/linux-runtime/component-cache.js';
import { cgroupCpuQuota, defaultHandlerThreads, type CgroupFs } from '../../src/wasi-host/http/cpus.js';
import { Fields } from '../../src/wasi-host/http/fields.js';
import { InstancePool } from '../../src/wasi-host/http/pool.js';
import { DEFAULT_HTTP_PORT, DEFAULT_POOL, httpPort, httpServeSettings } from '../../src/wasi-host/http/settings.js';
import { ConfigError } from '../../src/errors.js';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples', 'components');
const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};

describe('fields', () => {
  it('compares names without case, keeps values as bytes (latin1 strings), in order', () => {
    const f = new Fields();
    f.append('X-A', ('1'));
    f.append('x-a', ('2'));
    f.append('Content-Type', ('text/plain'));
    expect(f.get('x-A').map(String)).toEqual(['1', '2']);
    expect(f.has('CONTENT-TYPE')).toBe(true);
    f.set('x-a', [('3')]);
    expect(f.entries().map(([n, v]) => `${n}=${String(v)}`)).toEqual(['content-type=text/plain', 'x-a=3']);
    f.delete('X-A');
    expect(f.toRaw()).toEqual(['content-type', 'text/plain']);
  });

  it('refuses bad names and values (invalid-syntax), hop-by-hop headers (forbidden)', () => {
    const f = new Fields();
    expect(thrown(() => f.append('bad name', ('x')))).toEqual({ tag: 'invalid-syntax' });
    expect(thrown(() => f.append('', ('x')))).toEqual({ tag: 'invalid-syntax' });
    expect(thrown(() => f.append('caf\xe9', ('x')))).toEqual({ tag: 'invalid-syntax' });
    expect(thrown(() => f.append('TE', ('trailers')))).toEqual({ tag: 'forbidden' });
    expect(thrown(() => f.append('x', ('a\r\nb: c')))).toEqual({ tag: 'invalid-syntax' });
    expect(thrown(() => f.append('Connection', ('close')))).toEqual({ tag: 'forbidden' });
    expect(thrown(() => Fields.fromList([['transfer-encoding', ('chunked')]]))).toEqual({ tag: 'forbidden' });
    expect(thrown(() => f.set('x', [('\0')]))).toEqual({ tag: 'invalid-syntax' });
    f.append('x', ('tab\tok \xe9'));
    // A char above 0xff is not a byte: no such value comes out of the ABI, and none is taken.
    expect(thrown(() => f.append('y', 'caf\u20ac'))).toEqual({ tag: 'invalid-syntax' });
  });

  it('shows a request\'s headers without hop-by-hop ones, immutable; a clone is mutable', () => {
    const f = Fields.fromRaw(['Host', 'h', 'Connection', 'keep-alive', 'X-Echo', 'caf\xe9']);
    expect(f.entries()).toEqual([
      ['host', 'h'],
      ['x-echo', 'caf\xe9'],
    ]);
    expect(thrown(() => f.append('x', ('1')))).toEqual({ tag: 'immutable' });
    const c = f.clone();
    c.append('x', ('1'));
    expect(c.get('x').map(String)).toEqual(['1']);
    expect(thrown(() => Fields.lock(c).delete('x'))).toEqual({ tag: 'immutable' });
    expect(Fields.fromRaw(['A', '1', 'a', '2']).toRecord()).toEqual({ a: '1, 2' });
  });
});

describe('instance pool', () => {
  const tick = () => new Promise((r) => setImmediate(r));
  const pool = (size: number, reuse: boolean) => {
    let n = 0;
    const discarded: number[] = [];
    const p = new InstancePool<number>({ size, reuse, create: () => ++n, discard: (i) => discarded.push(i) });
    return { p, discarded, made: () => n };
  };

  it('makes the first instance at start and the rest off the hot path, never more than its size', async () => {
    const { p, made } = pool(3, false);
    p.start();
    expect(made()).toBe(1);
    for (let i = 0; i < 5; i++) await tick();
    expect(made()).toBe(3);
    expect(p.stats()).toMatchObject({ ready: 3, busy: 0 });
  });

  it('may hold back the rest of its first fill until the first request is over', async () => {
    const { p, made } = pool(3, false);
    p.start(60_000);
    for (let i = 0; i < 5; i++) await tick();
    expect(made()).toBe(1);
    const a = p.take()!;
    for (let i = 0; i < 5; i++) await tick();
    expect(made()).toBe(1);
    p.release(a, false);
    for (let i = 0; i < 5; i++) await tick();
    // The fresh instance that served went; three ready ones were made.
    expect(made()).toBe(4);
    expect(p.stats()).toMatchObject({ ready: 3, busy: 0 });
    p.close();
  });

  it('makes an instance at once for a request that waits during the hold, and fills once the hold time is over', async () => {
    const { p, made } = pool(3, false);
    p.start(60_000);
    p.take();
    expect(await p.next()).toBe(2);
    p.close();
    const q = pool(3, false);
    q.p.start(1);
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 5; i++) await tick();
    expect(q.made()).toBe(3);
    expect(made()).toBe(2);
    q.p.close();
  });

  it('fresh: an instance serves one request; its replacement comes later', async () => {
    const { p, discarded, made } = pool(1, false);
    p.start();
    const a = p.take()!;
    expect(p.take()).toBeUndefined();
    const waiting = p.next();
    expect(p.stats().waiting).toBe(1);
    p.release(a, false);
    expect(discarded).toEqual([a]);
    expect(await waiting).toBe(2);
    expect(made()).toBe(2);
  });

  it('reuse: a request in line gets the instance the moment it is free, in arrival order', async () => {
    const { p, made } = pool(1, true);
    p.start();
    const a = p.take()!;
    const order: string[] = [];
    const first = p.next().then((i) => order.push(`first:${i}`));
    const second = p.next().then((i) => order.push(`second:${i}`));
    p.release(a, false);
    await first;
    p.release(a, false);
    await second;
    expect(order).toEqual(['first:1', 'second:1']);
    expect(made()).toBe(1);
  });

  it('a failed instance is dropped and replaced, even when instances are reused', async () => {
    const { p, discarded } = pool(1, true);
    p.start();
    const a = p.take()!;
    p.release(a, true);
    expect(discarded).toEqual([1]);
    await tick();
    expect(p.take()).toBe(2);
  });

  it('requests in line fail when no instance can be made, and when it closes', async () => {
    let fail = false;
    const p = new InstancePool<number>({
      size: 1,
      reuse: false,
      create: () => {
        if (fail) throw new Error('out of memory');
        return 1;
      },
    });
    p.start();
    const a = p.take()!;
    fail = true;
    const waiting = p.next();
    p.release(a, false);
    await expect(waiting).rejects.toThrow('out of memory');
    const p2 = new InstancePool<number>({ size: 1, reuse: true, create: () => 1 });
    p2.start();
    p2.take();
    const w2 = p2.next();
    p2.close();
    await expect(w2).rejects.toThrow(/shutting down/);
    expect(() => new InstancePool({ size: 0, reuse: true, create: () => 1 })).toThrow(RangeError);
  });
});

describe('CPUs of the cgroup', () => {
  const fsOf = (self: string, files: Record<string, string>): CgroupFs => ({ selfCgroup: () => self, read: (p) => files[p] });

  it('reads cgroup v2 cpu.max along the path (a parent\'s limit binds), none is no limit', () => {
    expect(cgroupCpuQuota(fsOf('0::/a/b\n', { '/a/b/cpu.max': 'max 100000\n', '/a/cpu.max': '150000 100000\n' }))).toBe(1.5);
    expect(cgroupCpuQuota(fsOf('0::/\n', { '/cpu.max': '50000 100000' }))).toBe(0.5);
    expect(cgroupCpuQuota(fsOf('0::/x\n', {}))).toBeUndefined();
  });

  it('reads cgroup v1 cfs quota and period (-1 is none), under any mount name of the controller', () => {
    const self = '4:memory:/m\n3:cpu,cpuacct:/docker/c1\n';
    expect(cgroupCpuQuota(fsOf(self, { '/cpu,cpuacct/docker/c1/cpu.cfs_quota_us': '200000', '/cpu,cpuacct/docker/c1/cpu.cfs_period_us': '100000' }))).toBe(2);
    expect(cgroupCpuQuota(fsOf(self, { '/cpu/docker/c1/cpu.cfs_quota_us': '-1', '/cpu/docker/c1/cpu.cfs_period_us': '100000' }))).toBeUndefined();
    // Inside a container the mount's root is its own cgroup.
    expect(cgroupCpuQuota(fsOf(self, { '/cpu/cpu.cfs_quota_us': '100000', '/cpu/cpu.cfs_period_us': '100000' }))).toBe(1);
  });

  it('defaults to the quota rounded up, within the affinity mask, at least 1', () => {
    expect(defaultHandlerThreads(fsOf('0::/\n', { '/cpu.max': '150000 100000' }), 8)).toBe(2);
    expect(defaultHandlerThreads(fsOf('0::/\n', { '/cpu.max': '800000 100000' }), 2)).toBe(2);
    expect(defaultHandlerThreads(fsOf('0::/\n', { '/cpu.max': '10000 100000' }), 4)).toBe(1);
    expect(defaultHandlerThreads(fsOf('0::/\n', {}), 3)).toBe(3);
    expect(defaultHandlerThreads({ selfCgroup: () => { throw new Error('no /proc'); }, read: () => undefined }, 2)).toBe(2);
  });
});

describe('serve settings', () => {
  const component = { dir: '/c', entry: 'c.mjs', world: 'http' as const };
  it('port: annotation, then PORT, then 8080', () => {
    expect(httpPort({ args: ['a'], env: ['PORT=9000'], component: { ...component, port: 7000 } })).toBe(7000);
    expect(httpPort({ args: ['a'], env: ['PORT=9000'] })).toBe(9000);
    expect(httpPort({ args: ['a'], env: ['PORT=nope'] })).toBe(DEFAULT_HTTP_PORT);
    expect(httpPort({ args: ['a'], env: [] })).toBe(8080);
  });
  it('threads from the annotation or the CPUs, the pool from the annotation or its default, reuse only when declared, reset only when allowed', () => {
    expect(httpServeSettings({ args: ['a'], env: [], component }, () => 3)).toEqual({ port: 8080, threads: 3, pool: DEFAULT_POOL, reuse: false, reset: false });
    expect(httpServeSettings({ args: ['a'], env: [], component: { ...component, threads: 1, pool: 2, reuse: true } }, () => 3)).toEqual({ port: 8080, threads: 1, pool: 2, reuse: true, reset: false });
    expect(httpServeSettings({ args: ['a'], env: [], component: { ...component, reset: true } }, () => 3)).toMatchObject({ reuse: false, reset: true });
  });
  it('annotations: whole numbers in range, else one clear error', () => {
    expect(httpAnnotations({ 'io.tugboat.http.pool': '4', 'io.tugboat.http.threads': '2', 'io.tugboat.http.port': '81' })).toEqual({ pool: 4, threads: 2, port: 81 });
    expect(httpAnnotations({})).toEqual({});
    for (const bad of ['0', '-1', '1.5', 'two', '99999', ' 3x']) {
      expect(() => httpAnnotations({ 'io.tugboat.http.pool': bad })).toThrow(ConfigError);
    }
    expect(() => httpAnnotations({ 'io.tugboat.http.threads': '1000' })).toThrow(/io\.tugboat\.http\.threads=1000: expected a whole number from 1 to 256/);
    expect(httpAnnotations({ 'io.tugboat.http.reuse': 'false' })).toEqual({ noReuse: true });
    expect(() => httpAnnotations({ 'io.tugboat.http.reuse': 'true' })).toThrow(/only false/);
    expect(httpAnnotations({ 'io.tugboat.http.reset': 'false' })).toEqual({ noReset: true });
    expect(() => httpAnnotations({ 'io.tugboat.http.reset': 'yes' })).toThrow(/io\.tugboat\.http\.reset=yes: only false/);
  });
});

describe('the reuse declaration', () => {
  it('is found at the top level of a component and in its core modules, and nowhere else', async () => {
    const built = readFileSync(join(EXAMPLES, 'out', 'http-bench.wasm'));
    expect(declaresReuse(built)).toBe(true);
    expect(declaresReuse(readFileSync(join(EXAMPLES, 'out', 'http-trap.wasm')))).toBe(false);
    const top = await parse(`(component (@custom "${REUSE_SECTION}" "") (core module))`);
    expect(customSectionNames(top)).toContain(REUSE_SECTION);
  });
  it('reads hostile bytes without throwing', () => {
    expect(declaresReuse(new Uint8Array(0))).toBe(false);
    expect(declaresReuse(Buffer.from('0061736d0d000100ff', 'hex'))).toBe(false);
    expect(declaresReuse(Buffer.from('0061736d0d00010000ffffffffff0f', 'hex'))).toBe(false);
    expect(declaresReuse(Buffer.from('0061736d0d0001000005ff6162', 'hex'))).toBe(false);
  });
});
