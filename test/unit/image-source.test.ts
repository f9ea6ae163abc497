import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DigestMismatchError, ImageError, NotFoundError, UsageError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { buildImage, buildWasmImage } from '../../src/oci/image-build.js';
import { openImageSource, openOciLayout, parseImageRef, resolveImage, type ImageSource } from '../../src/oci/image-source.js';
import { hostPlatform } from '../../src/oci/platform.js';
import type { Descriptor, ImageIndex } from '../../src/oci/types.js';

const MODULE = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
const REF = 'org.opencontainers.image.ref.name';

interface Member {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device';
  data?: Buffer | string;
  linkname?: string;
}

async function makeTar(members: Member[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const m of members) {
    const type = m.type ?? 'file';
    await new Promise<void>((res, rej) => {
      const cb = (err?: Error | null): void => (err ? rej(err) : res());
      const header = { name: m.name, type, linkname: m.linkname, devmajor: 1, devminor: 3 };
      if (type === 'file') pack.entry(header, Buffer.from(m.data ?? ''), cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

let dir: string;
const sources: ImageSource[] = [];
async function open(ref: string): Promise<ImageSource> {
  const s = await openImageSource(parseImageRef(ref), join(dir, 'tmp'));
  sources.push(s);
  return s;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tugboat-src-'));
  await writeFile(join(dir, 'app.wasm'), MODULE);
});
afterEach(async () => {
  for (const s of sources.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function putBlob(layout: string, value: unknown, mediaType: string): Promise<Descriptor> {
  const data = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
  const digest = sha256Digest(data);
  await writeFile(join(layout, 'blobs/sha256', digest.slice(7)), data);
  return { mediaType, digest, size: data.length };
}

async function setIndex(layout: string, manifests: Descriptor[]): Promise<void> {
  await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
}

describe('parseImageRef', () => {
  it('parses the three transports with and without tags', () => {
    expect(parseImageRef('oci:/var/img')).toEqual({ transport: 'oci', path: '/var/img' });
    expect(parseImageRef('oci:/var/img:v1')).toEqual({ transport: 'oci', path: '/var/img', tag: 'v1' });
    expect(parseImageRef('oci-archive:./a.tar:latest')).toEqual({ transport: 'oci-archive', path: './a.tar', tag: 'latest' });
    expect(parseImageRef('docker-archive:a.tar')).toEqual({ transport: 'docker-archive', path: 'a.tar' });
    // The first colon ends the path, so a full reference with a registry port can follow.
    expect(parseImageRef('docker-archive:a.tar:example.com:5000/ns/app:1.0')).toEqual({
      transport: 'docker-archive',
      path: 'a.tar',
      tag: 'example.com:5000/ns/app:1.0',
    });
  });

  it.each(['docker://alpine', 'alpine:latest', 'oci:', 'oci::tag', 'oci:/x:', 'OCI:/x'])('rejects %j', (ref) => {
    expect(() => parseImageRef(ref)).toThrow(UsageError);
  });
});

describe('round trip build → open', () => {
  it.each(['oci', 'oci-archive', 'docker-archive'] as const)('%s', async (format) => {
    const out = join(dir, format === 'oci' ? 'layout' : 'img.tar');
    const r = await buildWasmImage({ wasm: join(dir, 'app.wasm'), args: ['a'], format, output: out, tag: format === 'docker-archive' ? 'example.com/app:1' : '1' });
    const src = await open(`${format}:${out}`);
    expect(src.description).toBe(`${format}:${out}`);
    const img = await resolveImage(src, '1', undefined);
    expect(img.manifestDescriptor.digest).toBe(r.manifestDigest);
    expect(img.manifest.config.digest).toBe(r.configDigest);
    expect(img.platform).toEqual(r.platform);
    expect(img.config.config?.Entrypoint).toEqual(['/app.wasm']);
    // Layers stream through verification.
    const chunks: Buffer[] = [];
    for await (const c of await src.openBlob(img.manifest.layers[0]!)) chunks.push(c as Buffer);
    expect(sha256Digest(Buffer.concat(chunks))).toBe(img.manifest.layers[0]?.digest);
  });

  it('reads a gzipped docker save', async () => {
    const out = join(dir, 'img.tar');
    const r = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'docker-archive', output: out });
    await writeFile(join(dir, 'img.tar.gz'), gzipSync(await readFile(out)));
    const img = await resolveImage(await open(`docker-archive:${join(dir, 'img.tar.gz')}`), undefined, undefined);
    expect(img.manifestDescriptor.digest).toBe(r.manifestDigest);
  });

  it('removes the temp dir on close', async () => {
    const out = join(dir, 'img.tar');
    await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci-archive', output: out });
    const src = (await openImageSource({ transport: 'oci-archive', path: out }, join(dir, 'tmp'))) as ImageSource & { dir: string };
    expect((await readdir(src.dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    // Unpacked where it was told, under a name that says whose it is (swept when its owner is killed).
    expect(src.dir).toMatch(new RegExp(`^${join(dir, 'tmp')}/archive-${process.pid}-\\d+-[0-9a-f]{8}$`));
    await src.close();
    await expect(readdir(src.dir)).rejects.toThrow(/ENOENT/);
  });
});

describe('tags', () => {
  let layout: string;
  beforeEach(async () => {
    layout = join(dir, 'layout');
    for (const tag of ['a', 'b']) await buildWasmImage({ wasm: join(dir, 'app.wasm'), args: [tag], format: 'oci', output: layout, tag });
  });

  it('resolves each tag', async () => {
    const src = openOciLayout(layout);
    expect((await resolveImage(src, 'a', undefined)).config.config?.Cmd).toEqual(['a']);
    expect((await resolveImage(src, 'b', undefined)).config.config?.Cmd).toEqual(['b']);
  });

  it('lists available tags for an unknown one', async () => {
    const p = resolveImage(openOciLayout(layout), 'c', undefined);
    await expect(p).rejects.toThrow(NotFoundError);
    await expect(p).rejects.toThrow(`image tag c not found in oci:${layout}; available tags: a, b`);
  });

  it('needs a tag when there are several images and no latest', async () => {
    const p = resolveImage(openOciLayout(layout), undefined, undefined);
    await expect(p).rejects.toThrow(NotFoundError);
    await expect(p).rejects.toThrow('none is tagged latest; name one of: a, b');
    await buildWasmImage({ wasm: join(dir, 'app.wasm'), args: ['l'], format: 'oci', output: layout, tag: 'latest' });
    expect((await resolveImage(openOciLayout(layout), undefined, undefined)).config.config?.Cmd).toEqual(['l']);
  });

  it('matches the tag part of full names, and refuses ambiguity', async () => {
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as ImageIndex;
    index.manifests[0]!.annotations = { [REF]: 'example.com/x:1.0' };
    index.manifests[1]!.annotations = { [REF]: 'example.com/y:1.0' };
    await writeFile(join(layout, 'index.json'), JSON.stringify(index));
    const src = openOciLayout(layout);
    expect((await resolveImage(src, 'example.com/y:1.0', undefined)).config.config?.Cmd).toEqual(['b']);
    await expect(resolveImage(src, '1.0', undefined)).rejects.toThrow(UsageError);
    await expect(resolveImage(src, '1.0', undefined)).rejects.toThrow('image tag 1.0 is ambiguous');
  });
});

describe('indexes', () => {
  let layout: string;
  let wasm: Awaited<ReturnType<typeof buildWasmImage>>;
  let linux: Awaited<ReturnType<typeof buildImage>>;
  beforeEach(async () => {
    layout = join(dir, 'layout');
    wasm = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: layout, tag: 'w' });
    linux = await buildImage({
      files: [{ hostPath: join(dir, 'app.wasm'), containerPath: '/bin/app' }],
      platform: hostPlatform(),
      config: { Cmd: ['/bin/app'] },
      format: 'oci',
      output: layout,
      tag: 'l',
    });
  });

  const m = (digest: string, size: number, platform?: object): Descriptor => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest,
    size,
    ...(platform ? { platform: platform as Descriptor['platform'] } : {}),
  });

  it('walks nested indexes and selects the platform', async () => {
    const idx = await openOciLayout(layout).index();
    const [w, l] = idx.manifests as [Descriptor, Descriptor];
    const inner = await putBlob(layout, { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [m(l.digest, l.size, l.platform), m(w.digest, w.size, w.platform)] }, 'application/vnd.oci.image.index.v1+json');
    const attest = await putBlob(layout, { schemaVersion: 2, config: m(l.digest, l.size), layers: [] }, 'application/vnd.oci.image.manifest.v1+json');
    const outer = await putBlob(
      layout,
      {
        schemaVersion: 2,
        manifests: [
          { ...attest, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
          inner,
        ],
      },
      'application/vnd.oci.image.index.v1+json',
    );
    await setIndex(layout, [{ ...outer, annotations: { [REF]: 'multi' } }]);
    const src = openOciLayout(layout);
    expect((await resolveImage(src, 'multi', undefined)).manifestDescriptor.digest).toBe(wasm.manifestDigest);
    expect((await resolveImage(src, undefined, hostPlatform())).manifestDescriptor.digest).toBe(linux.manifestDigest);
    const p = resolveImage(src, 'multi', { os: 'linux', architecture: 's390x' });
    await expect(p).rejects.toThrow(NotFoundError);
    await expect(p).rejects.toThrow(`available: ${hostPlatform().os}/${hostPlatform().architecture}, wasi/wasm`);
  });

  it('reads platforms from configs when descriptors lack them', async () => {
    const idx = await openOciLayout(layout).index();
    await setIndex(layout, idx.manifests.map((d) => m(d.digest, d.size)));
    const src = openOciLayout(layout);
    expect((await resolveImage(src, undefined, undefined)).manifestDescriptor.digest).toBe(wasm.manifestDigest);
    expect((await resolveImage(src, undefined, hostPlatform())).manifestDescriptor.digest).toBe(linux.manifestDigest);
  });

  it('refuses an explicit platform the single image does not have', async () => {
    const p = resolveImage(openOciLayout(layout), 'w', { os: 'linux', architecture: 's390x' });
    await expect(p).rejects.toThrow(NotFoundError);
    await expect(p).rejects.toThrow('no manifest for linux/s390x');
  });

  it('bounds index nesting', async () => {
    // An index that lists itself can only be written by hand: fake it with a chain deeper than the limit.
    let d = await putBlob(layout, { schemaVersion: 2, manifests: [m(wasm.manifestDigest, (await openOciLayout(layout).index()).manifests[0]!.size)] }, 'application/vnd.oci.image.index.v1+json');
    for (let i = 0; i < 10; i++) d = await putBlob(layout, { schemaVersion: 2, manifests: [{ ...d, platform: { os: 'wasi', architecture: 'wasm' } }] }, 'application/vnd.oci.image.index.v1+json');
    await setIndex(layout, [d]);
    await expect(resolveImage(openOciLayout(layout), undefined, undefined)).rejects.toThrow(/nested more than 8 deep/);
  });
});

describe('bad layouts', () => {
  let layout: string;
  let r: Awaited<ReturnType<typeof buildWasmImage>>;
  beforeEach(async () => {
    layout = join(dir, 'layout');
    r = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci', output: layout });
  });

  it('detects a corrupt config blob', async () => {
    await writeFile(join(layout, 'blobs/sha256', r.configDigest.slice(7)), '{"os":"linux","architecture":"amd64","config":{"Cmd":["/evil"]}}');
    const p = resolveImage(openOciLayout(layout), undefined, undefined);
    await expect(p).rejects.toThrow(DigestMismatchError);
    await expect(p).rejects.toThrow(`oci:${layout}: blob ${r.configDigest}: size mismatch`);
  });

  it('reads a small blob whole, never past what its descriptor says, and only from a regular file', async () => {
    const src = openOciLayout(layout);
    const img = await resolveImage(src, undefined, undefined);
    const path = join(layout, 'blobs/sha256', r.configDigest.slice(7));
    const config = await readFile(path);
    // A hostile layout's blob that never ends: one byte past the descriptor is enough to refuse it.
    await writeFile(path, Buffer.concat([config, Buffer.alloc(64 * 1024 * 1024)]));
    let err = await src.readBlob(img.manifest.config).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toBe(`oci:${layout}: blob ${r.configDigest}: size mismatch, expected ${config.length} bytes, got more`);
    await rm(path);
    await mkdir(path);
    err = await src.readBlob(img.manifest.config).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe(`oci:${layout}: blob ${r.configDigest}: not a regular file`);
    await rm(path, { recursive: true });
    execFileSync('mkfifo', [path]);
    // A FIFO must not hang the read (nobody writes to it).
    err = await src.readBlob(img.manifest.config).catch((e: unknown) => e as Error);
    expect(err.message).toBe(`oci:${layout}: blob ${r.configDigest}: not a regular file`);
  });

  it('detects a same-size corrupt layer while streaming', async () => {
    const src = openOciLayout(layout);
    const img = await resolveImage(src, undefined, undefined);
    const layer = img.manifest.layers[0]!;
    const path = join(layout, 'blobs/sha256', layer.digest.slice(7));
    const data = await readFile(path);
    data.writeUInt8((data.at(-1) ?? 0) ^ 0xff, data.length - 1);
    await writeFile(path, data);
    const consume = async (): Promise<void> => {
      for await (const _ of await src.openBlob(layer)) void _;
    };
    await expect(consume()).rejects.toThrow(DigestMismatchError);
    await expect(consume()).rejects.toThrow(`blob ${layer.digest}: digest mismatch, expected ${layer.digest}, got sha256:`);
  });

  it('reports a missing blob', async () => {
    await rm(join(layout, 'blobs/sha256', r.manifestDigest.slice(7)));
    const p = resolveImage(openOciLayout(layout), undefined, undefined);
    await expect(p).rejects.toThrow(NotFoundError);
    await expect(p).rejects.toThrow(`blob ${r.manifestDigest} not found`);
  });

  it('reports malformed index.json', async () => {
    await writeFile(join(layout, 'index.json'), '{"schemaVersion":2,"manifests":[');
    let p = resolveImage(openOciLayout(layout), undefined, undefined);
    await expect(p).rejects.toThrow(ImageError);
    await expect(p).rejects.toThrow(`oci:${layout}: index.json: invalid JSON`);
    await setIndex(layout, [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:../../etc/passwd', size: 1 }]);
    p = resolveImage(openOciLayout(layout), undefined, undefined);
    await expect(p).rejects.toThrow(ImageError);
    await expect(p).rejects.toThrow('index.json: manifests[0]: invalid digest');
    await writeFile(join(layout, 'index.json'), '{"schemaVersion":1,"manifests":[]}');
    await expect(resolveImage(openOciLayout(layout), undefined, undefined)).rejects.toThrow('index.json: schemaVersion must be 2');
  });

  it('never quotes the content of a file it cannot parse, only its name and the position', async () => {
    // index.json as a link to a secret file: refused as leaving the layout.
    const secret = join(layout, '..', 'secret-shadow');
    await writeFile(secret, 'root:$y$j9T$SECRETHASH:19000:0:99999:7:::\n');
    await rm(join(layout, 'index.json'));
    await symlink(secret, join(layout, 'index.json'));
    let err = await resolveImage(openOciLayout(layout), undefined, undefined).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe(`oci:${layout}: index.json: refusing a link that leads outside ${layout}`);
    // The same content inside the layout: named by position only.
    await rm(join(layout, 'index.json'));
    await writeFile(join(layout, 'index.json'), '{"schemaVersion":2,\n  root:$y$j9T$SECRETHASH:19000');
    err = await resolveImage(openOciLayout(layout), undefined, undefined).catch((e: unknown) => e as Error);
    expect(err.message).toBe(`oci:${layout}: index.json: invalid JSON at line 2, column 3`);
    expect(err.message).not.toContain('SECRET');
    await rm(secret);
  });

  it('refuses blobs that are links out of the layout, and keeps links inside it working', async () => {
    const hex = r.manifestDigest.slice(7);
    const blob = join(layout, 'blobs/sha256', hex);
    const copy = join(layout, 'manifest-copy');
    await rename(blob, copy);
    await symlink('../../manifest-copy', blob);
    expect((await resolveImage(openOciLayout(layout), undefined, undefined)).manifestDescriptor.digest).toBe(r.manifestDigest);
    const outside = join(layout, '..', `outside-${hex}`);
    await rename(copy, outside);
    await rm(blob);
    await symlink(outside, blob);
    const err = await resolveImage(openOciLayout(layout), undefined, undefined).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe(`oci:${layout}: blob ${r.manifestDigest}: refusing a link that leads outside ${layout}`);
    await rm(outside);
  });

  it('reports a malformed manifest, naming the blob', async () => {
    const bad = await putBlob(layout, { schemaVersion: 2, config: { mediaType: 'x', digest: r.configDigest, size: 1 }, layers: 'none' }, 'application/vnd.oci.image.manifest.v1+json');
    await setIndex(layout, [bad]);
    const p = resolveImage(openOciLayout(layout), undefined, undefined);
    await expect(p).rejects.toThrow(ImageError);
    await expect(p).rejects.toThrow(`manifest ${bad.digest}: layers must be an array`);
  });

  it('reports a config without os', async () => {
    const cfg = await putBlob(layout, { architecture: 'amd64' }, 'application/vnd.oci.image.config.v1+json');
    const man = await putBlob(layout, { schemaVersion: 2, config: cfg, layers: [] }, 'application/vnd.oci.image.manifest.v1+json');
    await setIndex(layout, [man]);
    await expect(resolveImage(openOciLayout(layout), undefined, undefined)).rejects.toThrow(`config ${cfg.digest}: os missing`);
  });

  it('refuses a directory that is not a layout, and a missing one', async () => {
    await rm(join(layout, 'oci-layout'));
    await expect(openOciLayout(layout).index()).rejects.toThrow(ImageError);
    await expect(openOciLayout(join(dir, 'nope')).index()).rejects.toThrow(NotFoundError);
  });

  it('refuses to read a huge blob into memory', async () => {
    const p = openOciLayout(layout).readBlob({ mediaType: 'x', digest: r.configDigest, size: 65 * 1024 * 1024 });
    await expect(p).rejects.toThrow(ImageError);
    await expect(p).rejects.toThrow('over the 67108864-byte limit');
  });
});

describe('hostile archives', () => {
  const attempt = async (members: Member[], transport = 'oci-archive'): Promise<unknown> => {
    const file = join(dir, 'evil.tar');
    await writeFile(file, await makeTar(members));
    return open(`${transport}:${file}`).then(
      () => undefined,
      (e: unknown) => e,
    );
  };

  it.each<[string, Member[], string]>([
    ['a ../ member', [{ name: '../evil', data: 'x' }], 'refusing archive member "../evil": path contains ..'],
    ['a nested ../ member', [{ name: 'blobs/../../evil', data: 'x' }], 'path contains ..'],
    ['an absolute member', [{ name: '/tmp/evil', data: 'x' }], 'refusing archive member "/tmp/evil": absolute path'],
    ['a symlink out of the archive', [{ name: 'oci-layout', type: 'symlink', linkname: '/etc/passwd' }], 'is outside the archive'],
    ['a relative symlink out', [{ name: 'a/b', type: 'symlink', linkname: '../../x' }], 'is outside the archive'],
    ['a device node', [{ name: 'dev', type: 'character-device' }], 'character-device entries are not allowed'],
    ['a duplicate member', [{ name: 'f', data: '1' }, { name: 'f', data: '2' }], 'duplicate member'],
    ['a file under a file', [{ name: 'f', data: '1' }, { name: 'f/g', data: '2' }], 'parent is a file'],
    ['a symlink to a directory', [{ name: 'd/', type: 'directory' }, { name: 'l', type: 'symlink', linkname: 'd' }], 'link does not point to a regular file'],
  ])('rejects %s', async (_what, members, message) => {
    const err = await attempt(members);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as Error).message).toContain(message);
    // Nothing escaped, and the refused archive's temp dir is gone.
    expect(await readdir(dir)).toEqual(['app.wasm', 'evil.tar', 'tmp']);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('rejects a file that is not a tar', async () => {
    await writeFile(join(dir, 'junk.tar'), 'this is not a tar archive at all'.repeat(40));
    const err = await open(`oci-archive:${join(dir, 'junk.tar')}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
  });

  it('rejects an archive with neither layout nor manifest.json', async () => {
    const err = await attempt([{ name: 'hello.txt', data: 'hi' }]);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as Error).message).toContain('neither an OCI image layout');
  });

  it('reports a missing archive', async () => {
    await expect(open(`docker-archive:${join(dir, 'nope.tar')}`)).rejects.toThrow(NotFoundError);
  });
});

describe('docker legacy archives', () => {
  async function legacy(opts: { corruptDiffId?: boolean; gzipLayer?: boolean; renameConfig?: boolean } = {}): Promise<{ file: string; layer: Buffer; configDigest: string }> {
    const layer = await makeTar([{ name: 'hello.txt', data: 'hello' }]);
    const stored = opts.gzipLayer ? gzipSync(layer) : layer;
    const diffId = opts.corruptDiffId ? sha256Digest('other') : sha256Digest(layer);
    const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/hello'] }, rootfs: { type: 'layers', diff_ids: [diffId, diffId] } });
    const config2 = JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] } });
    const hex = sha256Digest(config).slice(7);
    const configName = opts.renameConfig ? `${'0'.repeat(64)}.json` : `${hex}.json`;
    const manifest = [
      { Config: configName, RepoTags: ['example.com/a:latest', 'example.com/a:v2'], Layers: ['l1/layer.tar', 'l2/layer.tar'] },
      { Config: `${sha256Digest(config2).slice(7)}.json`, RepoTags: ['example.com/b:1'], Layers: ['l1/layer.tar'] },
    ];
    const file = join(dir, 'legacy.tar');
    await writeFile(
      file,
      await makeTar([
        { name: configName, data: config },
        { name: `${sha256Digest(config2).slice(7)}.json`, data: config2 },
        { name: 'l1/', type: 'directory' },
        { name: 'l1/layer.tar', data: stored },
        { name: 'l1/VERSION', data: '1.0' },
        { name: 'l2/', type: 'directory' },
        // docker save links repeated layers to the first copy
        { name: 'l2/layer.tar', type: 'symlink', linkname: '../l1/layer.tar' },
        { name: 'manifest.json', data: JSON.stringify(manifest) },
        { name: 'repositories', data: '{}' },
      ]),
    );
    return { file, layer: stored, configDigest: sha256Digest(config) };
  }

  it('synthesises an index and manifests', async () => {
    const { file, layer, configDigest } = await legacy();
    const src = await open(`docker-archive:${file}`);
    const index = await src.index();
    expect(index.manifests.map((d) => [d.annotations?.[REF], d.platform])).toEqual([
      ['example.com/a:latest', { os: 'linux', architecture: 'amd64' }],
      ['example.com/a:v2', { os: 'linux', architecture: 'amd64' }],
      ['example.com/b:1', { os: 'linux', architecture: 'arm64' }],
    ]);
    const a = await resolveImage(src, undefined, undefined);
    expect(a.manifest.config.digest).toBe(configDigest);
    expect(a.manifest.layers).toEqual([
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(layer), size: layer.length },
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(layer), size: layer.length },
    ]);
    expect((await src.readBlob(a.manifest.layers[1]!)).equals(layer)).toBe(true);
    expect((await resolveImage(src, 'v2', undefined)).manifestDescriptor.digest).toBe(a.manifestDescriptor.digest);
    expect((await resolveImage(src, 'example.com/b:1', undefined)).platform.architecture).toBe('arm64');
    expect((await resolveImage(src, 'example.com/a', undefined)).manifestDescriptor.digest).toBe(a.manifestDescriptor.digest);
    await expect(resolveImage(src, 'example.com/c', undefined)).rejects.toThrow('available tags: example.com/a:latest, example.com/a:v2, example.com/b:1');
  });

  it('checks layers against rootfs.diff_ids', async () => {
    const { file, layer } = await legacy({ corruptDiffId: true });
    const err = await open(`docker-archive:${file}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as Error).message).toContain(`layer l1/layer.tar: diff_id mismatch, expected ${sha256Digest('other')}, got ${sha256Digest(layer)}`);
  });

  it('accepts gzip layers with the gzip media type', async () => {
    const { file, layer } = await legacy({ gzipLayer: true, corruptDiffId: true });
    const img = await resolveImage(await open(`docker-archive:${file}`), 'latest', undefined);
    expect(img.manifest.layers[0]).toEqual({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256Digest(layer), size: layer.length });
  });

  it('detects a config whose name is not its digest', async () => {
    const { file } = await legacy({ renameConfig: true });
    await expect(open(`docker-archive:${file}`)).rejects.toThrow(DigestMismatchError);
  });

  it('rejects a malformed manifest.json', async () => {
    const file = join(dir, 'bad.tar');
    await writeFile(file, await makeTar([{ name: 'manifest.json', data: '{"Config": 1}' }]));
    await expect(open(`docker-archive:${file}`)).rejects.toThrow('manifest.json: must be a JSON array');
    await writeFile(file, await makeTar([{ name: 'manifest.json', data: '[{"Config":"../../etc/passwd","Layers":[]}]' }]));
    await expect(open(`docker-archive:${file}`)).rejects.toThrow(/refusing archive member "..\/..\/etc\/passwd"/);
    await writeFile(file, await makeTar([{ name: 'manifest.json', data: '[{"Config":"c.json","Layers":[]}]' }]));
    await expect(open(`docker-archive:${file}`)).rejects.toThrow('"c.json" is missing from the archive');
  });

  it('prefers the OCI layout in a Docker 25+ save', async () => {
    const out = join(dir, 'img.tar');
    const r = await buildWasmImage({ wasm: join(dir, 'app.wasm'), format: 'oci-archive', output: out });
    const extract = tar.extract();
    const members: Member[] = [];
    const { Readable } = await import('node:stream');
    Readable.from([await readFile(out)]).pipe(extract as unknown as NodeJS.WritableStream);
    for await (const e of extract) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      members.push({ name: e.header.name, type: e.header.type as Member['type'], data: Buffer.concat(chunks) });
    }
    members.push({ name: 'manifest.json', data: '[{"Config":"missing.json","Layers":[]}]' });
    await writeFile(join(dir, 'both.tar'), await makeTar(members));
    const img = await resolveImage(await open(`docker-archive:${join(dir, 'both.tar')}`), undefined, undefined);
    expect(img.manifestDescriptor.digest).toBe(r.manifestDigest);
  });
});
