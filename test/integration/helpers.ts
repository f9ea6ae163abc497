// Shared plumbing for integration tests: a private Tugboat root per test file,
// a way to run the real CLI (which drives the real runc), and a cleanup that
// removes every container, mount and file the file created, even on failure.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect } from 'vitest';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(REPO, 'test', 'fixtures', 'out');
export const EXAMPLES = join(REPO, 'examples', 'rust-wasm', 'out');
/** The CLI under test; TUGBOAT_TEST_BIN points the tests at another build (e.g. to show a test fails before a fix). */
export const TUGBOAT = process.env.TUGBOAT_TEST_BIN ?? join(REPO, 'bin', 'tugboat');
export const WASM = (tag: string) => `oci:${join(FIXTURES, 'wasm')}:${tag}`;
export const BUSYBOX = `oci:${join(FIXTURES, 'busybox')}:latest`;

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** ms from the signal of RunOpts.signal to the command's end. */
  killMs?: number;
}

export interface RunOpts {
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Send this signal to tugboat once stdout contains `after`. */
  signal?: { name: NodeJS.Signals; after: string };
  /** Leave stdin open (a guest reading it blocks) instead of writing `input` and closing it. */
  keepStdin?: boolean;
}

/** The single line of a failure's stderr (asserting there is exactly one). */
export function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  return lines[0]!;
}

export function exec(cmd: string, args: string[], opts: RunOpts = {}): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    let stdout = '';
    let stderr = '';
    let signalledAt: number | undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (opts.signal && signalledAt === undefined && stdout.includes(opts.signal.after)) {
        signalledAt = performance.now();
        child.kill(opts.signal.name);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, sig) => {
      const killMs = signalledAt === undefined ? {} : { killMs: performance.now() - signalledAt };
      resolvePromise({ code: code ?? 128 + (sig === 'SIGKILL' ? 9 : 15), stdout, stderr, ...killMs });
    });
    // The command may exit without reading its input; that is not a test failure.
    child.stdin.on('error', () => undefined);
    if (opts.keepStdin) child.once('close', () => child.stdin.destroy());
    else child.stdin.end(opts.input ?? '');
  });
}

/**
 * For commands that leave a process behind holding their stdout (runc create,
 * exec --detach): output goes to files, and the command's own exit is awaited
 * rather than the end of its output.
 */
export function execDetached(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'tugboat-out-'));
  const out = openSync(join(dir, 'out'), 'w');
  const err = openSync(join(dir, 'err'), 'w');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', out, err] });
    closeSync(out);
    closeSync(err);
    child.once('error', reject);
    child.once('exit', (code, sig) => {
      const r = { code: code ?? 128 + (sig === 'SIGKILL' ? 9 : 15), stdout: readFileSync(join(dir, 'out'), 'utf8'), stderr: readFileSync(join(dir, 'err'), 'utf8') };
      rmSync(dir, { recursive: true, force: true });
      resolvePromise(r);
    });
  });
}

export class TugboatSandbox {
  readonly root: string;
  /** Deleted by cleanup(): the root itself, or the directory holding it. */
  private readonly top: string;
  /**
   * `fresh`: the root does not exist yet (Tugboat creates it) and its parent
   * is 0755, as /var/lib is: what another local user would see.
   */
  constructor(prefix = 'tugboat-it-', opts: { fresh?: boolean } = {}) {
    this.top = mkdtempSync(join(tmpdir(), prefix));
    if (opts.fresh) chmodSync(this.top, 0o755);
    this.root = opts.fresh ? join(this.top, 'root') : this.top;
  }

  run(args: string[], opts: RunOpts = {}): Promise<Result> {
    return exec(TUGBOAT, ['--root', this.root, ...args], opts);
  }

  /** Removes runc containers, unmounts everything under the root, deletes the root. */
  cleanup(): void {
    const runcRoot = join(this.root, 'runc');
    try {
      const list = JSON.parse(execFileSync('runc', ['--root', runcRoot, 'list', '--format', 'json'], { encoding: 'utf8' }) || 'null') as
        | { id: string }[]
        | null;
      for (const c of list ?? []) execFileSync('runc', ['--root', runcRoot, 'delete', '--force', c.id], { stdio: 'ignore' });
    } catch {
      // no runc state: nothing ran
    }
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => m !== undefined && m.startsWith(this.root))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    rmSync(this.top, { recursive: true, force: true });
  }

  /** Paths of mounts still under the root (for leak assertions). */
  mounts(): string[] {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => m !== undefined && m.startsWith(this.root));
  }
}

export interface RunSandbox {
  /** A private Tugboat root. */
  tb: TugboatSandbox;
  /** A host directory for volumes. */
  vol: string;
}

/**
 * The set-up of a `tugboat run` test file: a private root and a volume
 * directory, made before its tests and removed (containers, mounts, files)
 * after them, even on failure.
 */
export function useRunSandbox(): RunSandbox {
  const s = {} as RunSandbox;
  beforeAll(() => {
    s.tb = new TugboatSandbox();
    s.vol = mkdtempSync(join(tmpdir(), 'tugboat-vol-'));
  });
  afterAll(() => {
    s.tb?.cleanup();
    if (s.vol) rmSync(s.vol, { recursive: true, force: true });
  });
  return s;
}

interface Desc {
  mediaType: string;
  digest: string;
}

/** Every blob every listed image reaches exists and is whole (size); returns the names. */
export function fsck(root: string): string[] {
  const blobs = join(root, 'images', 'blobs', 'sha256');
  const read = (d: Desc): Buffer => {
    const path = join(blobs, d.digest.slice(7));
    expect(existsSync(path), `blob ${d.digest} of a listed image`).toBe(true);
    return readFileSync(path);
  };
  const visit = (d: Desc): void => {
    const body = JSON.parse(read(d).toString()) as { manifests?: Desc[]; config?: Desc; layers?: Desc[] };
    for (const m of body.manifests ?? []) visit(m);
    if (body.config) read(body.config);
    for (const l of body.layers ?? []) read(l);
  };
  const index = JSON.parse(readFileSync(join(root, 'images', 'index.json'), 'utf8')) as { manifests: (Desc & { annotations: Record<string, string> })[] };
  for (const m of index.manifests) visit(m);
  return index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']!).sort();
}

/** A port that was free on loopback a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** What the descriptors of process `pid` are (readlink of /proc/PID/fd/N). */
export function fdLinks(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((n) => {
    try {
      return [readlinkSync(`/proc/${pid}/fd/${n}`)];
    } catch {
      return []; // closed meanwhile
    }
  });
}

/** The process's seccomp mode as /proc/<pid>/status says it ('2': under a filter), or undefined. */
export function seccompMode(pid: number): string | undefined {
  return /^Seccomp:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
}

/** A Wasm container's host process: its init (tini) starts it as its one child. */
export function wasmHostBelow(init: number): number {
  const child = Number(readFileSync(`/proc/${init}/task/${init}/children`, 'utf8').trim().split(/\s+/)[0]);
  if (!(child > 0)) throw new Error(`no host process below the container's init ${init}`);
  // Checked, so that what a test asserts of the host is never asserted of another process.
  if (!readFileSync(`/proc/${child}/cmdline`, 'latin1').includes('node')) throw new Error(`${child}, below the container's init, is not the Wasm host (Node)`);
  return child;
}
