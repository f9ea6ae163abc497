// wasi:filesystem directory-entry-stream: the entries of a directory, read
// lazily (one getdents64 at a time) through a descriptor of its own, so the
// listing has its own offset and a huge directory costs one batch of memory.
import { isUtf8 } from 'node:buffer';
import { direntBuffer, readDirents, type Dirent } from '../preview1/dirents.js';
import { lstatAt } from '../preview1/stat.js';
import { O, sys } from '../preview1/sys.js';
import { fsCall } from './errors.js';
import type { HostFds, OwnedFd } from './host-fds.js';
import { typeOfDtype, typeOfMode } from './stat.js';
import type { DescriptorType, DirectoryEntry } from './types.js';

const DOT = Buffer.from('.\0');
const token = Symbol('DirectoryEntryStream');

export class DirectoryEntryStream {
  #dir: OwnedFd | undefined;
  #batch: Dirent[] = [];
  #buf: Buffer | undefined;

  /** Made only by openDirectoryStream (jco's glue never constructs one). */
  constructor(t: symbol, dir: OwnedFd) {
    if (t !== token) throw new TypeError('Illegal constructor');
    this.#dir = dir;
  }

  readDirectoryEntry(): DirectoryEntry | undefined {
    return fsCall(() => {
      while (this.#batch.length === 0) {
        if (!this.#dir) return undefined;
        const next = readDirents(this.#dir.fd, (this.#buf ??= direntBuffer()));
        if (next === null) {
          // The end: the descriptor is not needed any more.
          this.#release();
          return undefined;
        }
        this.#batch = next;
      }
      const d = this.#batch.shift()!;
      if (!isUtf8(d.name)) throw 'illegal-byte-sequence';
      return { type: this.#typeOf(this.#dir!.fd, d), name: d.name.toString('utf8') };
    });
  }

  #typeOf(dirFd: number, d: Dirent): DescriptorType {
    const known = typeOfDtype(d.dtype);
    if (known) return known;
    try {
      return typeOfMode(lstatAt(dirFd, Buffer.concat([d.name, Buffer.from([0])])).mode);
    } catch {
      return 'unknown';
    }
  }

  #release(): void {
    this.#dir?.close();
    this.#dir = undefined;
    this.#buf = undefined;
  }

  [Symbol.dispose](): void {
    this.#release();
  }
}

/** A listing of the directory open at `dirFd`. */
export function openDirectoryStream(fds: HostFds, dirFd: number): DirectoryEntryStream {
  return new DirectoryEntryStream(token, fds.add(sys().openat(dirFd, DOT, O.RDONLY | O.DIRECTORY | O.CLOEXEC, 0)));
}
