// The component transpile cache, the spec rewrite for components and the
// guest config that carries them: real jco, temp dirs, no runc.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from '@bytecodealliance/jco';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  COMPONENT_ENTRY,
  COMPONENT_MOUNT_POINT,
  componentRewriteOptions,
  ensureTranspiled,
  transpileMemoryLimit,
  worldOf,
} from '../../src/linux-runtime/component-cache.js';
import { WasmError } from '../../src/errors.js';
import { ownerTag } from '../../src/owner.js';
import type { Kit } from '../../src/linux-runtime/kit.js';
import { worldItems } from '../../src/oci/component-wit.js';
import { detectWorkload } from '../../src/oci/detect.js';
import { rewriteSpecForWasm, WORKLOAD_ANNOTATION } from '../../src/linux-runtime/wasm-bundle.js';
import type { Spec } from '../../src/oci/runtime-spec.js';
import { decodeGuestConfig, encodeGuestConfig } from '../../src/wasi-host/guest-config.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kit: Kit = { dir: '/opt/kit', loader: 'lib/ld.so', node: 'node', host: 'host/host.mjs', nodeVersion: 'v24' };

/** The hand-written exit-with-code component, assembled from its WAT (no build step needed). */
export async function exitWithCodeComponent(): Promise<Uint8Array> {
  return parse(readFileSync(join(REPO, 'examples', 'components', 'exit-with-code.wat'), 'utf8'));
}

describe('component transpile cache', () => {
  let dir: string;
  let component: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tugboat-cc-'));
    component = join(dir, 'c.wasm');
    writeFileSync(component, await exitWithCodeComponent());
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('transpiles on a miss into <cache>/<sha256>, with the world from its WIT', async () => {
    const cache = join(dir, 'cache1');
    const got = await ensureTranspiled(component, cache);
    expect(got.cached).toBe(false);
    expect(got.dir).toBe(join(cache, got.meta.sha256));
    expect(got.meta.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(got.meta.world).toBe('command');
    expect(got.meta.exports).toEqual(['wasi:cli/run@0.2.12']);
    expect(got.meta.imports).toEqual(['wasi:cli/exit@0.2.12', 'wasi:cli/environment@0.2.12']);
    const files = readdirSync(got.dir).sort();
    expect(files).toContain(COMPONENT_ENTRY);
    expect(files).toContain('meta.json');
    expect(files.some((f) => f.endsWith('.d.ts'))).toBe(false);
    // Nothing but the entry is left in the cache dir (the temp dir was renamed).
    expect(readdirSync(cache)).toEqual([got.meta.sha256]);
  });

  it('reuses the entry on a hit without rewriting it', async () => {
    const cache = join(dir, 'cache2');
    const first = await ensureTranspiled(component, cache);
    const before = statSync(join(first.dir, COMPONENT_ENTRY));
    const second = await ensureTranspiled(component, cache);
    expect(second.cached).toBe(true);
    expect(second.meta).toEqual(first.meta);
    const after = statSync(join(first.dir, COMPONENT_ENTRY));
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
  });

  it('survives concurrent misses: one entry, no temp dirs left', async () => {
    const cache = join(dir, 'cache3');
    const all = await Promise.all([1, 2, 3, 4].map(() => ensureTranspiled(component, cache)));
    expect(new Set(all.map((a) => a.dir)).size).toBe(1);
    expect(readdirSync(cache)).toEqual([all[0]!.meta.sha256]);
  });

  it('rebuilds an entry written by another jco or format', async () => {
    const cache = join(dir, 'cache4');
    const first = await ensureTranspiled(component, cache);
    const metaPath = join(first.dir, 'meta.json');
    const stale = { ...first.meta, jco: '0.0.0-old' };
    rmSync(metaPath, { force: true });
    writeFileSync(metaPath, JSON.stringify(stale));
    const again = await ensureTranspiled(component, cache);
    expect(again.cached).toBe(false);
    expect(again.meta.jco).toBe(first.meta.jco);
  });

  // The componentize-js HTTP component (14 MB) needs ~240 MB to transpile; it is built with the test images.
  const big = join(REPO, 'examples', 'components', 'out', 'http-hello.wasm');
  it.skipIf(!existsSync(big))('transpiles in a child bounded in memory: over the limit, a clear Wasm error', async () => {
    const before = process.memoryUsage().rss;
    const saved = process.env.TUGBOAT_TRANSPILE_MEMORY;
    process.env.TUGBOAT_TRANSPILE_MEMORY = '128m';
    try {
      const err = await ensureTranspiled(big, join(dir, 'cache-mem')).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(WasmError);
      expect(err.message).toBe('cannot transpile Wasm component: it needs more than 128 MiB of memory (TUGBOAT_TRANSPILE_MEMORY raises the limit)');
      expect(readdirSync(join(dir, 'cache-mem'))).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.TUGBOAT_TRANSPILE_MEMORY;
      else process.env.TUGBOAT_TRANSPILE_MEMORY = saved;
    }
    // The work happened in the child: this process did not grow by the transpiler's needs.
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 1024 * 1024);
    const cgroups = ['/sys/fs/cgroup/memory', '/sys/fs/cgroup'].filter((d) => existsSync(d)).flatMap((d) => readdirSync(d));
    // Only this process's own: other checkouts on the machine may transpile at the same time.
    expect(cgroups.filter((n) => n.startsWith(`tugboat-transpile-${ownerTag()}-`))).toEqual([]);
  });

  it('refuses a bad TUGBOAT_TRANSPILE_MEMORY', () => {
    expect(transpileMemoryLimit({})).toBe(1024 ** 3);
    expect(transpileMemoryLimit({ TUGBOAT_TRANSPILE_MEMORY: '2g' })).toBe(2 * 1024 ** 3);
    expect(() => transpileMemoryLimit({ TUGBOAT_TRANSPILE_MEMORY: 'lots' })).toThrow(/TUGBOAT_TRANSPILE_MEMORY: invalid size "lots"/);
    expect(() => transpileMemoryLimit({ TUGBOAT_TRANSPILE_MEMORY: '1m' })).toThrow(/at least 128m/);
  });

  it('refuses a file that is not a valid component with a Wasm error (126)', async () => {
    const bad = join(dir, 'bad.wasm');
    writeFileSync(bad, Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0xff]));
    await expect(ensureTranspiled(bad, join(dir, 'cache5'))).rejects.toMatchObject({ exitCode: 126 });
  });

  it('detection tells a component entrypoint from a module, even when the image platform decided', async () => {
    const rootfs = join(dir, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    writeFileSync(join(rootfs, 'bin', 'app.wasm'), readFileSync(component));
    writeFileSync(join(rootfs, 'mod.wasm'), Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
    const image = { platform: { os: 'wasip2', architecture: 'wasm' } };
    expect(detectWorkload({ args: ['app.wasm'], env: ['PATH=/bin'], rootfs, image })).toEqual({ kind: 'wasm-component', reason: 'image platform wasip2/wasm', entrypoint: '/bin/app.wasm' });
    expect(detectWorkload({ args: ['/mod.wasm'], env: [], rootfs, image })).toMatchObject({ kind: 'wasm-module', entrypoint: '/mod.wasm' });
    expect(detectWorkload({ args: ['/missing.wasm'], env: [], rootfs, image })).toEqual({ kind: 'wasm-module', reason: 'image platform wasip2/wasm' });
  });

  it('gives the rewrite the cache entry, and an HTTP component how it is served', async () => {
    const cache = join(dir, 'cache6');
    const opts = await componentRewriteOptions(component, '/bin/app.wasm', cache, {});
    expect(opts.component).toMatchObject({ dir: COMPONENT_MOUNT_POINT, entry: COMPONENT_ENTRY, world: 'command' });
    expect(opts.component.source).toMatch(new RegExp(`^${cache}/[0-9a-f]{64}$`));
    expect(opts.component.port).toBeUndefined();
    // A command serves nothing: the io.tugboat.http.* annotations are not passed on.
    expect((await componentRewriteOptions(component, '/c.wasm', cache, { 'io.tugboat.http.port': '9090' })).component.port).toBeUndefined();
    const http = join(dir, 'http-trap.wasm');
    writeFileSync(http, await parse(readFileSync(join(REPO, 'examples', 'components', 'http-trap.wat'), 'utf8')));
    const served = await componentRewriteOptions(http, '/h.wasm', cache, { 'io.tugboat.http.port': '9090', 'io.tugboat.http.pool': '3', 'io.tugboat.http.threads': '2' });
    expect(served.component).toMatchObject({ world: 'http', port: 9090, pool: 3, threads: 2 });
    expect(served.component.reuse).toBeUndefined();
    // Its one-request instances may be put back as made (the transpile found nothing against it), unless the annotation says no.
    expect(served.component.reset).toBe(true);
    expect((await componentRewriteOptions(http, '/h.wasm', cache, { 'io.tugboat.http.reset': 'false' })).component.reset).toBeUndefined();
    expect((await componentRewriteOptions(component, '/c.wasm', cache, {})).component.reset).toBeUndefined();
    expect((await componentRewriteOptions(http, '/h.wasm', cache, { 'io.tugboat.http.port': '70000' })).component.port).toBeUndefined();
  });
});

describe('world of a component', () => {
  it('reads imports and exports from WIT', () => {
    const wit = 'package root:component;\n\nworld root {\n  import wasi:io/poll@0.2.12;\n  import wasi:cli/stdout@0.2.12;\n\n  export wasi:http/incoming-handler@0.2.10;\n}\n';
    expect(worldItems(wit)).toEqual({ imports: ['wasi:io/poll@0.2.12', 'wasi:cli/stdout@0.2.12'], exports: ['wasi:http/incoming-handler@0.2.10'] });
  });
  it.each([
    [['wasi:cli/run@0.2.0'], 'command'],
    [['wasi:http/incoming-handler@0.2.0'], 'http'],
    [['my:pkg/thing'], 'unknown'],
  ] as const)('%j → %s', (exports, world) => {
    expect(worldOf(exports)).toBe(world);
  });
});

describe('wasm bundle rewrite for components', () => {
  const base = (): Spec =>
    ({ ociVersion: '1.0.2', root: { path: 'rootfs' }, process: { args: ['/app.wasm', 'x'], env: ['A=1'], cwd: '/' }, mounts: [] }) as unknown as Spec;
  const component = { source: '/var/lib/tugboat/components/abc', dir: COMPONENT_MOUNT_POINT, entry: COMPONENT_ENTRY, world: 'command' as const };

  it('mounts the cache entry read-only and tells the host about it', () => {
    const out = rewriteSpecForWasm(base(), kit, { component, module: '/app.wasm' });
    expect(out.mounts?.at(-1)).toEqual({ destination: COMPONENT_MOUNT_POINT, type: 'bind', source: component.source, options: ['rbind', 'ro', 'nosuid', 'nodev'] });
    expect(out.annotations?.[WORKLOAD_ANNOTATION]).toBe('wasm-component');
    const guest = decodeGuestConfig(out.process!.env![0]!.replace(/^TUGBOAT_GUEST=/, ''));
    expect(guest).toEqual({
      args: ['/app.wasm', 'x'],
      module: '/app.wasm',
      env: ['A=1'],
      preopens: [{ guest: '/', path: '/' }],
      component: { dir: COMPONENT_MOUNT_POINT, entry: COMPONENT_ENTRY, world: 'command' },
    });
  });

  it('is idempotent about the component mount and unchanged without options', () => {
    const twice = rewriteSpecForWasm(rewriteSpecForWasm(base(), kit, { component }), kit, { component });
    expect(twice.mounts?.filter((m) => m.destination === COMPONENT_MOUNT_POINT)).toHaveLength(1);
    expect(rewriteSpecForWasm(base(), kit)).toEqual(rewriteSpecForWasm(base(), kit, {}));
    expect(rewriteSpecForWasm(base(), kit).annotations?.[WORKLOAD_ANNOTATION]).toBe('wasm-module');
  });

  it('guest config validates the component field', () => {
    const ok = { args: ['a'], env: [], component: { dir: '/c', entry: 'component.mjs', world: 'http' } };
    expect(decodeGuestConfig(encodeGuestConfig(ok as never))).toEqual(ok);
    for (const c of [{ dir: 'rel', entry: 'x.mjs', world: 'command' }, { dir: '/c', entry: '../x.mjs', world: 'command' }, { dir: '/c', entry: 'x.mjs', world: 'other' }]) {
      expect(() => decodeGuestConfig(JSON.stringify({ args: ['a'], env: [], component: c }))).toThrow(/TUGBOAT_GUEST/);
    }
  });
});
