// Writes OCI image layouts by hand, blob by blob, for tests that need images
// no builder would make: wrong diff_ids, configs that are not JSON, deep or
// wide index graphs.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { rawTar } from '../unit/helpers/tar.js';

export const REF = 'org.opencontainers.image.ref.name';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string };
}

/** A compressed layer and the digest of its tar. */
export interface Layer {
  gz: Buffer;
  diffId: string;
}

/** The busybox test image's layer (test/fixtures/out/busybox), to build images that can run commands. */
export function busyboxLayer(fixtures: string): Layer {
  const dir = join(fixtures, 'busybox');
  const blob = (d: string): Buffer => readFileSync(join(dir, 'blobs', 'sha256', d.slice('sha256:'.length)));
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: Desc[] };
  const manifest = JSON.parse(blob(index.manifests[0]!.digest).toString()) as { config: Desc; layers: Desc[] };
  const config = JSON.parse(blob(manifest.config.digest).toString()) as { rootfs: { diff_ids: string[] } };
  return { gz: blob(manifest.layers[0]!.digest), diffId: config.rootfs.diff_ids[0]! };
}

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

export class LayoutWriter {
  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  }

  blob(data: Buffer | string, mediaType: string): Desc {
    const bytes = Buffer.from(data);
    const hex = sha256(bytes);
    writeFileSync(join(this.dir, 'blobs', 'sha256', hex), bytes);
    return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
  }

  json(value: unknown, mediaType: string): Desc {
    return this.blob(JSON.stringify(value), mediaType);
  }

  /**
   * An image: layers (tars, gzip'd here, or already compressed layers with
   * their diff_id), a config listing `diffIds` (default: the right ones), a manifest.
   */
  image(tars: (Buffer | Layer)[], opts: { diffIds?: string[]; config?: Record<string, unknown>; arch?: string } = {}): Desc {
    const given = tars.map((t) => (Buffer.isBuffer(t) ? { gz: gzipSync(t), diffId: `sha256:${sha256(t)}` } : t));
    const layers = given.map((t) => this.blob(t.gz, OCI_LAYER_GZIP));
    const diffIds = opts.diffIds ?? given.map((t) => t.diffId);
    const arch = opts.arch ?? (process.arch === 'arm64' ? 'arm64' : 'amd64');
    const config = this.json({ architecture: arch, os: 'linux', config: { Cmd: ['/x'] }, rootfs: { type: 'layers', diff_ids: diffIds }, ...opts.config }, OCI_CONFIG);
    return this.json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers }, OCI_MANIFEST);
  }

  index(manifests: Desc[]): Desc {
    return this.json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }, OCI_INDEX);
  }

  /** index.json naming each descriptor by its tag. */
  tag(entries: Record<string, Desc>): void {
    const manifests = Object.entries(entries).map(([tag, d]) => ({ ...d, annotations: { ...d.annotations, [REF]: tag } }));
    writeFileSync(join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
  }
}

/** A tar holding one regular file (ustar, fixed bytes). */
export function oneFileTar(name: string, content: string): Buffer {
  return rawTar([{ name: Buffer.from(name), content: Buffer.from(content) }]);
}
