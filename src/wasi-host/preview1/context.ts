// What every group of preview1 functions needs from the guest it serves.
import type { FdEntry, FdTable } from './fd-table.js';
import type { GuestMemory } from './memory.js';
import type { DirRef } from './resolve.js';
import type { GuestStream } from './streams.js';
import type { Listener } from './sockets.js';

export interface DirListingEntry {
  name: Buffer;
  ino: bigint;
  type: number;
}

export type Handle =
  | { kind: 'file'; fd: number }
  | { kind: 'dir'; fd: number; ref: DirRef; preopen?: Buffer; listing?: DirListingEntry[] }
  | { kind: 'stream'; stream: GuestStream }
  | { kind: 'listener'; listener: Listener };

export type Entry = FdEntry<Handle>;

/** A preview1 function: returns an errno, or a promise of one (the Suspending imports). */
export type WasiFn = (...args: never[]) => number | Promise<number>;

export interface Ctx {
  readonly mem: GuestMemory;
  readonly fds: FdTable<Handle>;
  readonly args: readonly Buffer[];
  readonly env: readonly Buffer[];
  /** Aborted when the guest ends (exit, kill, trap): every wait gives up. */
  readonly signal: AbortSignal;
  /** Releases the host resources of an entry that left the table. */
  release(entry: Entry): void;
  /** proc_exit: records the code; the returned promise never settles. */
  exit(code: number): Promise<never>;
  /** A promise that resolves after `ms` (or at once when the guest ends). */
  sleep(ms: number): Promise<void>;
}
