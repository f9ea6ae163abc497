import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImageError, LayerError } from '../../src/errors.js';
import { sniffCompression } from '../../src/oci/compression.js';
import { applyLayer, DEFAULT_LAYER_LIMITS, layerDiffId } from '../../src/oci/layers.js';
import type { ApplyLayerOptions } from '../../src/oci/layers.js';
import { buildTar, dir, file, gzip, hardlink, rawTar, streamOf, symlink, zstd } from './helpers/tar.js';
import type { TarEntry } from './helpers/tar.js';

// Layout: <work>/root is the target; <work>/canary is a sibling that hostile
// layers try to reach and that must never change.
let work: string;
let target: string;
let canary: string;
let outsideBefore: string[];

beforeEach(async () => {
  work = await fsp.mkdtemp(path.join(tmpdir(), 'tugboat-layers-'));
  target = path.join(work, 'root');
  canary = path.join(work, 'canary');
  await fsp.mkdir(target);
  await fsp.mkdir(canary);
  await fsp.writeFile(path.join(canary, 'file'), 'canary\n');
  outsideBefore = await snapshotOutside();
});

afterEach(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** Everything under <work> except the target: names, kinds, modes, sizes, contents, mtimes. */
async function snapshotOutside(): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (dirPath: string): Promise<void> => {
    for (const name of (await fsp.readdir(dirPath)).sort()) {
      const full = path.join(dirPath, name);
      if (full === target) continue;
      const st = await fsp.lstat(full);
      const content = st.isFile() ? await fsp.readFile(full, 'utf8') : st.isSymbolicLink() ? await fsp.readlink(full) : '';
      lines.push(`${full} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${content}`);
      if (st.isDirectory()) await walk(full);
    }
  };
  await walk(work);
  return lines;
}

async function expectOutsideUntouched(): Promise<void> {
  expect(await snapshotOutside()).toEqual(outsideBefore);
}

async function apply(entries: readonly TarEntry[], opts?: ApplyLayerOptions) {
  return applyLayer(target, streamOf(await buildTar(entries)), opts);
}

async function expectLayerError(result: Promise<unknown>, entry: string, reason: string | RegExp): Promise<LayerError> {
  const err = await result.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LayerError);
  const layerError = err as LayerError;
  expect(layerError.entry).toBe(entry);
  expect(layerError.message).toContain(JSON.stringify(entry));
  expect(layerError.message).toMatch(reason);
  return layerError;
}

const inRoot = (rel: string): string => path.join(target, rel);
const read = (rel: string): Promise<string> => fsp.readFile(inRoot(rel), 'utf8');
const lstat = (rel: string) => fsp.lstat(inRoot(rel));
/** A name that cannot already exist on the host, for "did it land on /?" checks. */
const uniqueName = (): string => `tugboat-layer-test-${randomBytes(6).toString('hex')}`;

describe('applyLayer: hostile archives', () => {
  it('rejects an absolute name', async () => {
    const name = `/tmp/${uniqueName()}`;
    await expectLayerError(apply([file(name, 'x')]), name, 'absolute path');
    expect(existsSync(name)).toBe(false);
    await expectOutsideUntouched();
  });

  it('rejects a ../ escape', async () => {
    await expectLayerError(apply([file('../canary/file', 'pwned')]), '../canary/file', 'path escapes the root');
    await expectOutsideUntouched();
  });

  it('rejects a name that climbs after normalization (a/../../x)', async () => {
    await expectLayerError(apply([file('a/../../canary/x', 'pwned')]), 'a/../../canary/x', 'path escapes the root');
    await expectOutsideUntouched();
  });

  it('rejects a name containing NUL (via a pax path)', async () => {
    const name = `${'n'.repeat(120)}\0${'m'.repeat(20)}`;
    await expectLayerError(apply([file(name, 'x')]), name, 'NUL');
    await expectOutsideUntouched();
  });

  it('scopes an absolute symlink to the root: dirlink -> / then dirlink/x lands in <target>/x', async () => {
    const name = uniqueName();
    await apply([symlink('dirlink', '/'), file(`dirlink/${name}`, 'inside')]);
    expect(await read(name)).toBe('inside');
    expect(existsSync(`/${name}`)).toBe(false);
    expect(await fsp.readlink(inRoot('dirlink'))).toBe('/');
    await expectOutsideUntouched();
  });

  it('rejects a file through a symlink climbing out of the root (evil -> ../../..)', async () => {
    const name = uniqueName();
    await expectLayerError(
      apply([symlink('evil', '../../..'), file(`evil/${name}`, 'pwned')]),
      `evil/${name}`,
      'parent path escapes the root through symlink evil -> ../../..',
    );
    expect(existsSync(`/${name}`)).toBe(false);
    await expectOutsideUntouched();
  });

  it('rejects a file through a symlink to a sibling of the root (evil -> ../canary)', async () => {
    await expectLayerError(apply([symlink('evil', '../canary'), file('evil/file', 'pwned')]), 'evil/file', 'escapes the root');
    await expectOutsideUntouched();
  });

  it('rejects a climbing symlink hidden behind an absolute one', async () => {
    await expectLayerError(
      apply([dir('a/'), symlink('a/up', '../..'), symlink('jump', '/a/up'), file('jump/canary/file', 'pwned')]),
      'jump/canary/file',
      'escapes the root',
    );
    await expectOutsideUntouched();
  });

  it('rejects a hardlink to /etc/passwd', async () => {
    await expectLayerError(apply([hardlink('passwd', '/etc/passwd')]), 'passwd', 'hardlink target "/etc/passwd" is outside the root');
    expect(existsSync(inRoot('passwd'))).toBe(false);
    await expectOutsideUntouched();
  });

  it('rejects a hardlink to ../outside', async () => {
    await expectLayerError(apply([hardlink('h', '../canary/file')]), 'h', 'outside the root');
    await expectOutsideUntouched();
    expect((await fsp.stat(path.join(canary, 'file'))).nlink).toBe(1);
  });

  it('rejects a hardlink whose target path leaves through a symlink', async () => {
    await expectLayerError(apply([symlink('out', '../canary'), hardlink('h', 'out/file')]), 'h', 'escapes the root');
    expect((await fsp.stat(path.join(canary, 'file'))).nlink).toBe(1);
    await expectOutsideUntouched();
  });

  it('rejects a hardlink to a directory', async () => {
    await expectLayerError(apply([dir('d/'), hardlink('h', 'd')]), 'h', 'is a directory');
  });

  it('rejects a hardlink to a missing target', async () => {
    await expectLayerError(apply([hardlink('h', 'nope')]), 'h', 'is missing');
  });

  it('rejects a device node unless allowed', async () => {
    const entry: TarEntry = { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 };
    await expectLayerError(apply([entry]), 'dev/sda', 'device node');
    expect(existsSync(inRoot('dev/sda'))).toBe(false);
  });

  it('stops at the entry limit', async () => {
    const entries = [file('a', '1'), file('b', '2'), file('c', '3'), file('d', '4')];
    await expectLayerError(apply(entries, { limits: { maxEntries: 2 } }), 'c', 'layer has more than 2 entries (limit --layer-limits entries=2)');
    expect(existsSync(inRoot('c'))).toBe(false);
  });

  it('stops at the byte limit and destroys the input', async () => {
    const input = streamOf(await buildTar([file('small', 'x'.repeat(10)), file('big', 'y'.repeat(100_000))]));
    await expectLayerError(applyLayer(target, input, { limits: { maxBytes: 1000 } }), 'big', 'layer holds more than 1000 bytes (limit --layer-limits size=1000)');
    expect(input.destroyed).toBe(true);
    expect(input.readableEnded).toBe(false); // stopped early, not read to the end
    expect(existsSync(inRoot('big'))).toBe(false);
  });

  it('rejects a symlink loop (a -> b, b -> a, a/x)', async () => {
    await expectLayerError(apply([symlink('a', 'b'), symlink('b', 'a'), file('a/x', 'x')]), 'a/x', 'too many levels of symbolic links');
  });

  it('rejects a whiteout that resolves outside the root', async () => {
    await expectLayerError(apply([symlink('evil', '../canary'), file('evil/.wh.file')]), 'evil/.wh.file', 'escapes the root');
    await expectLayerError(apply([file('../canary/.wh.file')]), '../canary/.wh.file', 'path escapes the root');
    await expectOutsideUntouched();
  });

  it('replaces a symlink to a directory outside with a real directory, never writing through it', async () => {
    await fsp.symlink('../canary', inRoot('d'));
    await apply([dir('d/', { mode: 0o700 }), file('d/file', 'inside')]);
    expect((await lstat('d')).isDirectory()).toBe(true);
    expect(await read('d/file')).toBe('inside');
    await expectOutsideUntouched();
  });

  it('reports a truncated gzip layer as ImageError', async () => {
    const layer = gzip(await buildTar([file('a', 'x'.repeat(50_000))]));
    const input = streamOf(layer.subarray(0, Math.floor(layer.length / 2)));
    const err = await applyLayer(target, input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect(err).not.toBeInstanceOf(LayerError);
    expect((err as Error).message).toMatch(/^corrupt gzip layer: /);
    expect(input.destroyed).toBe(true);
  });

  it('reports a truncated plain tar as ImageError', async () => {
    const layer = await buildTar([file('a', 'x'.repeat(5000))]);
    const err = await applyLayer(target, streamOf(layer.subarray(0, 2048))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as Error).message).toMatch(/truncated layer tar/);
  });

  it('reports a corrupt zstd layer as ImageError', async () => {
    const layer = zstd(await buildTar([file('a', 'hello')]));
    layer.fill(0xff, 8, layer.length - 4);
    const err = await applyLayer(target, streamOf(layer)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as Error).message).toMatch(/^corrupt zstd layer: /);
  });

  it('reports garbage bytes as ImageError', async () => {
    const garbage = Buffer.alloc(4096, 'garbage! ');
    const err = await applyLayer(target, streamOf(garbage)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as Error).message).toMatch(/^corrupt layer tar: /);
    expect(await fsp.readdir(target)).toEqual([]);
  });

  it('rejects a missing target and destroys the input', async () => {
    const input = streamOf(await buildTar([file('a', 'a')]));
    await expect(applyLayer(path.join(work, 'missing'), input)).rejects.toThrow(/ENOENT/);
    expect(input.destroyed).toBe(true);
  });

  it('passes through an error of the input stream and rejects once', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('network down'));
      },
    });
    const err = await applyLayer(target, failing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ImageError);
    expect((err as Error).message).toBe('network down');
  });
});

describe('applyLayer: applying layers', () => {
  const sample = (): TarEntry[] => [dir('etc/'), file('etc/hostname', 'tugboat\n'), symlink('etc/alias', 'hostname')];

  async function expectSample(): Promise<void> {
    expect(await read('etc/hostname')).toBe('tugboat\n');
    expect(await fsp.readlink(inRoot('etc/alias'))).toBe('hostname');
  }

  it('applies a plain tar layer and reports stats', async () => {
    const stats = await apply(sample());
    await expectSample();
    expect(stats).toEqual({ entries: 3, bytes: 8, whiteouts: 0, diffId: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
  });

  it('applies a gzip layer', async () => {
    const layer = gzip(await buildTar(sample()));
    expect(sniffCompression(layer)).toBe('gzip');
    await applyLayer(target, streamOf(layer, 7));
    await expectSample();
  });

  it('applies a zstd layer', async () => {
    const layer = zstd(await buildTar(sample()));
    expect(sniffCompression(layer)).toBe('zstd');
    await applyLayer(target, streamOf(layer, 3));
    await expectSample();
  });

  it('streams a large file', async () => {
    const big = randomBytes(3 * 1024 * 1024 + 17);
    const stats = await applyLayer(target, streamOf(gzip(await buildTar([file('big.bin', big)])), 65536));
    expect((await fsp.readFile(inRoot('big.bin'))).equals(big)).toBe(true);
    expect(stats.bytes).toBe(big.length);
  });

  it('accepts an empty input as an empty layer', async () => {
    expect(await applyLayer(target, streamOf(Buffer.alloc(0)))).toEqual({ entries: 0, bytes: 0, whiteouts: 0, diffId: `sha256:${createHash('sha256').digest('hex')}` });
  });

  it('removes a file for a whiteout and never writes the whiteout', async () => {
    await apply([dir('etc/'), file('etc/a', 'a'), file('etc/b', 'b')]);
    const stats = await apply([file('etc/.wh.a')]);
    expect(existsSync(inRoot('etc/a'))).toBe(false);
    expect(existsSync(inRoot('etc/.wh.a'))).toBe(false);
    expect(await read('etc/b')).toBe('b');
    expect(stats.whiteouts).toBe(1);
  });

  it('removes a whole directory for a whiteout', async () => {
    await apply([dir('opt/app/'), file('opt/app/bin', 'x'), dir('opt/app/lib/'), file('opt/app/lib/l', 'y'), file('opt/keep', 'k')]);
    await apply([file('opt/.wh.app')]);
    expect(existsSync(inRoot('opt/app'))).toBe(false);
    expect(await read('opt/keep')).toBe('k');
  });

  it('lets a whiteout hide only lower entries, not ones from its own layer', async () => {
    await apply([file('lower', 'l')]);
    await apply([file('same', 's'), file('.wh.same'), file('.wh.lower')]);
    expect(await read('same')).toBe('s');
    expect(existsSync(inRoot('lower'))).toBe(false);
  });

  it('ignores a whiteout of something that does not exist', async () => {
    const stats = await apply([file('nowhere/.wh.thing'), file('.wh.other')]);
    expect(stats.whiteouts).toBe(2);
    expect(await fsp.readdir(target)).toEqual([]);
  });

  it('opaque directory hides lower children and keeps this layer\'s (marker before and after)', async () => {
    await apply([dir('d/'), file('d/lower', 'l'), dir('d/sub/'), file('d/sub/lower', 'l'), dir('e/'), file('e/lower', 'l')]);
    await apply([
      file('d/before', 'b'),
      file('d/sub/before', 'b'),
      file('d/.wh..wh..opq'),
      file('d/after', 'a'),
      file('e/.wh..wh..opq'),
      file('e/after', 'a'),
    ]);
    expect((await fsp.readdir(inRoot('d'))).sort()).toEqual(['after', 'before', 'sub']);
    expect(await fsp.readdir(inRoot('d/sub'))).toEqual(['before']);
    expect(await fsp.readdir(inRoot('e'))).toEqual(['after']);
  });

  it('replaces a file by a directory and a directory by a file', async () => {
    await apply([file('x', 'file'), dir('y/'), file('y/child', 'c')]);
    await apply([dir('x/'), file('x/inner', 'i'), file('y', 'now a file')]);
    expect(await read('x/inner')).toBe('i');
    expect((await lstat('y')).isFile()).toBe(true);
    expect(await read('y')).toBe('now a file');
  });

  it('replaces a symlink by a file without writing through the old link', async () => {
    await apply([symlink('link', '../canary/file'), symlink('abs', path.join(canary, 'file'))]);
    await apply([file('link', 'new'), file('abs', 'new')]);
    expect((await lstat('link')).isFile()).toBe(true);
    expect(await read('link')).toBe('new');
    expect(await read('abs')).toBe('new');
    await expectOutsideUntouched();
  });

  it('does not write through an existing hardlink when a file is replaced', async () => {
    await apply([file('a', 'original'), hardlink('b', 'a')]);
    await apply([file('b', 'changed')]);
    expect(await read('a')).toBe('original');
    expect(await read('b')).toBe('changed');
  });

  it('creates a hardlink inside the root', async () => {
    await apply([dir('bin/'), file('bin/busybox', 'bb', { mode: 0o755 }), hardlink('bin/sh', 'bin/busybox'), hardlink('sh', './bin//busybox')]);
    const [a, b, c] = await Promise.all([lstat('bin/busybox'), lstat('bin/sh'), lstat('sh')]);
    expect(b.ino).toBe(a.ino);
    expect(c.ino).toBe(a.ino);
    expect(a.nlink).toBe(3);
  });

  it('follows a usr-merge symlink inside the root (lib -> usr/lib, then lib/libc.so)', async () => {
    await apply([dir('usr/'), dir('usr/lib/'), symlink('lib', 'usr/lib'), symlink('lib64', '/usr/lib')]);
    await apply([file('lib/libc.so', 'libc'), file('lib64/ld.so', 'ld'), dir('lib/x/'), hardlink('lib/libc2.so', 'lib64/libc.so')]);
    expect(await read('usr/lib/libc.so')).toBe('libc');
    expect(await read('usr/lib/ld.so')).toBe('ld');
    expect((await lstat('usr/lib/x')).isDirectory()).toBe(true);
    expect((await lstat('usr/lib/libc2.so')).ino).toBe((await lstat('usr/lib/libc.so')).ino);
    expect((await lstat('lib')).isSymbolicLink()).toBe(true);
  });

  it('preserves modes and mtimes of files, directories and symlinks', async () => {
    const when = new Date('2001-02-03T04:05:06Z');
    const dirWhen = new Date('1999-12-31T23:59:59Z');
    await apply([
      dir('srv/', { mode: 0o750, mtime: dirWhen }),
      file('srv/tool', 'x', { mode: 0o4755, mtime: when }),
      file('srv/secret', 's', { mode: 0o600, mtime: when }),
      symlink('srv/link', 'tool', { mtime: when }),
      dir('srv/sticky/', { mode: 0o1777, mtime: dirWhen }),
    ]);
    const [srv, tool, secret, link, sticky] = await Promise.all(['srv', 'srv/tool', 'srv/secret', 'srv/link', 'srv/sticky'].map(lstat));
    expect(srv!.mode & 0o7777).toBe(0o750);
    expect(srv!.mtime.getTime()).toBe(dirWhen.getTime());
    expect(tool!.mode & 0o7777).toBe(0o4755);
    expect(tool!.mtime.getTime()).toBe(when.getTime());
    expect(secret!.mode & 0o7777).toBe(0o600);
    expect(link!.mtime.getTime()).toBe(when.getTime());
    expect(sticky!.mode & 0o7777).toBe(0o1777);
  });

  it('creates implicit parent directories 0755', async () => {
    const previous = process.umask(0o077);
    try {
      await apply([file('a/b/c', 'deep')]);
    } finally {
      process.umask(previous);
    }
    expect((await lstat('a')).mode & 0o7777).toBe(0o755);
    expect((await lstat('a/b')).mode & 0o7777).toBe(0o755);
  });

  it('chowns entries when preserving owners (root)', async () => {
    await apply(
      [dir('home/', { uid: 1000, gid: 1000 }), file('home/f', 'x', { uid: 1234, gid: 5678, mode: 0o2755 }), symlink('home/l', 'f', { uid: 42, gid: 43 })],
      { preserveOwner: true },
    );
    const [home, f, l] = await Promise.all(['home', 'home/f', 'home/l'].map(lstat));
    expect([home!.uid, home!.gid]).toEqual([1000, 1000]);
    expect([f!.uid, f!.gid]).toEqual([1234, 5678]);
    expect(f!.mode & 0o7777).toBe(0o2755);
    expect([l!.uid, l!.gid]).toEqual([42, 43]);
  });

  it('leaves ownership alone when not preserving owners', async () => {
    await apply([file('f', 'x', { uid: 1234, gid: 5678 })], { preserveOwner: false });
    expect((await lstat('f')).uid).toBe(process.getuid?.());
  });

  it('handles long names (> 100 characters) via pax headers', async () => {
    const longBase = 'l'.repeat(180);
    const deep = `${'segment-of-a-deep-path/'.repeat(12)}${longBase}`;
    await apply([file(longBase, 'one'), file(deep, 'two'), symlink('long-link', deep)]);
    expect(await read(longBase)).toBe('one');
    expect(await read(deep)).toBe('two');
    expect(await fsp.readlink(inRoot('long-link'))).toBe(deep);
  });

  it('treats ./ as the root and only updates its attributes', async () => {
    const when = new Date('2010-01-01T00:00:00Z');
    await apply([dir('./', { mode: 0o711, mtime: when }), file('./a', 'a')]);
    const st = await fsp.lstat(target);
    expect(st.mode & 0o7777).toBe(0o711);
    expect(st.mtime.getTime()).toBe(when.getTime());
    expect(await read('a')).toBe('a');
  });

  it('creates fifos, and device nodes when allowed', async () => {
    const entries: TarEntry[] = [
      { name: 'run/pipe', type: 'fifo', mode: 0o620 },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    ];
    await apply(entries, { allowDevices: true });
    const pipe = await lstat('run/pipe');
    expect(pipe.isFIFO()).toBe(true);
    expect(pipe.mode & 0o7777).toBe(0o620);
    const nul = await lstat('dev/null');
    expect(nul.isCharacterDevice()).toBe(true);
    expect(nul.rdev).toBe(0x103);
  });

  it('exposes the documented default limits', () => {
    expect(DEFAULT_LAYER_LIMITS).toEqual({ maxEntries: 200_000, maxBytes: 32 * 1024 ** 3, maxRatio: 100 });
  });
});

describe('applyLayer: names are bytes', () => {
  const bytes = (...b: number[]) => Buffer.from(b);
  const listing = async (dirPath: string) => (await fsp.readdir(dirPath, { encoding: 'buffer' })).map((n) => n.toString('hex')).sort();

  it('keeps two names that differ only in bytes that are not UTF-8 apart (ustar and PAX)', async () => {
    // Decoded as UTF-8 all four names are "a\uFFFD": they used to become one file.
    const tar = rawTar([
      { name: bytes(0x61, 0xff), content: Buffer.from('ustar ff') },
      { name: bytes(0x61, 0xfe), content: Buffer.from('ustar fe') },
      { name: bytes(0x61, 0xfd), content: Buffer.from('pax fd'), pax: true },
      { name: bytes(0x61, 0xfc), content: Buffer.from('pax fc'), pax: true },
      { name: Buffer.from('l\u00e9', 'utf8'), content: Buffer.from('utf-8 name'), pax: true },
    ]);
    const stats = await applyLayer(target, streamOf(tar));
    expect(stats.entries).toBe(5);
    expect(await listing(target)).toEqual(['61fc', '61fd', '61fe', '61ff', '6cc3a9']);
    const at = (...b: number[]) => Buffer.concat([Buffer.from(`${target}/`), bytes(...b)]);
    expect(await fsp.readFile(at(0x61, 0xff), 'utf8')).toBe('ustar ff');
    expect(await fsp.readFile(at(0x61, 0xfe), 'utf8')).toBe('ustar fe');
    expect(await fsp.readFile(at(0x61, 0xfd), 'utf8')).toBe('pax fd');
    expect(await fsp.readFile(path.join(target, 'l\u00e9'), 'utf8')).toBe('utf-8 name');
  });

  it('keeps link targets and parent directories as bytes, and whiteouts find such names', async () => {
    const dirName = bytes(0x64, 0x80);
    const slash = Buffer.from('/');
    await applyLayer(
      target,
      streamOf(
        rawTar([
          { name: dirName, type: 'directory' },
          { name: Buffer.concat([dirName, slash, bytes(0x66, 0x81)]), content: Buffer.from('deep') },
          { name: bytes(0x6c, 0x82), type: 'symlink', linkname: Buffer.concat([dirName, slash, bytes(0x66, 0x81)]), pax: true },
        ]),
      ),
    );
    const link = Buffer.concat([Buffer.from(`${target}/`), bytes(0x6c, 0x82)]);
    expect((await fsp.readlink(link, { encoding: 'buffer' })).toString('hex')).toBe('64802f6681');
    expect(await fsp.readFile(link, 'utf8')).toBe('deep');
    // A second layer: an opaque whiteout of the directory hides its non-UTF-8 child.
    await applyLayer(target, streamOf(rawTar([{ name: Buffer.concat([dirName, slash, Buffer.from('.wh..wh..opq')]) }])));
    expect(await listing(target)).toContain('6480');
    expect((await fsp.readdir(Buffer.concat([Buffer.from(`${target}/`), dirName]))).length).toBe(0);
  });

  it('names entries readably in refusals', async () => {
    const err = await applyLayer(target, streamOf(rawTar([{ name: Buffer.concat([Buffer.from('../'), bytes(0xc3, 0xa9)]) }]))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayerError);
    expect((err as Error).message).toContain('"../\u00e9"');
  });
});

describe('applyLayer: bounded expansion and diff_id', () => {
  /** A gzip'd tar holding one file of `size` zeros, made without holding the tar in memory. */
  async function zeroBomb(size: number): Promise<Buffer> {
    const archive = pack();
    const out = collectStream(archive.pipe(createGzip({ level: 9 })));
    const body = archive.entry({ name: 'zeros', size });
    const chunk = Buffer.alloc(1024 * 1024);
    for (let left = size; left > 0; left -= chunk.length) {
      if (!body.write(left >= chunk.length ? chunk : chunk.subarray(0, left))) await once(body, 'drain');
    }
    body.end();
    archive.finalize();
    return out;
  }
  async function collectStream(s: AsyncIterable<unknown>): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of s) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  it('refuses a layer that expands more than the ratio allows, and stops early', async () => {
    const size = 128 * 1024 * 1024;
    const gz = await zeroBomb(size);
    expect(gz.length).toBeLessThan(size / 500);
    const err = await applyLayer(target, streamOf(gz, 64 * 1024), { inputSize: gz.length }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as Error).message).toMatch(/layer expands to more than 100 times its compressed size \(limit --layer-limits ratio=100\)/);
    const written = await fsp.stat(path.join(target, 'zeros')).then((s) => s.size, () => 0);
    expect(written).toBeLessThan(size);
    // The same layer passes when the ratio is raised.
    await fsp.rm(target, { recursive: true });
    await fsp.mkdir(target);
    const ok = await applyLayer(target, streamOf(gz, 64 * 1024), { inputSize: gz.length, limits: { maxRatio: 2000 } });
    expect(ok.bytes).toBe(size);
  });

  it('reports the diff_id: the sha256 of the uncompressed tar', async () => {
    const tar = await buildTar([file('a', 'one'), dir('d'), file('d/b', 'two')]);
    const want = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
    expect((await applyLayer(target, streamOf(gzip(tar)))).diffId).toBe(want);
    expect(await layerDiffId(streamOf(zstd(tar)), 'layer x')).toBe(want);
    expect(await layerDiffId(streamOf(tar), 'layer x')).toBe(want);
  });
});
