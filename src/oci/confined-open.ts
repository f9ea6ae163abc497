// Opening a file of an image layout the user named. A layout may use links
// between its own files, but a link that leads out of it (index.json →
// /etc/shadow) is refused. The check is made on the file actually opened (its
// /proc/self/fd path), so swapping a link after the check gains nothing.
import { closeSync, constants, openSync, readlinkSync, realpathSync } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { ImageError } from '../errors.js';

// O_NONBLOCK: a FIFO planted in a layout must not hang the open; regular files ignore it.
const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

export class ConfinedDir {
  private real: Promise<string> | undefined;
  private realSync: string | undefined;

  constructor(readonly dir: string) {}

  /** Opens `path` (inside `dir`) read-only; ImageError when the file reached is outside `dir`. Open errors pass through. */
  async open(path: string, what: string): Promise<FileHandle> {
    const fh = await open(path, FLAGS);
    try {
      this.real ??= realpath(this.dir);
      this.refuseOutside(await readlink(`/proc/self/fd/${fh.fd}`), await this.real, what);
      return fh;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** The same, synchronously, as a file descriptor the caller closes: for small files read whole. */
  openSync(path: string, what: string): number {
    const fd = openSync(path, FLAGS);
    try {
      this.realSync ??= realpathSync.native(this.dir);
      this.refuseOutside(readlinkSync(`/proc/self/fd/${fd}`), this.realSync, what);
      return fd;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private refuseOutside(reached: string, base: string, what: string): void {
    if (reached !== base && !reached.startsWith(base.endsWith('/') ? base : `${base}/`)) {
      throw new ImageError(`${what}: refusing a link that leads outside ${this.dir}`);
    }
  }
}
