// Running runc with our exact stdio. The container process inherits fds 0-2
// of `create`/`exec` unchanged (they are the shim's pipes or console), plus
// `--preserve-fds N` more; nothing else of ours reaches it (Node opens every
// other fd close-on-exec).
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { RuntimeError } from '../../errors.js';

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;

export function runcBinary(explicit?: string): string {
  return explicit ?? process.env.TUGBOAT_RUNC ?? 'runc';
}

function runcEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  // We are not the unit systemd waits for.
  delete env.NOTIFY_SOCKET;
  return env;
}

/** Runs runc with `argv`, our stdio and `extraFds` preserved fds; resolves to its exit status. */
export function runRunc(binary: string, argv: string[], extraFds = 0): Promise<number> {
  const stdio: (number | 'inherit')[] = ['inherit', 'inherit', 'inherit'];
  for (let fd = 3; fd < 3 + extraFds; fd++) stdio.push(fd);
  return new Promise((resolve, reject) => {
    const child = spawn(binary, argv, { stdio, env: runcEnv() });
    const relay = (sig: NodeJS.Signals) => child.kill(sig);
    for (const s of FORWARDED) process.on(s, relay);
    child.once('error', (err) => reject(new RuntimeError(`cannot run ${binary}: ${err.message}`)));
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED) process.off(s, relay);
      resolve(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0));
    });
  });
}
