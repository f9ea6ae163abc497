// runc invoked exactly as go-runc does for containerd-shim-runc-v2:
//   runc --root <root>/<ns> --log <bundle>/log.json --log-format json [--systemd-cgroup]
//        create --bundle B --pid-file <bundle>/init.pid [--no-pivot] [--no-new-keyring] ID
// with the process's stdio as fds 0-2 of the runc child (real pipes or /dev/null).
// Errors carry runc's last error line from log.json ("OCI runtime create failed: …").
import { spawn, type StdioOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runcEnv } from '../linux-runtime/runc.js';

export const DEFAULT_RUNC_ROOT = '/run/containerd/runc';

export interface RuncConfig {
  binary: string;
  /** runc --root: <Options.root or /run/containerd/runc>/<namespace> */
  root: string;
  systemdCgroup: boolean;
  noPivot: boolean;
  noNewKeyring: boolean;
}

export class RuncError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
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

export class RuncCommands {
  readonly logPath: string;
  constructor(
    readonly cfg: RuncConfig,
    /** The caller's bundle: log.json and pid files live there. */
    readonly bundle: string,
  ) {
    this.logPath = join(bundle, 'log.json');
  }

  private globals(): string[] {
    return ['--root', this.cfg.root, '--log', this.logPath, '--log-format', 'json', ...(this.cfg.systemdCgroup ? ['--systemd-cgroup'] : [])];
  }

  private async runtimeError(what: string, fallback: string): Promise<RuncError> {
    let text = '';
    try {
      text = await readFile(this.logPath, 'utf8');
    } catch {
      // no log
    }
    const msg = lastRuntimeError(text) || fallback.trim() || 'unknown error';
    return new RuncError(`OCI runtime ${what} failed: ${msg}`, fallback);
  }

  /** Spawn with the given stdio; resolves with the exit code once runc exits. */
  private spawnWithIO(args: string[], stdio: StdioOptions, onSpawned: () => void): Promise<number> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.cfg.binary, [...this.globals(), ...args], { stdio, env: runcEnv() });
      onSpawned();
      child.once('error', reject);
      child.once('exit', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15)));
    });
  }

  private capture(args: string[], input?: string): Promise<{ code: number; out: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.cfg.binary, [...this.globals(), ...args], {
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        env: runcEnv(),
      });
      let out = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code: code ?? 1, out }));
      if (input !== undefined && child.stdin) {
        child.stdin.on('error', () => undefined);
        child.stdin.end(input);
      }
    });
  }

  private async check(what: string, args: string[], input?: string): Promise<string> {
    const r = await this.capture(args, input);
    if (r.code !== 0) throw await this.runtimeError(what, r.out);
    return r.out;
  }

  private readPid(path: string): number {
    const text = readFileSync(path, 'utf8').trim();
    const pid = Number(text);
    if (!Number.isInteger(pid) || pid <= 0) throw new RuncError(`bad pid file ${path}: ${JSON.stringify(text)}`, '');
    return pid;
  }

  /** `runc create`; returns the init pid from the pid file. */
  async create(id: string, runBundle: string, stdio: StdioOptions, onSpawned: () => void, consoleSocket?: string): Promise<number> {
    const pidFile = join(this.bundle, 'init.pid');
    const args = ['create', '--bundle', runBundle, '--pid-file', pidFile];
    if (consoleSocket) args.push('--console-socket', consoleSocket);
    if (this.cfg.noPivot) args.push('--no-pivot');
    if (this.cfg.noNewKeyring) args.push('--no-new-keyring');
    args.push(id);
    const code = await this.spawnWithIO(args, stdio, onSpawned);
    if (code !== 0) throw await this.runtimeError('create', `exit status ${code}`);
    return this.readPid(pidFile);
  }

  /** `runc exec --process F --detach --pid-file <bundle>/<execId>.pid ID`; returns the pid. */
  async exec(id: string, execId: string, processFile: string, stdio: StdioOptions, onSpawned: () => void, consoleSocket?: string): Promise<number> {
    const pidFile = join(this.bundle, `${execId}.pid`);
    const args = ['exec', '--process', processFile];
    if (consoleSocket) args.push('--console-socket', consoleSocket);
    args.push('--detach', '--pid-file', pidFile, id);
    const code = await this.spawnWithIO(args, stdio, onSpawned);
    if (code !== 0) throw await this.runtimeError('exec', `exit status ${code}`);
    return this.readPid(pidFile);
  }

  async start(id: string): Promise<void> {
    await this.check('start', ['start', id]);
  }

  async kill(id: string, signal: number, all: boolean): Promise<void> {
    await this.check('kill', ['kill', ...(all ? ['--all'] : []), id, String(signal)]);
  }

  async delete(id: string, force: boolean): Promise<void> {
    await this.check('delete', ['delete', ...(force ? ['--force'] : []), id]);
  }

  async ps(id: string): Promise<number[]> {
    const out = await this.check('ps', ['ps', '--format', 'json', id]);
    return (JSON.parse(out) as number[] | null) ?? [];
  }

  async pause(id: string): Promise<void> {
    await this.check('pause', ['pause', id]);
  }

  async resume(id: string): Promise<void> {
    await this.check('resume', ['resume', id]);
  }

  async update(id: string, resourcesJson: string): Promise<void> {
    await this.check('update', ['update', '--resources', '-', id], resourcesJson);
  }
}
