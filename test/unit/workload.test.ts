// prepareWorkload and the container engine without runc: what is detected,
// what is derived (and where), the preopens annotation, engine selection.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { parsePreopens, withPreopenMounts } from '../../src/linux-runtime/preopens.js';
import { isolationOf, selectEngine } from '../../src/linux-runtime/select-engine.js';
import { guestOf } from '../../src/linux-runtime/wasm-bundle.js';
import { prepareWorkload, removeWorkloadHome, reopenWorkload } from '../../src/linux-runtime/workload.js';
import type { Spec } from '../../src/oci/runtime-spec.js';

const MODULE = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
const ELF = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);

let dir: string;
let bundle: string;
let kitDir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tugboat-workload-'));
  bundle = join(dir, 'bundle');
  const rootfs = join(bundle, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(join(rootfs, 'data', 'sub'), { recursive: true });
  mkdirSync(join(rootfs, 'real'), { recursive: true });
  symlinkSync('/real', join(rootfs, 'link'));
  writeFileSync(join(rootfs, 'bin', 'app.wasm'), MODULE);
  writeFileSync(join(rootfs, 'bin', 'sh'), ELF);
  kitDir = join(dir, 'kit');
  mkdirSync(kitDir);
  writeFileSync(join(kitDir, 'kit.json'), JSON.stringify({ loader: 'lib/ld.so', node: 'node', host: 'host/host.mjs', nodeVersion: 'v26' }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const settings = () => ({ kitDir, componentCacheDir: join(dir, 'components') });

function spec(args: string[], annotations: Record<string, string> = {}, extra: Partial<Spec> = {}): Spec {
  return {
    ociVersion: '1.0.2',
    root: { path: 'rootfs' },
    process: { args, env: ['PATH=/bin', 'A=1'], cwd: '/data', user: { uid: 0, gid: 0 } },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    annotations,
    ...extra,
  };
}

describe('prepareWorkload', () => {
  it('leaves a Linux workload as it is: the caller bundle, no derived files', async () => {
    const home = join(dir, 'home-linux');
    const w = await prepareWorkload({ id: 'l', spec: spec(['sh', '-c', 'true']), bundle, home, settings: settings() });
    expect(w.workload).toEqual({ kind: 'linux', reason: 'entrypoint /bin/sh is an ELF binary', entrypoint: '/bin/sh' });
    expect(w.runcBundle).toBe(bundle);
    expect(w.isolation).toBeUndefined();
    expect(w.execProcess({ args: ['x'], cwd: '/', user: { uid: 0, gid: 0 } })).toEqual({ args: ['x'], cwd: '/', user: { uid: 0, gid: 0 } });
    expect(existsSync(home)).toBe(false);
  });

  it('derives a bundle for Wasm in the home it was given: module resolved once, reason recorded', async () => {
    const home = join(dir, 'home-wasm');
    const w = await prepareWorkload({ id: 'w', spec: spec(['app.wasm', 'x']), bundle, home, settings: settings() });
    expect(w.workload).toMatchObject({ kind: 'wasm-module', entrypoint: '/bin/app.wasm' });
    expect(w.isolation).toBe('container');
    expect(w.runcBundle).toBe(home);
    const derived = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')) as Spec;
    expect(derived).toEqual(w.spec);
    expect(derived.root?.path).toBe(join(bundle, 'rootfs'));
    expect(derived.annotations).toMatchObject({ 'io.tugboat.workload': 'wasm-module', 'io.tugboat.workload.reason': 'entrypoint /bin/app.wasm is a Wasm module' });
    expect(guestOf(derived.process)).toEqual({
      args: ['app.wasm', 'x'],
      module: '/bin/app.wasm',
      env: ['PATH=/bin', 'A=1'],
      preopens: [{ guest: '/', path: '/' }, { guest: '.', path: '/data' }],
    });
    // The caller's spec is untouched, and its process is what exec starts from.
    expect(w.process.args).toEqual(['app.wasm', 'x']);
    await w.remove();
    expect(existsSync(home)).toBe(false);
    await w.remove();
  });

  it('reopens what an earlier process prepared (the OCI CLI exec), and knows nothing of a Linux container', async () => {
    const home = join(dir, 'home-reopen');
    const annotations = { 'io.tugboat.wasm.preopens': '/d=/data/sub:ro' };
    await prepareWorkload({ id: 'r', spec: spec(['/bin/app.wasm'], annotations), bundle, home, settings: settings() });
    const again = reopenWorkload(home, settings())!;
    expect(again.workload).toMatchObject({ kind: 'wasm-module', entrypoint: '/bin/app.wasm', reason: 'entrypoint /bin/app.wasm is a Wasm module' });
    expect(again.process).toMatchObject({ args: ['/bin/app.wasm'], env: ['PATH=/bin', 'A=1'], cwd: '/data' });
    // An exec'd guest gets the container's preopens, around its own working directory.
    const run = again.execProcess({ args: ['other.wasm'], env: ['B=2'], cwd: '/', user: { uid: 0, gid: 0 } });
    expect(guestOf(run)).toEqual({ args: ['other.wasm'], env: ['B=2'], preopens: [{ guest: '/', path: '/' }, { guest: '/d', path: '/data/sub', readonly: true }] });
    expect(run.args?.[0]).toBe('/.tugboat/lib/ld.so');
    await removeWorkloadHome(home);
    expect(reopenWorkload(home, settings())).toBeUndefined();
  });

  it('chooses the engine by io.tugboat.isolation, else the front end\'s fallback; refuses unknown and unavailable levels', async () => {
    expect(selectEngine().level).toBe('container');
    for (const level of ['container', 'pod', 'process'] as const) expect(selectEngine(level).level).toBe(level);
    for (const level of ['vm', 'toString', '']) expect(() => selectEngine(level)).toThrow(UsageError);
    expect(isolationOf({}, {})).toBe('container');
    expect(isolationOf({}, { fallback: 'pod' })).toBe('pod');
    expect(isolationOf({ 'io.tugboat.isolation': 'process' }, { fallback: 'pod' })).toBe('process');
    expect(() => isolationOf({ 'io.tugboat.isolation': 'vm' })).toThrow(/unknown isolation level "vm".*available: container, pod, process/);
    await expect(prepareWorkload({ id: 'i', spec: spec(['/bin/app.wasm'], { 'io.tugboat.isolation': 'vm' }), bundle, home: join(dir, 'home-iso'), settings: settings() })).rejects.toMatchObject({
      kind: 'InvalidArgument',
      message: expect.stringMatching(/unknown isolation level "vm"/),
    });
    const oci = { allowed: { levels: ['container'] as const, why: 'is not available here' } };
    await expect(prepareWorkload({ id: 'i', spec: spec(['/bin/app.wasm'], { 'io.tugboat.isolation': 'pod' }), bundle, home: join(dir, 'home-iso'), settings: settings(), isolation: oci })).rejects.toMatchObject({
      kind: 'InvalidArgument',
      message: 'isolation level "pod" (io.tugboat.isolation) is not available here; use container',
    });
    expect(existsSync(join(dir, 'home-iso'))).toBe(false);
    // A shared host's workload derives nothing and has no runc bundle.
    const p = await prepareWorkload({ id: 'p', spec: spec(['/bin/app.wasm'], { 'io.tugboat.isolation': 'process' }), bundle, home: join(dir, 'home-p'), settings: settings() });
    expect(p.isolation).toBe('process');
    expect(p.runcBundle).toBeUndefined();
    expect(existsSync(join(dir, 'home-p'))).toBe(false);
  });

  it('refuses a missing kit as a failed precondition, writing nothing', async () => {
    const home = join(dir, 'home-nokit');
    await expect(prepareWorkload({ id: 'k', spec: spec(['/bin/app.wasm']), bundle, home, settings: { ...settings(), kitDir: join(dir, 'none') } })).rejects.toMatchObject({ kind: 'FailedPrecondition' });
    expect(existsSync(home)).toBe(false);
  });
});

describe('io.tugboat.wasm.preopens', () => {
  it('parses GUEST=CONTAINER[:ro] entries in order', () => {
    expect(parsePreopens(undefined)).toEqual([]);
    expect(parsePreopens(' ')).toEqual([]);
    expect(parsePreopens('/data=/mnt/data:ro, /scratch=/tmp')).toEqual([
      { guest: '/data', path: '/mnt/data', readonly: true },
      { guest: '/scratch', path: '/tmp' },
    ]);
    expect(parsePreopens('/a/=/b/c/:rw')).toEqual([{ guest: '/a', path: '/b/c' }]);
  });

  it.each([
    ['/data', /no "="/],
    ['=/x', /no "="/],
    ['data=/x', /guest path "data" is not absolute/],
    ['/data=x', /container path "x" is not absolute/],
    ['/data=/x/../../etc', /contains "\.\."/],
    ['/=/x', /the guest path "\/" is always the container root/],
    ['/a=/x,/a=/y', /guest path \/a given twice/],
    ['/a=/x,,/b=/y', /empty entry/],
  ])('refuses %j', (value, message) => {
    expect(() => parsePreopens(value)).toThrow(UsageError);
    expect(() => parsePreopens(value)).toThrow(message);
  });

  it('makes read-only preopens read-only for the kernel, resolved inside the root', () => {
    const rootfs = join(bundle, 'rootfs');
    const vol = join(dir, 'vol');
    mkdirSync(join(vol, 'inner'), { recursive: true });
    const base = spec([], {}, { mounts: [{ destination: '/vol', type: 'bind', source: vol, options: ['rbind'] }, { destination: '/exact', type: 'bind', source: vol, options: ['rbind', 'rw'] }] });
    const out = withPreopenMounts(base, rootfs, parsePreopens('/a=/data/sub:ro,/b=/link:ro,/c=/vol/inner:ro,/d=/exact:ro,/e=/data'));
    expect(out.mounts).toEqual([
      { destination: '/vol', type: 'bind', source: vol, options: ['rbind'] },
      { destination: '/exact', type: 'bind', source: vol, options: ['rbind', 'ro'] },
      { destination: '/data/sub', type: 'bind', source: join(rootfs, 'data', 'sub'), options: ['rbind', 'ro', 'nosuid', 'nodev'] },
      // A link inside the root: mounted where it leads.
      { destination: '/real', type: 'bind', source: join(rootfs, 'real'), options: ['rbind', 'ro', 'nosuid', 'nodev'] },
      { destination: '/vol/inner', type: 'bind', source: join(vol, 'inner'), options: ['rbind', 'ro', 'nosuid', 'nodev'] },
    ]);
    expect(() => withPreopenMounts(base, rootfs, parsePreopens('/m=/missing'))).toThrow(/\/missing is not a directory in the container/);
    expect(() => withPreopenMounts(base, rootfs, parsePreopens('/m=/bin/app.wasm'))).toThrow(/not a directory/);
    const tmpfs = spec([], {}, { mounts: [{ destination: '/run', type: 'tmpfs', source: 'tmpfs' }] });
    expect(() => withPreopenMounts(tmpfs, rootfs, parsePreopens('/r=/run/x:ro'))).toThrow(/cannot be made read-only inside the tmpfs mount at \/run/);
    expect(withPreopenMounts(tmpfs, rootfs, parsePreopens('/r=/run/x')).mounts).toEqual(tmpfs.mounts);
  });
});
