// The one runc driver, shaped like go-runc (what containerd-shim-runc-v2
// uses): global flags from a config, one method per runc command, typed
// errors. Every call is a short-lived child process; `runForeground` is the
// only one that shares our stdio with the container.
//
// Errors: with `log` set, runc writes its errors as JSON lines to that file
// (go-runc's --log <bundle>/log.json --log-format json) and the last
// level=error line is the message, as containerd reads it; without, runc's
// logrus lines on stderr are parsed. Either way the error is a RuncError
// whose kind says NotFound / AlreadyExists when runc said so.
import { spawn, type StdioOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { RuntimeError, type ErrorKind } from '../errors.js';

export interface RuncConfig {
  /** runc binary; "runc" from PATH by default. */
  binary: string;
  /** runc --root: where runc keeps its own state. */
  root: string;
  /** runc --log FILE --log-format json; errors are read back from it. */
  log?: string;
  systemdCgroup?: boolean;
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

/** How a create/exec child gets the container process's stdio. */
export interface RuncIO {
  /** fds 0-2 of the runc child, which become the process's. */
  stdio: StdioOptions;
  /** Called once runc is spawned (the caller closes its copies of the child's ends). */
  onSpawned?(): void;
  /** --console-socket: runc sends the pty master there instead. */
  consoleSocket?: string;
}

export interface CreateOptions {
  pidFile: string;
  io?: RuncIO;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  /** --preserve-fds N: the N descriptors after stdio in `io.stdio` reach the container's init as fds 3… */
  preserveFds?: number;
}

export interface ExecOptions {
  pidFile: string;
  io?: RuncIO;
}

/** runc failed; `output` is what it printed. */
export class RuncError extends RuntimeError {
  constructor(
    message: string,
    readonly output: string,
    kind: ErrorKind = 'Internal',
  ) {
    super(message, { kind });
  }
}

/** What runc's message says about the container (go-runc/containerd's errdefs checks). */
export function runcErrorKind(msg: string): ErrorKind {
  if (/does not exist|container not found/.test(msg)) return 'NotFound';
  if (/already exists/.test(msg)) return 'AlreadyExists';
  return 'Internal';
}

/** The one rule for a child's end: its code, or 128+N when signal N ended it. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0);
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

/** containerd pkg/process/utils.go getLastRuntimeError: the last level=error line of log.json. */
export function lastRuntimeError(logJson: string): string {
  let msg = '';
  for (const line of logJson.split('\n')) {
    if (!line.trim()) continue;
    try {
      const rec = JSON.parse(line) as { level?: string; msg?: string };
      if (rec.level === 'error' && typeof rec.msg === 'string') msg = rec.msg;
    } catch {
      return 'unable to retrieve OCI runtime error';
    }
  }
  return msg;
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
 * harmless). Resolves to runc's exit status.
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
      resolve(exitStatus(code, signal));
    });
  });
}

function readPid(path: string): number {
  const text = readFileSync(path, 'utf8').trim();
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) throw new RuncError(`bad pid file ${path}: ${JSON.stringify(text)}`, '');
  return pid;
}

export class Runc {
  constructor(readonly cfg: RuncConfig) {}

  private globals(): string[] {
    return [
      '--root',
      this.cfg.root,
      ...(this.cfg.log !== undefined ? ['--log', this.cfg.log, '--log-format', 'json'] : []),
      ...(this.cfg.systemdCgroup ? ['--systemd-cgroup'] : []),
    ];
  }

  private async failure(command: string, output: string): Promise<RuncError> {
    let msg: string;
    if (this.cfg.log !== undefined) {
      const text = await readFile(this.cfg.log, 'utf8').catch(() => '');
      msg = lastRuntimeError(text) || output.trim() || 'unknown error';
    } else {
      msg = runcErrorMessage(output);
    }
    return new RuncError(`OCI runtime ${command} failed: ${msg}`, output, runcErrorKind(msg));
  }

  private spawnFailed(err: Error): RuntimeError {
    return new RuntimeError(`cannot run ${this.cfg.binary}: ${err.message}`);
  }

  /** runc with the given stdio (create, exec): resolves to its exit status. */
  private spawnWithIO(args: string[], io: RuncIO | undefined): Promise<number> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.cfg.binary, [...this.globals(), ...args], { stdio: io?.stdio ?? 'ignore', env: runcEnv() });
      io?.onSpawned?.();
      child.once('error', (err) => reject(this.spawnFailed(err)));
      child.once('exit', (code, signal) => resolve(exitStatus(code, signal)));
    });
  }

  /** runc with its output captured; throws a RuncError unless it succeeds. */
  private run(args: string[], input?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.cfg.binary, [...this.globals(), ...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: runcEnv() });
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('error', (err) => reject(this.spawnFailed(err)));
      child.once('close', (code, signal) => {
        if (exitStatus(code, signal) === 0) resolve(stdout);
        else void this.failure(args[0] ?? 'runc', stderr || stdout).then(reject);
      });
      if (input !== undefined && child.stdin) {
        // runc may exit before reading its input (a failed command): that is
        // its answer, reported through the exit status, not an EPIPE crash.
        child.stdin.on('error', () => undefined);
        child.stdin.end(input);
      }
    });
  }

  /** `runc create`; resolves to the init pid from the pid file. */
  async create(id: string, bundle: string, opts: CreateOptions): Promise<number> {
    const args = ['create', '--bundle', bundle, '--pid-file', opts.pidFile];
    if (opts.io?.consoleSocket) args.push('--console-socket', opts.io.consoleSocket);
    if (opts.noPivot) args.push('--no-pivot');
    if (opts.noNewKeyring) args.push('--no-new-keyring');
    if (opts.preserveFds) args.push('--preserve-fds', String(opts.preserveFds));
    args.push(id);
    const code = await this.spawnWithIO(args, opts.io);
    if (code !== 0) throw await this.failure('create', `exit status ${code}`);
    return readPid(opts.pidFile);
  }

  /** `runc exec --process F --detach --pid-file P ID`; resolves to the pid. */
  async exec(id: string, processFile: string, opts: ExecOptions): Promise<number> {
    const args = ['exec', '--process', processFile];
    if (opts.io?.consoleSocket) args.push('--console-socket', opts.io.consoleSocket);
    args.push('--detach', '--pid-file', opts.pidFile, id);
    const code = await this.spawnWithIO(args, opts.io);
    if (code !== 0) throw await this.failure('exec', `exit status ${code}`);
    return readPid(opts.pidFile);
  }

  /** `runc run` in the foreground with our stdio; resolves to the container's exit status. */
  runForeground(id: string, bundle: string): Promise<number> {
    return runWithOurStdio(this.cfg.binary, [...this.globals(), 'run', '--bundle', bundle, id]);
  }

  async start(id: string): Promise<void> {
    await this.run(['start', id]);
  }

  async kill(id: string, signal: number | string, opts: { all?: boolean } = {}): Promise<void> {
    await this.run(['kill', ...(opts.all ? ['--all'] : []), id, String(signal)]);
  }

  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.run(['delete', ...(opts.force ? ['--force'] : []), id]);
  }

  async pause(id: string): Promise<void> {
    await this.run(['pause', id]);
  }

  async resume(id: string): Promise<void> {
    await this.run(['resume', id]);
  }

  async ps(id: string): Promise<number[]> {
    return (JSON.parse(await this.run(['ps', '--format', 'json', id])) as number[] | null) ?? [];
  }

  async update(id: string, resourcesJson: string): Promise<void> {
    await this.run(['update', '--resources', '-', id], resourcesJson);
  }

  async state(id: string): Promise<RuncState> {
    return JSON.parse(await this.run(['state', id])) as RuncState;
  }

  async list(): Promise<RuncState[]> {
    return (JSON.parse(await this.run(['list', '--format', 'json'])) as RuncState[] | null) ?? [];
  }
}
