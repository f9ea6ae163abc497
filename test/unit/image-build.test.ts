import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ImageError, NotFoundError, UsageError, WasmError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { buildImage, buildWasmImage, wasmKind } from '../../src/oci/image-build.js';
import { openImageSource, openOciLayout, resolveImage } from '../../src/oci/image-source.js';
import { hostPlatform } from '../../src/oci/platform.js';
import type { ImageIndex } from '../../src/oci/types.js';

const MODULE = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
const COMPONENT = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);

interface TarFile {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string | null;
  data: Buffer;
}

async function readTar(data: Buffer): Promise<TarFile[]> {
  const out: TarFile[] = [];
  const ex = tar.extract();
  Readable.from([data]).pipe(ex as unknown as NodeJS.WritableStream);
  for await (const e of ex) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    const h = e.header;
    out.push({ name: h.name, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime.getTime(), linkname: h.linkname, data: Buffer.concat(chunks) });
  }
  return out;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tugboat-build-'));
  await writeFile(join(dir, 'app.wasm'), MODULE);
  await writeFile(join(dir, 'comp.wasm'), COMPONENT);
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await rm(dir, { recursive: true, force: true });
});

describe('wasmKind', () => {
  it('tells modules from components by the layer field', () => {
    expect(wasmKind(MODULE)).toBe('module');
    expect(wasmKind(COMPONENT)).toBe('component');
    expect(wasmKind(Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x0a, 0x00, 0x01, 0x00]))).toBe('component');
    expect(wasmKind(Buffer.from('\x7fELF\x02\x01\x01\x00'))).toBeNull();
    expect(wasmKind(MODULE.subarray(0, 7))).toBeNull();
    expect(wasmKind(Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x02, 0x00]))).toBeNull();
  });
});

describe('buildWasmImage (image form)', () => {
  it('writes a wasi/wasm image with the module as entrypoint', async () => {
    const out = join(dir, 'layout');
    const r = await buildWasmImage({ wasm: join(dir, 'app.wasm'), args: ['--x', '1'], env: ['A=b'], workingDir: '/w', format: 'oci', output: out, tag: 'v1' });
    expect(r.platform).toEqual({ os: 'wasi', architecture: 'wasm' });

    const src = openOciLayout(out);
    const img = await resolveImage(src, 'v1', undefined);
    expect(img.isArtifact).toBe(false);
    expect(img.manifestDescriptor.digest).toBe(r.manifestDigest);
    expect(img.manifest.config.digest).toBe(r.configDigest);
    expect(img.platform).toEqual({ os: 'wasi', architecture: 'wasm' });
    expect(img.config.config).toEqual({ Env: ['A=b'], Entrypoint: ['/app.wasm'], Cmd: ['--x', '1'], WorkingDir: '/w' });
    expect(img.config.created).toBe('1970-01-01T00:00:00Z');
    expect(img.manifest.layers).toHaveLength(1);
    expect(img.manifest.layers[0]?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');

    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as ImageIndex;
    expect(index.manifests).toEqual([
      expect.objectContaining({ digest: r.manifestDigest, platform: { os: 'wasi', architecture: 'wasm' }, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }),
    ]);
    expect(JSON.parse(await readFile(join(out, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });

    // The layer is deterministic and holds exactly the module.
    const layer = gunzipSync(await src.readBlob(img.manifest.layers[0]!));
    expect(sha256Digest(layer)).toBe(img.config.rootfs?.diff_ids[0]);
    const entries = await readTar(layer);
    expect(entries.map((e) => e.name)).toEqual(['app.wasm']);
    expect(entries[0]).toMatchObject({ uid: 0, gid: 0, mtime: 0, type: 'file' });
    expect(entries[0]?.data.equals(MODULE)).toBe(true);
  });

  it('adds extra files and directories in sorted order with links kept', async () => {
    await mkdir(join(dir, 'static/sub'), { recursive: true });
    await writeFile(join(dir, 'static/b.txt'), 'b');
    await writeFile(join(dir, 'static/sub/a.txt'), 'a');
    await symlink('b.txt', join(dir, 'static/link'));
    const out = join(dir, 'layout');
    await buildWasmImage({
      wasm: join(dir, 'app.wasm'),
      modulePath: '/bin/app.wasm',
      extraFiles: [{ hostPath: join(dir, 'static'), containerPath: '/srv/www' }],
      format: 'oci',
      output: out,
    });
    const src = openOciLayout(out);
    const img = await resolveImage(src, undefined, undefined);
    expect(img.config.config?.Entrypoint).toEqual(['/bin/app.wasm']);
    const entries = await readTar(gunzipSync(await src.readBlob(img.manifest.layers[0]!)));
    expect(entries.map((e) => e.name)).toEqual(['bin/', 'bin/app.wasm', 'srv/', 'srv/www/', 'srv/www/b.txt', 'srv/www/link', 'srv/www/sub/', 'srv/www/sub/a.txt']);
    expect(entries.find((e) => e.name === 'srv/www/link')).toMatchObject({ type: 'symlink', linkname: 'b.txt' });
  });

  it('labels a docker-archive linux/<host arch> and keeps the module entrypoint', async () => {
    const out = join(dir, 'img.tar');
    const r = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'docker-archive', output: out, tag: 'example.com/app:1' });
    expect(r.platform).toEqual({ os: 'linux', architecture: hostPlatform().architecture });
    const files = await readTar(await readFile(out));
    const names = files.map((f) => f.name);
    const manifest = JSON.parse(files.find((f) => f.name === 'manifest.json')!.data.toString()) as { Config: string; RepoTags: string[]; Layers: string[] }[];
    expect(manifest).toHaveLength(1);
    expect(manifest[0]?.RepoTags).toEqual(['example.com/app:1']);
    expect(manifest[0]?.Config).toBe(`${r.configDigest.slice(7)}.json`);
    const config = JSON.parse(files.find((f) => f.name === manifest[0]!.Config)!.data.toString());
    expect(config).toMatchObject({ os: 'linux', architecture: hostPlatform().architecture, config: { Entrypoint: ['/app.wasm'] } });
    // Uncompressed layer whose digest is its diff_id, as docker load checks.
    const layer = files.find((f) => f.name === manifest[0]!.Layers[0])!;
    expect(sha256Digest(layer.data)).toBe(config.rootfs.diff_ids[0]);
    expect((await readTar(layer.data)).map((e) => e.name)).toEqual(['app.wasm']);
    expect(JSON.parse(files.find((f) => f.name === 'repositories')!.data.toString())).toEqual({
      'example.com/app': { '1': manifest[0]!.Layers[0]!.split('/')[0] },
    });
    expect(names).toEqual([...names].sort());
  });

  it('defaults the docker tag', async () => {
    const out = join(dir, 'img.tar');
    await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'docker-archive', output: out });
    const files = await readTar(await readFile(out));
    expect(JSON.parse(files.find((f) => f.name === 'manifest.json')!.data.toString())[0].RepoTags).toEqual(['tugboat.local/image:latest']);
  });

  it('rejects files that are not Wasm', async () => {
    await writeFile(join(dir, 'bad.wasm'), '\x7fELF\x02\x01\x01\x00junk');
    const p = buildWasmImage({ wasm: join(dir, 'bad.wasm'), format: 'oci', output: join(dir, 'o') });
    await expect(p).rejects.toThrow(WasmError);
    await expect(p).rejects.toThrow('bad.wasm: not a WebAssembly module or component');
    await writeFile(join(dir, 'short.wasm'), MODULE.subarray(0, 4));
    await expect(buildWasmImage({ wasm: join(dir, 'short.wasm'), format: 'oci', output: join(dir, 'o') })).rejects.toThrow(WasmError);
    await expect(buildWasmImage({ wasm: join(dir, 'missing.wasm'), format: 'oci', output: join(dir, 'o') })).rejects.toThrow(NotFoundError);
    // Nothing was written.
    expect(await readdir(dir)).not.toContain('o');
  });

  it('rejects bad options before writing', async () => {
    const w = join(dir, 'app.wasm');
    await expect(buildWasmImage({ wasm: w, format: 'oci-archive', output: join(dir, 'x.tar'), addTo: true })).rejects.toThrow(UsageError);
    await expect(buildWasmImage({ wasm: w, format: 'oci', output: join(dir, 'o'), created: 'yesterday' })).rejects.toThrow(/invalid created time/);
    await expect(buildWasmImage({ wasm: w, format: 'docker-archive', output: join(dir, 'x.tar'), tag: 'Bad Tag' })).rejects.toThrow(UsageError);
    await expect(buildWasmImage({ wasm: w, format: 'oci', output: join(dir, 'o'), modulePath: 'rel.wasm' })).rejects.toThrow(/must be absolute/);
    await expect(buildWasmImage({ wasm: w, format: 'oci', output: join(dir, 'o'), modulePath: '/../x.wasm' })).rejects.toThrow(UsageError);
    await expect(buildWasmImage({ wasm: w, format: 'zip' as never, output: join(dir, 'o') })).rejects.toThrow(/unknown output format/);
  });

  it('refuses to write into a directory that is not an OCI layout', async () => {
    await mkdir(join(dir, 'notes'));
    await writeFile(join(dir, 'notes/todo.txt'), 'keep me');
    const p = buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: join(dir, 'notes') });
    await expect(p).rejects.toThrow(UsageError);
    await expect(p).rejects.toThrow('is not an OCI image layout');
    expect(await readdir(join(dir, 'notes'))).toEqual(['todo.txt']);
  });

  it('leaves a layout with a malformed index.json alone', async () => {
    const out = join(dir, 'layout');
    await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: out });
    await writeFile(join(out, 'index.json'), '{"schemaVersion": 2, "manifests": [');
    await expect(buildWasmImage({ wasm: join(dir, 'comp.wasm'), format: 'oci', output: out })).rejects.toThrow(ImageError);
    expect(await readFile(join(out, 'index.json'), 'utf8')).toBe('{"schemaVersion": 2, "manifests": [');
  });
});

describe('buildWasmImage (CNCF artifact form)', () => {
  it('writes a module artifact with the exact media types', async () => {
    const out = join(dir, 'layout');
    const r = await buildWasmImage({ wasm: join(dir, 'app.wasm'), artifact: true, format: 'oci', output: out, annotations: { 'org.opencontainers.image.version': '1' } });
    expect(r.platform).toEqual({ os: 'wasip1', architecture: 'wasm' });
    const src = openOciLayout(out);
    const img = await resolveImage(src, undefined, undefined);
    expect(img.isArtifact).toBe(true);
    expect(img.manifest).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.wasm.config.v0+json', digest: r.configDigest, size: expect.any(Number) },
      layers: [{ mediaType: 'application/wasm', digest: sha256Digest(MODULE), size: 8, annotations: { 'org.opencontainers.image.title': 'app.wasm' } }],
      annotations: { 'org.opencontainers.image.version': '1' },
    });
    expect(img.config).toEqual({ created: '1970-01-01T00:00:00Z', architecture: 'wasm', os: 'wasip1', layerDigests: [sha256Digest(MODULE)] });
    expect((await src.readBlob(img.manifest.layers[0]!)).equals(MODULE)).toBe(true);
  });

  it('marks components wasip2 with a component section', async () => {
    const out = join(dir, 'layout');
    const r = await buildWasmImage({ wasm: join(dir, 'comp.wasm'), artifact: true, format: 'oci', output: out });
    expect(r.platform).toEqual({ os: 'wasip2', architecture: 'wasm' });
    const img = await resolveImage(openOciLayout(out), undefined, undefined);
    expect(img.config).toEqual({
      created: '1970-01-01T00:00:00Z',
      architecture: 'wasm',
      os: 'wasip2',
      layerDigests: [sha256Digest(COMPONENT)],
      component: { exports: [], imports: [] },
    });
  });

  it('refuses docker-archive, extra files and process settings', async () => {
    const w = join(dir, 'app.wasm');
    await expect(buildWasmImage({ wasm: w, artifact: true, format: 'docker-archive', output: join(dir, 'x.tar') })).rejects.toThrow(UsageError);
    await expect(
      buildWasmImage({ wasm: w, artifact: true, format: 'oci', output: join(dir, 'o'), extraFiles: [{ hostPath: w, containerPath: '/x' }] }),
    ).rejects.toThrow(/extra files/);
    await expect(buildWasmImage({ wasm: w, artifact: true, format: 'oci', output: join(dir, 'o'), args: ['a'] })).rejects.toThrow(UsageError);
  });
});

describe('addTo', () => {
  it('turns a tag into a multi-platform index and replaces a same-platform entry', async () => {
    const out = join(dir, 'layout');
    await writeFile(join(dir, 'hello.sh'), '#!/bin/sh\necho hi\n');
    const linux = await buildImage({
      files: [{ hostPath: join(dir, 'hello.sh'), containerPath: '/hello.sh' }],
      platform: { os: 'linux', architecture: 'amd64' },
      config: { Entrypoint: ['/hello.sh'] },
      format: 'oci',
      output: out,
      tag: 'app',
    });
    const other = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: out, tag: 'other' });

    const wasm1 = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: out, tag: 'app', addTo: true });
    expect(wasm1.indexDigest).toMatch(/^sha256:/);
    const src = openOciLayout(out);
    let index = await src.index();
    expect(index.manifests.map((d) => [d.annotations?.['org.opencontainers.image.ref.name'], d.mediaType])).toEqual([
      ['app', 'application/vnd.oci.image.index.v1+json'],
      ['other', 'application/vnd.oci.image.manifest.v1+json'],
    ]);
    expect(index.manifests[1]?.digest).toBe(other.manifestDigest);
    let nested = JSON.parse((await src.readBlob(index.manifests[0]!)).toString()) as ImageIndex;
    expect(nested.manifests.map((d) => [d.digest, d.platform])).toEqual([
      [linux.manifestDigest, { os: 'linux', architecture: 'amd64' }],
      [wasm1.manifestDigest, { os: 'wasi', architecture: 'wasm' }],
    ]);
    expect(nested.manifests[0]?.annotations).toBeUndefined();

    // Both platforms resolve; Wasm first by default.
    expect((await resolveImage(src, 'app', undefined)).manifestDescriptor.digest).toBe(wasm1.manifestDigest);
    expect((await resolveImage(src, 'app', { os: 'linux', architecture: 'amd64' })).manifestDescriptor.digest).toBe(linux.manifestDigest);

    // Same platform again (as wasip1, an equivalent WASI os): replaced in place.
    const wasm2 = await buildWasmImage({ wasm: join(dir, 'comp.wasm'), artifact: true, format: 'oci', output: out, tag: 'app', addTo: true });
    index = await src.index();
    nested = JSON.parse((await src.readBlob(index.manifests[0]!)).toString()) as ImageIndex;
    expect(nested.manifests.map((d) => d.digest)).toEqual([linux.manifestDigest, wasm2.manifestDigest]);
    expect(index.manifests[1]?.digest).toBe(other.manifestDigest);
  });

  it('needs an existing image under the tag', async () => {
    const out = join(dir, 'layout');
    await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: out, tag: 'a' });
    const p = buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: out, tag: 'b', addTo: true });
    await expect(p).rejects.toThrow(NotFoundError);
    await expect(p).rejects.toThrow('image tag b not found');
  });

  it('without addTo replaces the tag and keeps the others', async () => {
    const out = join(dir, 'layout');
    const a = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: out, tag: 'a' });
    await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: out, tag: 'b', args: ['x'] });
    const b2 = await buildWasmImage({ wasm: join(dir, 'comp.wasm'), format: 'oci', output: out, tag: 'b' });
    const index = await openOciLayout(out).index();
    expect(index.manifests.map((d) => [d.annotations?.['org.opencontainers.image.ref.name'], d.digest])).toEqual([
      ['a', a.manifestDigest],
      ['b', b2.manifestDigest],
    ]);
  });
});

describe('reproducibility', () => {
  it('gives the same digests for the same input', async () => {
    const build = (out: string, format: 'oci' | 'oci-archive' | 'docker-archive') =>
      buildWasmImage({ wasm: join(dir, 'app.wasm'), args: ['a'], format, output: join(dir, out) });
    for (const format of ['oci', 'oci-archive', 'docker-archive'] as const) {
      const a = await build(`${format}-1`, format);
      const b = await build(`${format}-2`, format);
      expect(b).toEqual(a);
      if (format !== 'oci') expect((await readFile(join(dir, `${format}-1`))).equals(await readFile(join(dir, `${format}-2`)))).toBe(true);
    }
  });

  it('takes created from SOURCE_DATE_EPOCH', async () => {
    vi.stubEnv('SOURCE_DATE_EPOCH', '1700000000');
    const out = join(dir, 'layout');
    const a = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: out });
    const img = await resolveImage(openOciLayout(out), undefined, undefined);
    expect(img.config.created).toBe('2023-11-14T22:13:20Z');
    vi.stubEnv('SOURCE_DATE_EPOCH', 'soon');
    await expect(buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: join(dir, 'l2') })).rejects.toThrow(/SOURCE_DATE_EPOCH/);
    vi.stubEnv('SOURCE_DATE_EPOCH', '');
    const c = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: join(dir, 'l3'), created: '2023-11-14T22:13:20Z' });
    expect(c.configDigest).toBe(a.configDigest);
  });

  it('docker-archive digests survive a read back', async () => {
    const out = join(dir, 'img.tar');
    const r = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'docker-archive', output: out });
    const src = await openImageSource({ transport: 'docker-archive', path: out }, join(dir, 'tmp'));
    try {
      const img = await resolveImage(src, undefined, undefined);
      expect(img.manifestDescriptor.digest).toBe(r.manifestDigest);
      expect(img.manifest.config.digest).toBe(r.configDigest);
    } finally {
      await src.close();
    }
  });
});
