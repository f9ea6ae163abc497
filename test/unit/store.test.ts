// The image store in-process: validation at import, bounded graph walks,
// private modes, locks, and unpacked roots that containers use.
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DigestMismatchError, ImageError, NotFoundError, TugboatError, UsageError } from '../../src/errors.js';
import { openOciLayout, resolveImage, type ImageSource } from '../../src/oci/image-source.js';
import { ImageWalker } from '../../src/oci/image-walk.js';
import { ImageStore } from '../../src/oci/store.js';
import type { Descriptor } from '../../src/oci/types.js';
import { LayoutWriter, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, oneFileTar, sha256 } from '../helpers/layout.js';

let work: string;
let root: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'tugboat-store-'));
  root = join(work, 'root');
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

const names = async (store: ImageStore) => (await store.list()).map((i) => i.name).sort();
const mode = (p: string) => statSync(p).mode & 0o777;

/** An ImageSource that counts blob reads, to prove walks are memoised. */
function counting(src: ImageSource): { src: ImageSource; reads: () => number } {
  let n = 0;
  const wrapped: ImageSource = {
    description: src.description,
    index: () => src.index(),
    readBlob: (d) => (n++, src.readBlob(d)),
    openBlob: (d) => (n++, src.openBlob(d)),
    close: () => src.close(),
  };
  return { src: wrapped, reads: () => n };
}

describe('import validates what it stores', () => {
  it('refuses a config that is not JSON even when the blob is already in the store', async () => {
    const store = new ImageStore(root);
    const l = new LayoutWriter(join(work, 'l'));
    // First a good image whose layer bytes are "not json"… as a gzip'd tar they are not; store a raw blob instead:
    const raw = l.blob('definitely not json', 'application/octet-stream');
    const carrier = l.json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: l.json({ architecture: 'amd64', os: 'linux' }, OCI_CONFIG), layers: [raw] }, OCI_MANIFEST);
    l.tag({ carrier });
    await store.import(openOciLayout(l.dir), 'carrier', 'carrier');
    expect(existsSync(join(root, 'images/blobs/sha256', raw.digest.slice(7)))).toBe(true);
    // Now the same bytes as a config: the blob is present, so the old import never read it.
    const bad = l.json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { ...raw, mediaType: OCI_CONFIG }, layers: [] }, OCI_MANIFEST);
    l.tag({ bad });
    const err = await store.import(openOciLayout(l.dir), 'bad', 'bad').catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe(`oci:${l.dir}: config ${raw.digest}: invalid JSON at line 1, column 1`);
    expect(await names(store)).toEqual(['carrier']);
  });

  it('refuses a manifest that fails the schema even when its blob is already in the store', async () => {
    const store = new ImageStore(root);
    const l = new LayoutWriter(join(work, 'l'));
    const weird = l.json({ schemaVersion: 2, config: 'nope', layers: 'nope' }, 'application/octet-stream');
    const ok = l.image([oneFileTar('a', 'x')]);
    const carrier = l.json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: l.json({ architecture: 'amd64', os: 'linux' }, OCI_CONFIG), layers: [weird] }, OCI_MANIFEST);
    l.tag({ carrier, ok });
    await store.import(openOciLayout(l.dir), 'carrier', 'carrier');
    l.tag({ bad: { ...weird, mediaType: OCI_MANIFEST } });
    await expect(store.import(openOciLayout(l.dir), 'bad', 'bad')).rejects.toThrow(`manifest ${weird.digest}: config: descriptor must be an object`);
    expect(await names(store)).toEqual(['carrier']);
  });

  it('verifies an OCI layout\'s layers against their diff_ids, and names the layer', async () => {
    const store = new ImageStore(root);
    const l = new LayoutWriter(join(work, 'l'));
    const tar = oneFileTar('a', 'hello');
    const lying = l.image([tar], { diffIds: [`sha256:${sha256('something else')}`] });
    const honest = l.image([tar]);
    l.tag({ lying, honest });
    const err = await store.import(openOciLayout(l.dir), 'lying', 'lying').catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toMatch(new RegExp(`manifest ${lying.digest}: layer sha256:[0-9a-f]{64} does not match its diff_id: expected sha256:${sha256('something else')}, got sha256:${sha256(tar)}$`));
    expect(await names(store)).toEqual([]);
    await store.import(openOciLayout(l.dir), 'honest', 'honest');
    expect(await names(store)).toEqual(['honest']);
  });

  it('refuses a config with more or fewer diff_ids than layers', async () => {
    const l = new LayoutWriter(join(work, 'l'));
    l.tag({ x: l.image([oneFileTar('a', '1'), oneFileTar('b', '2')], { diffIds: [`sha256:${sha256(oneFileTar('a', '1'))}`] }) });
    await expect(new ImageStore(root).import(openOciLayout(l.dir), 'x', 'x')).rejects.toThrow(/has 2 layers but its config has 1 rootfs.diff_ids/);
  });

  it('checks diff_ids at unpack too, for images run without import', async () => {
    const l = new LayoutWriter(join(work, 'l'));
    l.tag({ lying: l.image([oneFileTar('a', 'hello')], { diffIds: [`sha256:${sha256('x')}`] }) });
    const store = new ImageStore(root);
    const image = await resolveImage(openOciLayout(l.dir), 'lying', undefined);
    await expect(store.unpack(image)).rejects.toThrow(/does not match its diff_id/);
    expect(readdirSync(join(root, 'rootfs'))).toEqual([]);
  });

  it('checks names: an invalid --name, an invalid stored name, an empty layout', async () => {
    const store = new ImageStore(root);
    const l = new LayoutWriter(join(work, 'l'));
    const img = l.image([oneFileTar('a', '1')]);
    l.tag({ '../../evil': img });
    await expect(store.import(openOciLayout(l.dir), undefined, '../x')).rejects.toThrow(UsageError);
    await expect(store.import(openOciLayout(l.dir), undefined, undefined)).rejects.toThrow(/named "\.\.\/\.\.\/evil", which is not a valid image name; give one with --name/);
    writeFileSync(join(l.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    // Was "image tag undefined not found".
    await expect(store.import(openOciLayout(l.dir), undefined, 'x')).rejects.toThrow(new NotFoundError(`no images in oci:${l.dir}`));
    await expect(store.remove('')).rejects.toThrow(UsageError);
  });
});

describe('bounded walks', () => {
  /** `depth` levels of indexes, each level `fanOut` distinct indexes that all name every index of the next level. */
  function dag(l: LayoutWriter, fanOut: number, depth: number, leaf: Descriptor): Descriptor {
    let level: Descriptor[] = [leaf];
    for (let d = 0; d < depth; d++) {
      const next: Descriptor[] = [];
      for (let i = 0; i < fanOut; i++) {
        next.push(l.json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: level, annotations: { i: String(i), d: String(d) } }, 'application/vnd.oci.image.index.v1+json'));
      }
      level = next;
    }
    return l.index(level);
  }

  it('imports a fan-out 8 × depth 6 index reading each blob once (262,144 paths, 51 blobs)', async () => {
    const l = new LayoutWriter(join(work, 'l'));
    const leaf = l.image([oneFileTar('a', '1')]);
    l.tag({ wide: dag(l, 8, 6, leaf) });
    const { src, reads } = counting(openOciLayout(l.dir));
    const store = new ImageStore(root);
    await store.import(src, 'wide', 'wide');
    // 1 top + 48 indexes + manifest + config (read by the walker), and each blob copied once (+layer for its diff_id, from the store copy).
    const blobs = 1 + 6 * 8 + 3;
    expect(reads()).toBeLessThanOrEqual(blobs + blobs);
    expect(readdirSync(join(root, 'images/blobs/sha256'))).toHaveLength(blobs);
    // Removing it walks the same graph from the store, memoised too.
    await store.remove('wide');
    expect(readdirSync(join(root, 'images/blobs/sha256'))).toEqual([]);
  });

  it('refuses indexes nested deeper than 8 and more than 10,000 descriptors', async () => {
    const l = new LayoutWriter(join(work, 'l'));
    const leaf = l.image([oneFileTar('a', '1')]);
    l.tag({ deep: dag(l, 1, 9, leaf), wide: l.index(Array.from({ length: 10_001 }, () => leaf)) });
    const store = new ImageStore(root);
    await expect(store.import(openOciLayout(l.dir), 'deep', 'deep')).rejects.toThrow(/image indexes nested more than 8 deep/);
    await expect(store.import(openOciLayout(l.dir), 'wide', 'wide')).rejects.toThrow(/image has more than 10000 descriptors/);
    expect(await names(store)).toEqual([]);
  });

  it('walks a layer blob that an index also names as a manifest', async () => {
    const l = new LayoutWriter(join(work, 'l'));
    const m = l.image([oneFileTar('a', '1')]);
    const w = new ImageWalker(openOciLayout(l.dir));
    // The manifest first seen as a "layer" of a carrier, then as an index child.
    const carrier = l.json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: l.json({ architecture: 'amd64', os: 'linux' }, OCI_CONFIG), layers: [{ ...m, mediaType: OCI_LAYER_GZIP }] }, OCI_MANIFEST);
    await w.walk(l.index([carrier, m]));
    expect(w.manifests.map((x) => x.desc.digest).sort()).toEqual([carrier.digest, m.digest].sort());
  });
});

describe('private modes', () => {
  it('creates the root and its directories 0700', async () => {
    const l = new LayoutWriter(join(work, 'l'));
    l.tag({ x: l.image([oneFileTar('a', '1')]) });
    await new ImageStore(root).import(openOciLayout(l.dir), 'x', 'x');
    for (const d of ['', 'images', 'rootfs', 'locks']) expect(mode(join(root, d))).toBe(0o700);
  });

  it('repairs a store made 0755 by an older version', async () => {
    for (const d of ['', 'images', 'rootfs', 'containers', 'components']) mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
    for (const d of ['', 'images', 'rootfs', 'containers', 'components']) expect(mode(join(root, d))).toBe(0o755);
    const l = new LayoutWriter(join(work, 'l'));
    l.tag({ x: l.image([oneFileTar('a', '1')]) });
    await new ImageStore(root).import(openOciLayout(l.dir), 'x', 'x');
    for (const d of ['', 'images', 'rootfs', 'containers', 'components']) expect(mode(join(root, d))).toBe(0o700);
  });

  it.skipIf(process.getuid?.() !== 0)('refuses a root that another user owns', async () => {
    mkdirSync(root);
    chownSync(root, 65534, 65534);
    const l = new LayoutWriter(join(work, 'l'));
    l.tag({ x: l.image([oneFileTar('a', '1')]) });
    const err = await new ImageStore(root).import(openOciLayout(l.dir), 'x', 'x').catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(TugboatError);
    expect(err.message).toBe(`data root ${root} is owned by uid 65534, not by this user (uid 0); refusing to use it`);
  });
});

describe('unpacked roots in use', () => {
  async function setup(): Promise<{ store: ImageStore; hex: string; l: LayoutWriter }> {
    const l = new LayoutWriter(join(work, 'l'));
    const img = l.image([oneFileTar('a', '1')]);
    const other = l.image([oneFileTar('b', '2')]);
    l.tag({ img, other });
    const store = new ImageStore(root);
    await store.import(openOciLayout(l.dir), 'img', 'img');
    await store.import(openOciLayout(l.dir), 'other', 'other');
    const image = await resolveImage(store.source(), 'img', undefined);
    await store.unpack(image);
    return { store, hex: img.digest.slice(7), l };
  }
  const useBy = (id: string, hex: string) => {
    mkdirSync(join(root, 'containers', id), { recursive: true });
    writeFileSync(join(root, 'containers', id, 'container.json'), JSON.stringify({ id, digest: `sha256:${hex}` }));
  };

  it('refuses to remove an image a container uses, naming the container; --force defers its root', async () => {
    const { store, hex } = await setup();
    useBy('web', hex);
    const err = await store.remove('img').catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe('image img is used by container web: remove it first (tugboat rm), or use image rm --force to forget the name now (its files stay until no container uses them)');
    expect(await names(store)).toEqual(['img', 'other']);
    await store.remove('img', true);
    expect(await names(store)).toEqual(['other']);
    expect(existsSync(join(root, 'rootfs', hex))).toBe(true);
    // Once the container is gone, the next collection takes the root.
    rmSync(join(root, 'containers', 'web'), { recursive: true });
    await store.remove('other');
    expect(readdirSync(join(root, 'rootfs'))).toEqual([]);
  });

  it('keeps a root that a container made by reference uses when an unrelated image is removed', async () => {
    const { store, hex, l } = await setup();
    // Run by reference: unpacked from the layout, never named in the store.
    const byRef = await resolveImage(openOciLayout(l.dir), 'other', undefined);
    const byRefRoot = await store.unpack(byRef);
    useBy('byref', byRef.manifestDescriptor.digest.slice(7));
    await store.remove('img');
    expect(existsSync(byRefRoot)).toBe(true);
    expect(existsSync(join(root, 'rootfs', hex))).toBe(false);
  });
});

describe('concurrent use in one process', () => {
  it('keeps every name when the first commands on a fresh store race', async () => {
    const l = new LayoutWriter(join(work, 'l'));
    l.tag({ x: l.image([oneFileTar('a', '1')]) });
    await Promise.all(Array.from({ length: 10 }, (_, i) => new ImageStore(root).import(openOciLayout(l.dir), 'x', `n${i}`)));
    expect(await names(new ImageStore(root))).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`).sort());
  });

  it('loses no name when 20 imports and removes race', async () => {
    const l = new LayoutWriter(join(work, 'l'));
    const imgs = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`t${i}`, l.image([oneFileTar(`f${i}`, String(i))])]));
    l.tag(imgs);
    const store = new ImageStore(root);
    for (let i = 0; i < 5; i++) await store.import(openOciLayout(l.dir), `t${i}`, `old${i}`);
    await Promise.all([
      ...Array.from({ length: 15 }, (_, i) => new ImageStore(root).import(openOciLayout(l.dir), `t${i % 10}`, `c${i}`)),
      ...Array.from({ length: 5 }, (_, i) => new ImageStore(root).remove(`old${i}`)),
    ]);
    expect(await names(store)).toEqual(Array.from({ length: 15 }, (_, i) => `c${i}`).sort());
    // Every listed image is whole: each resolves and its layer is readable.
    for (let i = 0; i < 15; i++) {
      const image = await resolveImage(store.source(), `c${i}`, undefined);
      for await (const _ of await image.source.openBlob(image.manifest.layers[0]!)) void _;
    }
  });
});
