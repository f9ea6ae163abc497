// The part every on-disk image source shares: find a blob's bytes, then hand
// them out only verified, so no caller ever sees content that does not match
// its descriptor. A small blob (a manifest, a config) is read whole and
// hashed; a layer goes through a verifying stream.

import { closeSync, fstatSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { describeFsError, ImageError, NotFoundError } from '../errors.js';
import { readUpTo } from '../read-fd.js';
import { digestHex, verifyBytes, verifyingStream } from './digest.js';
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

  /** The same, synchronously, as a file descriptor the caller closes. */
  protected openFileSync(path: string, _what: string): number {
    return openSync(path, 'r');
  }

  async readBlob(desc: Descriptor): Promise<Buffer> {
    if (desc.size > MAX_READ_BLOB) {
      throw new ImageError(
        `${this.description}: blob ${desc.digest} is ${desc.size} bytes, over the ${MAX_READ_BLOB}-byte limit for reading into memory`,
      );
    }
    const what = `${this.description}: blob ${desc.digest}`;
    const where = this.find(desc, what);
    let data: Buffer;
    if (typeof where === 'string') {
      let fd: number;
      try {
        fd = this.openFileSync(where, what);
      } catch (err) {
        throw openError(err as NodeJS.ErrnoException, what);
      }
      try {
        if (!fstatSync(fd).isFile()) throw new ImageError(`${what}: not a regular file`);
        // One byte more than the descriptor says: a longer file shows itself without being read whole.
        data = readUpTo(fd, Number.isSafeInteger(desc.size) && desc.size >= 0 ? desc.size + 1 : 0);
      } finally {
        closeSync(fd);
      }
    } else {
      data = where;
    }
    verifyBytes(desc, data, what);
    return data;
  }

  async openBlob(desc: Descriptor): Promise<Readable> {
    const what = `${this.description}: blob ${desc.digest}`;
    const where = this.find(desc, what);
    const { pipeline, Readable } = process.getBuiltinModule('node:stream');
    let src: Readable;
    if (typeof where === 'string') {
      const fh = await this.openFile(where, what).catch((err: NodeJS.ErrnoException) => {
        throw openError(err, what);
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

  private find(desc: Descriptor, what: string): string | Buffer {
    digestHex(desc.digest);
    const where = this.locate(desc);
    if (where === undefined) throw new NotFoundError(`${what} not found`);
    return where;
  }
}

function openError(err: NodeJS.ErrnoException, what: string): Error {
  if (err.code === 'ENOENT') return new NotFoundError(`${what} not found`);
  if (err instanceof ImageError) return err;
  return new ImageError(`${what}: ${describeFsError(err)}`);
}

