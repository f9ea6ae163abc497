// Shared plumbing for the real daemons (containerd, dockerd, registry) that the
// integration tests start with private state: spawning with a log file,
// readiness polling, /proc scans, unmounting, and a teardown that also runs on
// process exit and signals, plus a reaper for directories left by a test
// process that was SIGKILLed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { processStartTime } from '../../../src/owner.js';

/** Every harness directory is `/tmp/tugboat-d-XXXXXX`: fixed /tmp (not $TMPDIR) keeps socket paths short. */
export const TEMP_PREFIX = '/tmp/tugboat-d-';
export const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOpts {
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Environment for the clients and daemons: the caller's, minus anything that would redirect docker/ctr elsewhere. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}, pathPrepend: string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(DOCKER_|CONTAINERD_|BUILDKIT_|NOTIFY_SOCKET$)/.test(k)) continue;
    env[k] = v;
  }
  const path = [...pathPrepend, ...(process.env.PATH ?? '').split(':').filter(Boolean), ...SYSTEM_PATH];
  env.PATH = [...new Set(path)].join(':');
  return { ...env, ...extra };
}

/** Runs a command to completion. A timeout kills it and yields code 124 (like timeout(1)). */
export function run(cmd: string, args: string[], opts: ExecOpts = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => {}); // EPIPE if the command does not read its input
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      if (timedOut) resolve({ code: 124, stdout, stderr: `${stderr}\n[harness] ${cmd} ${args.join(' ')}: timed out after ${opts.timeoutMs} ms` });
      else resolve({ code: code ?? 128 + signalNumber(sig), stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export function runSync(cmd: string, args: string[], opts: ExecOpts = {}): ExecResult {
  const r = spawnSync(cmd, args, { env: opts.env ?? process.env, input: opts.input ?? '', encoding: 'utf8', timeout: opts.timeoutMs, killSignal: 'SIGKILL' });
  return { code: r.status ?? (r.error ? 127 : 128 + signalNumber(r.signal)), stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? `\n[harness] ${r.error.message}` : '') };
}

function signalNumber(sig: NodeJS.Signals | null): number {
  return sig === 'SIGKILL' ? 9 : sig === 'SIGINT' ? 2 : 15;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves true if p settles within ms, false otherwise; never leaves a timer behind (it would keep the process alive). */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const, () => true as const), t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Blocking sleep, for the exit-time teardown where the event loop no longer runs. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// ---------------------------------------------------------------------------
// /proc

export interface ProcInfo {
  pid: number;
  ppid: number;
  argv: string[];
  exe: string;
}

export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.at(-1) === '') argv.pop();
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // comm may contain spaces and parentheses: fields start after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      let exe = '';
      try {
        exe = readlinkSync(`/proc/${pid}/exe`);
      } catch {
        // kernel thread or already gone
      }
      out.push({ pid, ppid, argv, exe });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** The pids plus all their descendants (by ppid), from one snapshot. */
export function withDescendants(pids: number[], procs = listProcesses()): number[] {
  const set = new Set(pids);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!set.has(p.pid) && set.has(p.ppid)) {
        set.add(p.pid);
        grew = true;
      }
    }
  }
  return [...set];
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie still answers kill(0); it is dead for our purposes
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Start time of a process in clock ticks since boot (field 22), to tell a reused pid apart. */
export const startTime = processStartTime;

function ancestorsOfSelf(): Set<number> {
  const set = new Set<number>([process.pid]);
  let pid = process.ppid;
  for (let i = 0; i < 64 && pid > 1; i++) {
    set.add(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return set;
}

export function killPids(pids: number[], signal: NodeJS.Signals): void {
  const protectedPids = ancestorsOfSelf();
  for (const pid of pids) {
    if (protectedPids.has(pid) || pid <= 1) continue;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

export function waitGoneSync(pids: number[], timeoutMs: number): number[] {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(isAlive);
  while (left.length && Date.now() < deadline) {
    sleepSync(50);
    left = left.filter(isAlive);
  }
  return left;
}

// ---------------------------------------------------------------------------
// mounts

/** Mount points under dir, in mount order (so reverse order unmounts children first). */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && m !== '')
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(prefix));
}

export function unmountAllSync(dir: string): string[] {
  for (let pass = 0; pass < 5; pass++) {
    const mounts = mountsUnder(dir);
    if (!mounts.length) return [];
    // Lazy: a busy mount (a process still holding it) must not block the teardown.
    for (const m of [...new Set(mounts)].reverse()) runSync('umount', ['-l', m], { timeoutMs: 10_000 });
  }
  return mountsUnder(dir);
}

// ---------------------------------------------------------------------------
// daemons

export interface DaemonSpec {
  name: string;
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  logPath: string;
  cwd?: string;
}

/** A long-running process with stdout+stderr appended to a log file, in its own session. */
export class Daemon {
  readonly name: string;
  readonly logPath: string;
  readonly child: ChildProcess;
  readonly pid: number;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;

  constructor(spec: DaemonSpec) {
    this.name = spec.name;
    this.logPath = spec.logPath;
    if (spec.cmd.startsWith('/') && !existsSync(spec.cmd)) throw new Error(`${spec.cmd} is missing: run scripts/setup-daemons.sh (installs Debian's docker.io, containerd, docker-registry)`);
    const fd = openSync(spec.logPath, 'a');
    try {
      // detached: own session, so a Ctrl-C on the terminal reaches only vitest,
      // whose handlers then stop the daemons in order (dockerd before containerd).
      this.child = spawn(spec.cmd, spec.args, { env: spec.env, cwd: spec.cwd, stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    if (this.child.pid === undefined) throw new Error(`${spec.name}: could not spawn ${spec.cmd}`);
    this.pid = this.child.pid;
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve();
      });
      this.child.once('error', (e) => {
        this.exitInfo = { code: 127, signal: null };
        writeFileSync(this.logPath, `\n[harness] spawn error: ${e.message}\n`, { flag: 'a' });
        resolve();
      });
    });
    // Do not keep the test process alive for the daemon; the exit hook stops it.
    this.child.unref();
  }

  get running(): boolean {
    return this.exitInfo === undefined && isAlive(this.pid);
  }

  exitDescription(): string {
    if (!this.exitInfo) return 'still running';
    return this.exitInfo.signal ? `killed by ${this.exitInfo.signal}` : `exited with code ${this.exitInfo.code}`;
  }

  logs(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  tail(n = 30): string {
    return this.logs().trimEnd().split('\n').slice(-n).join('\n');
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs: number): Promise<void> {
    if (!this.running) return;
    killPids([this.pid], 'SIGTERM');
    if (!(await settlesWithin(this.exited, graceMs))) {
      killPids([this.pid], 'SIGKILL');
      await settlesWithin(this.exited, 5_000);
    }
  }

  stopSync(graceMs: number): void {
    if (!isAlive(this.pid)) return;
    killPids([this.pid], 'SIGTERM');
    if (waitGoneSync([this.pid], graceMs).length) {
      killPids([this.pid], 'SIGKILL');
      waitGoneSync([this.pid], 5_000);
    }
  }
}

/**
 * Polls `probe` until it returns true. Fails early if the daemon exits, and on
 * timeout; both errors carry the last 30 lines of the daemon's log.
 */
export async function waitReady(daemon: Daemon, what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  // The error is read after the harness dir (and the log in it) is gone, so it carries the lines, not the path.
  for (;;) {
    const ok = await Promise.race([probe().catch(() => false), daemon.exited.then(() => false)]);
    if (ok) return Date.now() - t0;
    if (!daemon.running) {
      throw new Error(`${daemon.name} ${daemon.exitDescription()} before ${what}; last 30 lines of its log:\n${daemon.tail(30)}`);
    }
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`${daemon.name}: ${what} not ready after ${timeoutMs} ms; last 30 lines of its log:\n${daemon.tail(30)}`);
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------
// harness directory, owner record, teardown registry

export interface OwnerRecord {
  pid: number;
  start: string | undefined;
  bridge?: string;
  subnet?: string;
  containerdSocket?: string;
  /** containerd namespaces seen at stop (their cgroup parents are removed when empty) */
  namespaces?: string[];
  /** runtime name -> binary, for `<binary> --root … delete --force` of docker's per-runtime state */
  runtimes?: Record<string, string>;
}

export function ownerPath(dir: string): string {
  return join(dir, 'owner.json');
}

export function readOwner(dir: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(ownerPath(dir), 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

export function updateOwner(dir: string, patch: Partial<OwnerRecord>): void {
  const cur = readOwner(dir) ?? { pid: process.pid, start: startTime(process.pid) };
  writeFileSync(ownerPath(dir), JSON.stringify({ ...cur, ...patch }));
}

/** Creates the harness directory (after reaping any left by dead test processes). */
export function makeHarnessDir(): string {
  reapStaleDirs();
  const dir = mkdtempSync(TEMP_PREFIX);
  updateOwner(dir, { pid: process.pid, start: startTime(process.pid) });
  return dir;
}

/** Tears down directories whose owning test process is gone (it was SIGKILLed, so its hooks never ran). */
export function reapStaleDirs(): void {
  let names: string[];
  try {
    names = readdirSync('/tmp');
  } catch {
    return;
  }
  for (const n of names) {
    const dir = join('/tmp', n);
    if (!dir.startsWith(TEMP_PREFIX)) continue;
    const owner = readOwner(dir);
    if (!owner) {
      // mkdtemp'd but the record not yet written (or not ours): leave young ones alone
      try {
        if (Date.now() - statSync(dir).mtimeMs < 10 * 60_000) continue;
      } catch {
        continue;
      }
    } else if (isAlive(owner.pid) && startTime(owner.pid) === owner.start) continue;
    try {
      teardownDirSync(dir);
    } catch (e) {
      process.stderr.write(`[harness] could not reap ${dir}: ${(e as Error).message}\n`);
    }
  }
}

/** runc's socket name for a task shim: hex(sha256(<containerd address>/<ns>/<id>)) under /run/containerd/s (see protocols.md §1.3). */
export function shimSocketPath(containerdAddress: string, ns: string, id: string): string {
  return `/run/containerd/s/${createHash('sha256').update(join(containerdAddress, ns, id)).digest('hex')}`;
}

/** `-address X` of a shim's argv. */
function shimAddress(argv: string[]): string | undefined {
  const i = argv.indexOf('-address');
  return i >= 0 ? argv[i + 1] : undefined;
}

/**
 * The final, synchronous part of every teardown: kill whatever still runs for
 * this directory, delete leftover runc state, unmount, remove the bridge and
 * iptables rules, delete the directory. Safe to call repeatedly.
 */
export function teardownDirSync(dir: string): string[] {
  const problems: string[] = [];
  const owner = readOwner(dir);
  const sock = owner?.containerdSocket;

  // 1. Processes: anything naming the dir, shims serving our containerd, and all
  //    their descendants (container processes reparented to the shims,
  //    docker-proxy children of dockerd).
  const procs = listProcesses();
  const roots = procs
    .filter((p) => p.argv.some((a) => a.includes(dir)) || (sock !== undefined && /containerd-shim/.test(p.argv[0] ?? '') && shimAddress(p.argv) === sock))
    .map((p) => p.pid);
  const victims = withDescendants(roots, procs);
  if (victims.length) {
    killPids(victims, 'SIGKILL');
    const left = waitGoneSync(victims, 5_000);
    if (left.length) problems.push(`processes survived SIGKILL: ${left.join(' ')}`);
  }

  // 2. OCI runtime state the killed shims left: under our dir (docker's
  //    runtime-<name>/<ns>) and in containerd's fixed /run/containerd/runc/<ns>
  //    for tasks whose bundle lives in our dir.
  const seenNamespaces = new Set<string>();
  const runtimes = owner?.runtimes ?? {};
  const execRoot = join(dir, 'docker', 'exec');
  for (const rt of safeReaddir(execRoot).filter((n) => n.startsWith('runtime-'))) {
    const bin = runtimes[rt.slice('runtime-'.length)] ?? 'runc';
    for (const ns of safeReaddir(join(execRoot, rt))) {
      for (const id of safeReaddir(join(execRoot, rt, ns))) {
        runSync(bin, ['--root', join(execRoot, rt, ns), 'delete', '--force', id], { timeoutMs: 20_000 });
        if (sock) rmSync(shimSocketPath(sock, ns, id), { force: true });
      }
    }
  }
  for (const ns of safeReaddir('/run/containerd/runc')) {
    for (const id of safeReaddir(join('/run/containerd/runc', ns))) {
      let state = '';
      try {
        state = readFileSync(join('/run/containerd/runc', ns, id, 'state.json'), 'utf8');
      } catch {
        continue;
      }
      if (!state.includes(dir)) continue;
      seenNamespaces.add(ns);
      runSync('runc', ['--root', join('/run/containerd/runc', ns), 'delete', '--force', id], { timeoutMs: 20_000 });
      if (sock) rmSync(shimSocketPath(sock, ns, id), { force: true });
    }
  }

  // 3. Mounts (overlay rootfs, netns bind mounts, docker's private data-root bind).
  const stuck = unmountAllSync(dir);

  // 4. What the daemons insist on creating outside the dir: empty cgroup
  //    parents (/docker, /<namespace>) and /run/docker, /run/containerd/{s,runc}.
  //    Only removed while empty and while no other dockerd/containerd runs
  //    (rmdir refuses non-empty dirs and cgroups with children anyway).
  const others = listProcesses().filter((p) => /\/(dockerd|containerd)$/.test(p.exe));
  if (!others.length) {
    const cgroupParents = new Set([...(owner?.bridge ? ['docker'] : []), ...(owner?.namespaces ?? []), ...seenNamespaces]);
    for (const ctrl of safeReaddir('/sys/fs/cgroup')) {
      for (const name of cgroupParents) rmdirQuiet(join('/sys/fs/cgroup', ctrl, name));
    }
    for (const ns of safeReaddir('/run/containerd/runc')) rmdirQuiet(join('/run/containerd/runc', ns));
    // ctr makes its stdio FIFOs in /run/containerd/fifo and never removes those of
    // `run -d`; with no containerd running nobody can be using any of them.
    for (const f of safeReaddir('/run/containerd/fifo')) rmSync(join('/run/containerd/fifo', f), { recursive: true, force: true });
    for (const d of ['/run/containerd/fifo', '/run/containerd/runc', '/run/containerd/s', '/run/containerd', '/run/docker/plugins', '/run/docker']) rmdirQuiet(d);
  }
  if (stuck.length) problems.push(`mounts left: ${stuck.join(' ')}`);

  // 5. Network.
  if (owner?.bridge && existsSync(`/sys/class/net/${owner.bridge}`)) {
    const r = runSync('ip', ['link', 'del', owner.bridge], { timeoutMs: 10_000 });
    if (r.code !== 0) problems.push(`ip link del ${owner.bridge}: ${r.stderr.trim()}`);
  }
  if (owner?.bridge) problems.push(...cleanIptablesSync(owner.bridge, owner.subnet));

  // 6. The directory, only once nothing is mounted in it (rm would walk into a bind mount).
  if (!stuck.length) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      problems.push(`rm ${dir}: ${(e as Error).message}`);
    }
  }
  return problems;
}

function rmdirQuiet(d: string): void {
  try {
    rmdirSync(d);
  } catch {
    // not empty, busy, or absent
  }
}

function safeReaddir(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

/** Splits one `iptables -S` line into argv (handles the double quotes iptables uses for comments). */
function splitRule(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string));
  return out;
}

/**
 * Removes the iptables rules dockerd made for our bridge. dockerd 20.10 leaves
 * them behind on shutdown (it only removes them when the network is deleted).
 * The DOCKER* chains are shared by every dockerd on the host, so they are
 * removed only when no other dockerd runs.
 */
export function cleanIptablesSync(bridge: string, subnet?: string): string[] {
  const problems: string[] = [];
  if (runSync('iptables', ['--version']).code !== 0) return problems;
  // per-container rules name the container's address (10.213.N.2/32), not the subnet
  const prefix = subnet?.replace(/\.\d+\/\d+$/, '.');
  const ours = (line: string) => line.includes(bridge) || (prefix !== undefined && line.includes(prefix));
  const otherDockerd = listProcesses().some((p) => /\/dockerd$/.test(p.exe));
  for (const table of ['filter', 'nat']) {
    const listed = runSync('iptables', ['-w', '-t', table, '-S'], { timeoutMs: 10_000 });
    if (listed.code !== 0) continue;
    const lines = listed.stdout.split('\n');
    const dockerChains = lines.filter((l) => /^-N DOCKER/.test(l)).map((l) => l.split(' ')[1] as string);
    for (const l of lines) {
      if (!l.startsWith('-A ')) continue;
      const jumpsToDocker = !otherDockerd && /-j DOCKER/.test(l);
      if (!ours(l) && !jumpsToDocker) continue;
      const argv = splitRule(l);
      argv[0] = '-D';
      const r = runSync('iptables', ['-w', '-t', table, ...argv], { timeoutMs: 10_000 });
      if (r.code !== 0 && !/does a matching rule exist|No chain/i.test(r.stderr)) problems.push(`iptables -t ${table} ${argv.join(' ')}: ${r.stderr.trim()}`);
    }
    if (!otherDockerd) {
      for (const c of dockerChains) runSync('iptables', ['-w', '-t', table, '-F', c], { timeoutMs: 10_000 });
      for (const c of dockerChains) runSync('iptables', ['-w', '-t', table, '-X', c], { timeoutMs: 10_000 });
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------
// exit hooks

const exitHooks = new Set<() => void>();
let hooksInstalled = false;

function runExitHooks(): void {
  for (const h of [...exitHooks]) {
    exitHooks.delete(h);
    try {
      h();
    } catch (e) {
      process.stderr.write(`[harness] teardown at exit failed: ${(e as Error).message}\n`);
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  runExitHooks();
  process.removeListener(sig, onSignal);
  // re-raise so the process ends the way it would have without us
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

/**
 * Registers a synchronous teardown for process exit, uncaught errors and
 * SIGINT/SIGTERM/SIGHUP (vitest killing its worker). Returns the unregister.
 */
export function registerExitHook(hook: () => void): () => void {
  exitHooks.add(hook);
  if (!hooksInstalled) {
    hooksInstalled = true;
    process.on('exit', runExitHooks);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      try {
        process.on(sig, onSignal);
      } catch {
        // worker threads cannot listen for signals; 'exit' still covers them
      }
    }
  }
  return () => exitHooks.delete(hook);
}
