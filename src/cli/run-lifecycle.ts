// The last phases of one `tugboat run`, the same whatever runs the container
// (runc today; the calling process itself for `--isolation process`):
//
//   prepare   image, unpack, claim, mount, spec, transpile: a SIGINT/SIGTERM/
//             SIGHUP undoes what was made (src/interrupt.ts) and exits 128+N
//   run       the container in the foreground: signals go to it, and its
//             status is the command's
//   finish    after it ended: --rm removes it, otherwise it is kept (unmounted)
//             with its exit status; signals wait until this is done
//
// A SIGKILL cannot be handled. For --rm the run starts a watcher before the
// container: a `sh` in its own session that holds the read end of a pipe
// from this process and does nothing else. When this process ends, the pipe
// ends; unless the last thing it said was "done", the watcher execs
// `tugboat cleanup`, which stops and removes every --rm container whose run
// is gone (containers.ts). Without a watcher (it was killed too, or
// TUGBOAT_RM_WATCHER=off), the next command that writes to the store does
// the same.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { rmWatcherEnabled } from '../defaults.js';
import { finishing, inForeground } from '../interrupt.js';
import { log } from '../log.js';
import { testPause } from '../test-pause.js';
import type { ContainerClaim } from './containers.js';
import type { Paths } from './paths.js';

export interface Watcher {
  /** This run cleaned up after itself: the watcher exits without doing anything. */
  done(): void;
}

const WATCH = 'IFS= read -r said; [ "$said" = done ] || exec "$@"';

/** Starts the --rm watcher (see above); undefined when it is turned off or cannot start. */
export function startRmWatcher(paths: Paths): Watcher | undefined {
  if (!rmWatcherEnabled()) return undefined;
  const script = process.argv[1];
  if (script === undefined) return undefined;
  const cleanup = [process.execPath, ...process.execArgv, script, '--root', paths.root, ...(paths.runcBinary ? ['--runc', paths.runcBinary] : []), 'cleanup'];
  const env = { ...process.env };
  delete env.TUGBOAT_TEST_PAUSE_AT;
  const child = spawn('/bin/sh', ['-c', WATCH, 'tugboat-rm-watcher', ...cleanup], { detached: true, stdio: ['pipe', 'ignore', 'ignore'], env });
  child.once('error', (err) => log().warn({ err: err.message }, 'cannot start the --rm watcher; the next command that writes will clean up instead'));
  // A pipe to a child is a net.Socket, which can be unreferenced.
  const pipe = child.stdin as Socket;
  pipe.on('error', () => undefined); // the watcher is gone: nothing to tell it
  child.unref();
  pipe.unref();
  return {
    done(): void {
      // Held until the word is written, so the process does not exit before.
      pipe.ref();
      pipe.end('done\n');
    },
  };
}

/**
 * Runs a prepared, claimed container to its end and cleans up after it;
 * resolves to its exit status. `run` starts it in the foreground (and
 * removes what its runner leaves itself, such as runc state).
 */
export async function runToEnd(paths: Paths, claim: ContainerClaim, rm: boolean, run: () => Promise<number>): Promise<number> {
  const watcher = rm ? startRmWatcher(paths) : undefined;
  claim.started();
  let status: number | undefined;
  try {
    status = await inForeground(run);
    testPause('exit');
    return status;
  } finally {
    finishing();
    if (rm) await claim.remove();
    else await claim.keep(status ?? 1);
    watcher?.done();
  }
}
