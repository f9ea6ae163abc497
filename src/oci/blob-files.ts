// The part every on-disk image source shares: find a blob's bytes, then hand
// them out only through a verifying stream, so no caller ever sees content
// that does not match its descriptor.

import { open, type FileHandle } from 'node:fs/promises';
import { pipeline, Readable } from 'node:stream';
import { describeFsError, ImageError, NotFoundError } from '../errors.js';
import { digestHex, verifyingStream } from './digest.js';
import type { ImageSource } from './image-source.js';
import type { Descriptor, ImageIndex } from './types.js';

/** readBlob refuses anything bigger; layers are streamed with openBlob. */
export const MAX_READ_BLOB = 64 * 1024 * 1024;

export abstract class FileBlobSource implements ImageSource {
  constructor(readonly description: string) {}

  abstract index(): Promise<ImageIndex>;
  abstract close(): Promise<void>;
  /** Where the blob lives: a file path, bytes held in memory, or undefined if absent. */
  protected abstract locate(desc: Descriptor): string | Buffer | undefined;

  /** Opens a located blob file; sources that must confine their files override it. */
  protected openFile(path: string, _what: string): Promise<FileHandle> {
    return open(path, 'r');
  }

  async readBlob(desc: Descriptor): Promise<Buffer> {
    if (desc.size > MAX_READ_BLOB) {
      throw new ImageError(
        `${this.description}: blob ${desc.digest} is ${desc.size} bytes, over the ${MAX_READ_BLOB}-byte limit for reading into memory`,
      );
    }
    const chunks: Buffer[] = [];
    for await (const chunk of await this.openBlob(desc)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async openBlob(desc: Descriptor): Promise<Readable> {
    const what = `${this.description}: blob ${desc.digest}`;
    digestHex(desc.digest);
    const where = this.locate(desc);
    if (where === undefined) throw new NotFoundError(`${what} not found`);
    let src: Readable;
    if (typeof where === 'string') {
      const fh = await this.openFile(where, what).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') throw new NotFoundError(`${what} not found`);
        if (err instanceof ImageError) throw err;
        throw new ImageError(`${what}: ${describeFsError(err)}`);
      });
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        throw new ImageError(`${what}: not a regular file`);
      }
      src = fh.createReadStream();
    } else {
      src = Readable.from([where]);
    }
    const out = verifyingStream(desc, what);
    // pipeline forwards a read error from the file into `out`, and tears the
    // file down if the consumer destroys `out` early.
    pipeline(src, out, () => {});
    return out;
  }
}
