// An OCI image layout on disk: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
// Also the form an oci-archive or a Docker 25+ `docker save` takes once
// unpacked, and the local image store.

import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageError, NotFoundError } from '../errors.js';
import { FileBlobSource } from './blob-files.js';
import { digestHex } from './digest.js';
import { parseIndex, parseJson } from './image-schema.js';
import type { Descriptor, ImageIndex } from './types.js';

const MAX_INDEX_JSON = 16 * 1024 * 1024;

export class OciLayoutSource extends FileBlobSource {
  constructor(
    readonly dir: string,
    description: string,
    /** A private temp dir to delete on close (archives unpacked for reading). */
    private readonly tempDir?: string,
  ) {
    super(description);
  }

  async index(): Promise<ImageIndex> {
    const layoutFile = await this.readSmall('oci-layout');
    if (layoutFile === undefined) {
      const dirExists = await stat(this.dir).then((s) => s.isDirectory(), () => false);
      if (!dirExists) throw new NotFoundError(`${this.description}: no such directory`);
      throw new ImageError(`${this.description}: not an OCI image layout (no oci-layout file)`);
    }
    const layout = parseJson(layoutFile, `${this.description}: oci-layout`) as { imageLayoutVersion?: unknown };
    if (typeof layout?.imageLayoutVersion !== 'string' || !layout.imageLayoutVersion.startsWith('1.')) {
      throw new ImageError(`${this.description}: oci-layout: unsupported imageLayoutVersion ${JSON.stringify(layout?.imageLayoutVersion)}`);
    }
    const data = await this.readSmall('index.json');
    if (data === undefined) throw new NotFoundError(`${this.description}: index.json not found`);
    return parseIndex(data, `${this.description}: index.json`);
  }

  protected locate(desc: Descriptor): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(desc.digest));
  }

  async close(): Promise<void> {
    if (this.tempDir) await rm(this.tempDir, { recursive: true, force: true });
  }

  private async readSmall(name: string): Promise<Buffer | undefined> {
    const path = join(this.dir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st) return undefined;
    if (!st.isFile()) throw new ImageError(`${this.description}: ${name} is not a regular file`);
    if (st.size > MAX_INDEX_JSON) throw new ImageError(`${this.description}: ${name} is too large (${st.size} bytes)`);
    return readFile(path);
  }
}
