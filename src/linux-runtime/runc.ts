// Drives the runc binary. Every call is a short-lived child process; the
// foreground `run` is the only one that shares our stdio with the container.
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { RuntimeError, NotFoundError } from '../errors.js';

export interface RuncOptions {
  /** runc binary; default "runc" from PATH. */
  binary?: string;
  /** runc --root: where runc keeps its own state. */
  root: string;
  /** Extra global flags (e.g. --systemd-cgroup). */
  globalArgs?: string[];
}

export interface RuncState {
  ociVersion: string;
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
}

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** runc prints logrus lines (`time="…" level=error msg="…"`); keep only the message. */
export function runcErrorMessage(stderr: string): string {
  const lines = stderr.trim().split('\n').filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] ?? '';
    const m = /level=error msg="((?:[^"\\]|\\.)*)"/.exec(line);
    if (m?.[1] !== undefined) return m[1].replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  }
  return lines.at(-1) ?? 'runc failed without a message';
}

/** Environment for runc: ours minus NOTIFY_SOCKET (we are not the unit systemd waits for). */
export function runcEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NOTIFY_SOCKET;
  return env;
}

const RELAYED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;

/**
 * Runs runc with our stdio: fds 0-2 (and `extraFds` more, for --preserve-fds)
 * reach the container unchanged; nothing else of ours does (Node opens every
 * other fd close-on-exec). Signals sent to us are relayed to runc, which
 * relays them to the container (a terminal's Ctrl-C reaches both, which is
 * harmless). Resolves to runc's exit status, 128+N if it was killed by N.
 */
export function runWithOurStdio(binary: string, argv: string[], extraFds = 0): Promise<number> {
  const stdio: (number | 'inherit')[] = ['inherit', 'inherit', 'inherit'];
  for (let fd = 3; fd < 3 + extraFds; fd++) stdio.push(fd);
  return new Promise((resolve, reject) => {
    const child = spawn(binary, argv, { stdio, env: runcEnv() });
    const relay = (sig: NodeJS.Signals) => child.kill(sig);
    for (const s of RELAYED_SIGNALS) process.on(s, relay);
    const stopRelaying = () => {
      for (const s of RELAYED_SIGNALS) process.off(s, relay);
    };
    child.once('error', (err) => {
      stopRelaying();
      reject(new RuntimeError(`cannot run ${binary}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      stopRelaying();
      resolve(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0));
    });
  });
}

export class Runc {
  private readonly binary: string;
  constructor(private readonly opts: RuncOptions) {
    this.binary = opts.binary ?? 'runc';
  }

  private argv(args: string[]): string[] {
    return ['--root', this.opts.root, ...(this.opts.globalArgs ?? []), ...args];
  }

  private capture(args: string[], input?: string): Promise<Captured> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.binary, this.argv(args), { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: runcEnv() });
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('error', (err) => reject(new RuntimeError(`cannot run ${this.binary}: ${err.message}`)));
      child.once('close', (code, signal) => resolve({ code: code ?? 128 + (signal ? 9 : 0), stdout, stderr }));
      if (input !== undefined && child.stdin) {
        // runc may exit before reading its input (a failed command): that is
        // its answer, reported through the exit status, not an EPIPE crash.
        child.stdin.on('error', () => undefined);
        child.stdin.end(input);
      }
    });
  }

  private async check(args: string[], input?: string): Promise<string> {
    const r = await this.capture(args, input);
    if (r.code !== 0) {
      const msg = runcErrorMessage(r.stderr || r.stdout);
      if (/does not exist/.test(msg)) throw new NotFoundError(`runc ${args[0]}: ${msg}`);
      throw new RuntimeError(`runc ${args[0]}: ${msg}`);
    }
    return r.stdout;
  }

  /** `runc run` in the foreground with our stdio; resolves to the container's exit status. */
  runForeground(id: string, bundle: string): Promise<number> {
    return runWithOurStdio(this.binary, this.argv(['run', '--bundle', bundle, id]));
  }

  async state(id: string): Promise<RuncState> {
    return JSON.parse(await this.check(['state', id])) as RuncState;
  }

  async kill(id: string, signal: number | string, all = false): Promise<void> {
    await this.check(['kill', ...(all ? ['--all'] : []), id, String(signal)]);
  }

  async delete(id: string, force = false): Promise<void> {
    await this.check(['delete', ...(force ? ['--force'] : []), id]);
  }

  async list(): Promise<RuncState[]> {
    const out = await this.check(['list', '--format', 'json']);
    return (JSON.parse(out) as RuncState[] | null) ?? [];
  }

  async version(): Promise<string> {
    return (await this.check(['--version'])).split('\n')[0] ?? '';
  }
}
