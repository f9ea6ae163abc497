// Opening a file of an image layout the user named. A layout may use links
// between its own files, but a link that leads out of it (index.json →
// /etc/shadow) is refused. The check is made on the file actually opened (its
// /proc/self/fd path), so swapping a link after the check gains nothing.
import { constants } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { ImageError } from '../errors.js';

export class ConfinedDir {
  private real: Promise<string> | undefined;

  constructor(readonly dir: string) {}

  /** Opens `path` (inside `dir`) read-only; ImageError when the file reached is outside `dir`. Open errors pass through. */
  async open(path: string, what: string): Promise<FileHandle> {
    // O_NONBLOCK: a FIFO planted in a layout must not hang the open; regular files ignore it.
    const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      this.real ??= realpath(this.dir);
      const base = await this.real;
      const reached = await readlink(`/proc/self/fd/${fh.fd}`);
      if (reached !== base && !reached.startsWith(base.endsWith('/') ? base : `${base}/`)) {
        throw new ImageError(`${what}: refusing a link that leads outside ${this.dir}`);
      }
      return fh;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }
}
