// A component guest's imports in a shared host, on any of its threads: its
// args, env and working directory; its stdio descriptors; its root,
// preopens and host directories through Tugboat's own wasi:filesystem
// (../p2/, as at `container` level: descriptors and kernel-resolved paths,
// never a host path); preview2-shim for the rest. An HTTP component's
// handler threads put their own wasi:io, monotonic clock and wasi:http in
// place (`overrides`).
import { readSync } from 'node:fs';
import { fdOutputStream, guestCli, type ShimOverrides } from '../component-shim.js';
import { FdLedger } from '../p2/fd-ledger.js';
import { createFilesystem, hostInputStream, wasiImports } from '../p2/index.js';
import type { HostedGuestView } from './component-protocol.js';

/** The guest's stdin: a descriptor the host handed over (a FIFO, a pipe, /dev/null), read on this thread. */
function stdinStream(fd: number) {
  return hostInputStream({
    read(max) {
      const buf = Buffer.allocUnsafe(max);
      let n: number;
      try {
        n = readSync(fd, buf, 0, max, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return new Uint8Array(0);
        throw err;
      }
      return n === 0 ? null : buf.subarray(0, n);
    },
  });
}

export function hostedGuestImports(view: HostedGuestView, overrides: ShimOverrides = {}): Record<string, unknown> {
  const cli = guestCli(view, { stdin: stdinStream(view.stdio[0]), stdout: fdOutputStream(view.stdio[1]), stderr: fdOutputStream(view.stdio[2]) });
  const filesystem = createFilesystem(
    { args: view.args, env: view.env, cwd: view.cwd, preopens: view.preopens },
    { rootFd: view.rootFd, hostDirs: view.hostDirs, ledger: new FdLedger(view.fdLedger) },
  );
  return wasiImports({ ...overrides, cli, filesystem });
}
