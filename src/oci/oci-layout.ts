// An OCI image layout on disk: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
// Also the form an oci-archive or a Docker 25+ `docker save` takes once
// unpacked, and the local image store.

import { closeSync, fstatSync, readFileSync } from 'node:fs';
import { stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { describeFsError, ImageError, NotFoundError } from '../errors.js';
import { FileBlobSource } from './blob-files.js';
import { ConfinedDir } from './confined-open.js';
import { digestHex } from './digest.js';
import { parseIndex, parseJson } from './image-schema.js';
import type { TempDir } from './temp-space.js';
import type { Descriptor, ImageIndex } from './types.js';

const MAX_INDEX_JSON = 16 * 1024 * 1024;

export class OciLayoutSource extends FileBlobSource {
  private readonly confined: ConfinedDir;

  constructor(
    readonly dir: string,
    description: string,
    /** A private temp dir to delete on close (archives unpacked for reading). */
    private readonly tempDir?: TempDir,
  ) {
    super(description);
    this.confined = new ConfinedDir(dir);
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

  protected override openFile(path: string, what: string): Promise<FileHandle> {
    return this.confined.open(path, what);
  }

  protected override openFileSync(path: string, what: string): number {
    return this.confined.openSync(path, what);
  }

  async close(): Promise<void> {
    await this.tempDir?.remove();
  }

  /** A small file of the layout, read whole; undefined if absent. */
  private async readSmall(name: string): Promise<Buffer | undefined> {
    const what = `${this.description}: ${name}`;
    let fd: number;
    try {
      fd = this.confined.openSync(join(this.dir, name), what);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (err instanceof ImageError) throw err;
      throw new ImageError(`${what}: ${describeFsError(err as NodeJS.ErrnoException)}`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new ImageError(`${what} is not a regular file`);
      if (st.size > MAX_INDEX_JSON) throw new ImageError(`${what} is too large (${st.size} bytes)`);
      return readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
