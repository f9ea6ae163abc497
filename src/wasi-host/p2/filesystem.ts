// wasi:filesystem/types and wasi:filesystem/preopens for one component
// guest, on Tugboat's kernel-resolved host (see descriptor.ts), in place of
// preview2-shim's filesystem, which joins guest paths onto host paths and
// hands them to Node's path-based fs calls.
import { openSync, constants as fsc } from 'node:fs';
import { defaultPreopens, type GuestConfig } from '../guest-config.js';
import { openGuestDirs, type HostDir } from '../preview1/preopen-dirs.js';
import { sys } from '../preview1/sys.js';
import { Descriptor, preopenDescriptor } from './descriptor.js';
import { DirectoryEntryStream } from './directory-stream.js';
import type { FdLedger } from './fd-ledger.js';
import { HostFds } from './host-fds.js';
import { filesystemErrorCode } from './io.js';

export interface ComponentFilesystem {
  types: {
    Descriptor: typeof Descriptor;
    DirectoryEntryStream: typeof DirectoryEntryStream;
    filesystemErrorCode: typeof filesystemErrorCode;
  };
  preopens: { getDirectories(): Array<[Descriptor, string]> };
  /** Closes every host descriptor the guest's filesystem holds; the guest must not run any more. */
  close(): void;
}

/** The guest's working directory inside its root: the configuration's, else the process's own (which runc sets). */
export function guestCwd(config: GuestConfig): string {
  return config.cwd ?? (config.root ? '/' : process.cwd());
}

/** Directories a shared host (`pod`, `process`) hands over as descriptors it holds; the filesystem keeps duplicates. */
export interface GuestDirFds {
  /** The guest's root; wins over GuestConfig.root. */
  rootFd?: number;
  /** Host directories, preopened after the root's own and before "." (preview1's Guest does the same). */
  hostDirs?: readonly HostDir[];
  /** Where the guest's host reads back the descriptors this filesystem holds (a shared host's guest thread). */
  ledger?: FdLedger;
}

/**
 * The guest's root (GuestConfig.root, "/" inside a container, or
 * dirs.rootFd) and its preopens in order (default: the root as "/", then the
 * working directory as "."), opened now: a directory that cannot be opened
 * fails here, before the guest runs, as it does for preview1.
 */
export function createFilesystem(config: GuestConfig, dirs: GuestDirFds = {}): ComponentFilesystem {
  const fds = new HostFds(dirs.ledger);
  // The root is the host's choice (config), never the guest's: the one path Node opens by name.
  const root = fds.add(dirs.rootFd !== undefined ? sys().dup(dirs.rootFd) : openSync(config.root ?? '/', fsc.O_RDONLY | fsc.O_DIRECTORY));
  let opened: Array<[Descriptor, string]>;
  try {
    opened = openGuestDirs(root.fd, config.preopens ?? defaultPreopens(guestCwd(config)), dirs.hostDirs).map(({ preopen, fd, ref }) => [
      preopenDescriptor(fds, fds.add(fd), ref, preopen.readonly === true),
      preopen.guest,
    ]);
  } catch (err) {
    fds.closeAll();
    throw err;
  }
  return {
    types: { Descriptor, DirectoryEntryStream, filesystemErrorCode },
    preopens: { getDirectories: () => [...opened] },
    close: () => fds.closeAll(),
  };
}
