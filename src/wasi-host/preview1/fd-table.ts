// A guest's descriptor table: small integers → entries with rights and
// fdflags. Pure bookkeeping; the host resources an entry holds are released
// by whoever removes it (see Guest.release).
import { E, type Filetype } from './abi.js';
import { WasiError } from './errno.js';
import { holds } from './rights.js';

export interface FdEntry<H> {
  handle: H;
  filetype: Filetype;
  rightsBase: bigint;
  rightsInheriting: bigint;
  fdflags: number;
}

export class FdTable<H> {
  private readonly entries = new Map<number, FdEntry<H>>();
  /** Lowest number that may be free: new descriptors take the lowest free number, as POSIX open does. */
  private lowest = 0;

  /** The entry at `fd`, which must hold `rights` (EBADF when closed, ENOTCAPABLE when a right is missing). */
  get(fd: number, rights = 0n): FdEntry<H> {
    const e = this.entries.get(fd >>> 0);
    if (!e) throw new WasiError(E.BADF);
    if (!holds(e.rightsBase, rights)) throw new WasiError(E.NOTCAPABLE);
    return e;
  }

  has(fd: number): boolean {
    return this.entries.has(fd >>> 0);
  }

  insert(entry: FdEntry<H>): number {
    let fd = this.lowest;
    while (this.entries.has(fd)) fd++;
    this.entries.set(fd, entry);
    this.lowest = fd + 1;
    return fd;
  }

  /** Removes and returns the entry at fd (EBADF when closed). */
  remove(fd: number): FdEntry<H> {
    const e = this.get(fd);
    this.entries.delete(fd >>> 0);
    if (fd >>> 0 < this.lowest) this.lowest = fd >>> 0;
    return e;
  }

  /**
   * fd_renumber: `to` takes `from`'s entry and `from` becomes free. Both must
   * be open (EBADF otherwise); returns the entry `to` held, for release.
   */
  renumber(from: number, to: number): FdEntry<H> | undefined {
    const moving = this.get(from);
    if (from >>> 0 === to >>> 0) return undefined;
    const replaced = this.get(to);
    this.entries.set(to >>> 0, moving);
    this.entries.delete(from >>> 0);
    if (from >>> 0 < this.lowest) this.lowest = from >>> 0;
    return replaced;
  }

  /** Every open descriptor, lowest first. */
  all(): Array<[number, FdEntry<H>]> {
    return [...this.entries].sort((a, b) => a[0] - b[0]);
  }

  clear(): Array<FdEntry<H>> {
    const out = [...this.entries.values()];
    this.entries.clear();
    this.lowest = 0;
    return out;
  }
}
