// Issue 11, item 9: kill -9 and SIGTERM at every phase of `tugboat run` and
// `tugboat image import`. The command is stopped exactly at a phase by its
// test hook (TUGBOAT_TEST_PAUSE_AT: it sends itself SIGSTOP there, with the
// phase's temp files, mounts, child processes in place), or, for the running
// container, once the container has said it is up; then it gets SIGKILL, or
// SIGTERM and SIGCONT. Afterwards nothing may be leaked (mounts, runc state,
// containers, temp files, processes, cgroups) and nothing lost (image ls and
// every blob of every listed image). A SIGTERM must leave nothing behind by
// itself; what a SIGKILL leaves is swept by the next command that writes
// (here `tugboat cleanup`), and a killed `run --rm` by its watcher at once.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, LayoutWriter, oneFileTar } from '../helpers/layout.js';
import { BUSYBOX, FIXTURES, fsck, oneLine, TUGBOAT, TugboatSandbox, WASM, type Result } from './helpers.js';

type Fault = 'SIGKILL' | 'SIGTERM';

interface Running {
  pid: number;
  stdout: () => string;
  done: Promise<Result>;
}

const figures = { faults: 0, leaks: 0 };

function start(tb: TugboatSandbox, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(TUGBOAT, ['--root', tb.root, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // Its end, not its pipes': a container the command left running holds them.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const done = new Promise<Result>((resolve) =>
    child.once('exit', (code, sig) => {
      void Promise.race([closed, sleep(1000)]).then(() => resolve({ code: code ?? 128 + (sig === 'SIGKILL' ? 9 : sig === 'SIGTERM' ? 15 : 0), stdout, stderr }));
    }),
  );
  return { pid: child.pid!, stdout: () => stdout, done };
}

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

async function until(what: string, ok: () => unknown, ms = 60_000): Promise<void> {
  for (const end = Date.now() + ms; !ok(); await sleep(20)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

/** Stops `r` at its phase (the hook's SIGSTOP, or stdout saying `marker`), then delivers the fault. */
async function inject(r: Running, fault: Fault, marker?: string): Promise<Result> {
  if (marker) await until(`"${marker}" on stdout`, () => r.stdout().includes(marker));
  else await until('the command to stop at its phase', () => procState(r.pid) === 'T' || procState(r.pid) === undefined);
  expect(procState(r.pid), 'the command ended before its phase').toBeDefined();
  process.kill(r.pid, fault);
  if (fault === 'SIGTERM') process.kill(r.pid, 'SIGCONT');
  figures.faults++;
  return r.done;
}

/** Signals sent to the process and not delivered yet (ShdPnd of /proc/PID/status; bit N-1 is signal N). */
function pendingSignals(pid: number): bigint {
  const m = /^ShdPnd:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory() && !e.isSymbolicLink()) walk(p, out);
  }
  return out;
}

/** Processes whose command line names `needle` (the root, a trial's marker). */
function processesNaming(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(needle)) found.push(`${pid}: ${cmd.trim()}`);
    } catch {
      // gone
    }
  }
  return found;
}

/** cgroups a container or a transpile of this root left (cgroup v1 controllers or the v2 tree). */
function cgroupsOf(names: string[], killedPid: number): string[] {
  const found: string[] = [];
  const bases = existsSync('/sys/fs/cgroup/cgroup.controllers') ? ['/sys/fs/cgroup'] : readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c));
  for (const base of bases) {
    for (const name of names) if (existsSync(join(base, 'tugboat', name))) found.push(join(base, 'tugboat', name));
    for (const e of readdirSync(base).filter((n) => n.startsWith(`tugboat-transpile-${killedPid}-`))) found.push(join(base, e));
  }
  return found;
}

/** Everything a fault may have leaked under (or around) `tb`'s root; [] when nothing. */
async function leaks(tb: TugboatSandbox, names: string[], killedPid: number): Promise<string[]> {
  const root = tb.root;
  const found: string[] = [];
  // Give processes that are being killed (an orphaned runc, a transpiler) a moment to go.
  await until('processes of the root to end', () => processesNaming(root).length === 0 && names.every((n) => processesNaming(n).length === 0), 10_000).catch(() => undefined);
  found.push(...processesNaming(root).map((p) => `process ${p}`));
  for (const n of names) found.push(...processesNaming(n).map((p) => `process ${p}`));
  found.push(...tb.mounts().map((m) => `mount ${m}`));
  const runcRoot = join(root, 'runc');
  if (existsSync(runcRoot)) found.push(...readdirSync(runcRoot).map((c) => `runc state ${c}`));
  for (const d of ['containers', 'tmp', 'registry-staging']) if (existsSync(join(root, d))) found.push(...readdirSync(join(root, d)).map((e) => `${d}/${e}`));
  found.push(...walk(root).filter((p) => /\.(tmp|old)-/.test(p)).map((p) => `temp ${p.slice(root.length + 1)}`));
  found.push(...cgroupsOf(names, killedPid).map((c) => `cgroup ${c}`));
  return found;
}

async function images(tb: TugboatSandbox): Promise<unknown> {
  const r = await tb.run(['image', 'ls', '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('faults at every phase: nothing leaked, nothing lost', () => {
  let tb: TugboatSandbox;
  let work: string;
  let before: unknown;
  let trial = 0;
  const unique = () => `tugboat-fault-${++trial}`;

  /** A two-layer image no other trial has (so it is unpacked, or imported, anew): busybox and a marker. */
  function freshImage(tag: string): string {
    const l = new LayoutWriter(join(work, tag));
    l.tag({ [tag]: l.image([busyboxLayer(FIXTURES), oneFileTar('marker', tag)]) });
    return `oci:${l.dir}:${tag}`;
  }

  beforeAll(async () => {
    tb = new TugboatSandbox('tugboat-faults-');
    work = mkdtempSync(join(tmpdir(), 'tugboat-faults-img-'));
    for (const [ref, name] of [[BUSYBOX, 'bb'], [WASM('hello'), 'hello']] as const) expect((await tb.run(['image', 'import', ref, '--name', name])).code).toBe(0);
    before = await images(tb);
  });
  afterAll(() => {
    tb.cleanup();
    rmSync(work, { recursive: true, force: true });
    // The closing figures of issue 11.
    process.stdout.write(`fault suite: ${figures.faults} faults injected, ${figures.leaks} leaks found after them\n`);
  });

  /** After a fault: a SIGKILL's leftovers are swept by the next writing command; then nothing may be left, nothing lost. */
  async function assertClean(fault: Fault, names: string[], killedPid: number): Promise<void> {
    if (fault === 'SIGKILL') {
      const c = await tb.run(['cleanup']);
      expect(c.code, c.stderr).toBe(0);
    }
    const left = await leaks(tb, names, killedPid);
    figures.leaks += left.length;
    expect(left).toEqual([]);
    expect(await images(tb)).toEqual(before);
    expect(fsck(tb.root)).toEqual(['bb', 'hello']);
  }

  const RUN_PHASES: [string, (name: string) => string[], string][] = [
    ['archive', (n) => ['run', '--rm', '--name', n, `docker-archive:${join(FIXTURES, 'busybox.docker.tar')}`, 'true'], 'archive'],
    ['unpack', (n) => ['run', '--rm', '--name', n, freshImage(n), 'true'], 'unpack'],
    ['mount', (n) => ['run', '--rm', '--name', n, 'bb', 'true'], 'mount'],
    ['transpile', (n) => ['run', '--rm', '--name', n, WASM('component-hello')], 'transpile'],
    ['exit', (n) => ['run', '--rm', '--name', n, 'bb', 'true'], 'exit'],
  ];

  describe.each<Fault>(['SIGKILL', 'SIGTERM'])('tugboat run --rm, %s', (fault) => {
    it.each(RUN_PHASES)('at %s', { timeout: 120_000 }, async (_phase, args, pauseAt) => {
      const name = unique();
      const r = start(tb, args(name), { TUGBOAT_TEST_PAUSE_AT: pauseAt });
      const res = await inject(r, fault);
      // A signal while the container's cleanup runs waits for it: the status is the container's.
      expect(res.code, res.stderr).toBe(fault === 'SIGKILL' ? 137 : pauseAt === 'exit' ? 0 : 143);
      if (fault === 'SIGTERM') expect(res.stderr).toBe('');
      if (fault === 'SIGKILL' && pauseAt === 'exit') await until('the --rm watcher', () => !existsSync(join(tb.root, 'containers', name)), 30_000);
      await assertClean(fault, [name], r.pid);
    });

    it('while the container runs', { timeout: 120_000 }, async () => {
      const name = unique();
      // sh as PID 1 ignores SIGTERM unless it traps it.
      const r = start(tb, ['run', '--rm', '--name', name, 'bb', 'sh', '-c', `trap "exit 143" TERM; echo up; while :; do sleep 0.1; done`, name]);
      const res = await inject(r, fault, 'up');
      expect(res.code).toBe(fault === 'SIGKILL' ? 137 : 143);
      // SIGKILL: the watcher stops and removes the container at once, with no other command.
      if (fault === 'SIGKILL') await until('the --rm watcher', () => !existsSync(join(tb.root, 'containers', name)), 30_000);
      await assertClean(fault, [name], r.pid);
    });
  });

  describe.each<Fault>(['SIGKILL', 'SIGTERM'])('tugboat image import, %s', (fault) => {
    it.each<[string, (n: string) => string]>([
      ['archive', () => `docker-archive:${join(FIXTURES, 'busybox.docker.tar')}`],
      ['import-copy', (n) => freshImage(n)],
      ['import-commit', (n) => freshImage(n)],
    ])('at %s', { timeout: 120_000 }, async (pauseAt, ref) => {
      const name = unique();
      const r = start(tb, ['image', 'import', ref(name), '--name', name], { TUGBOAT_TEST_PAUSE_AT: pauseAt });
      const res = await inject(r, fault);
      expect(res.code).toBe(fault === 'SIGKILL' ? 137 : 143);
      await assertClean(fault, [name], r.pid);
    });
  });

  it('a killed run --rm without its watcher is collected by the next command that writes', { timeout: 120_000 }, async () => {
    const name = unique();
    const r = start(tb, ['run', '--rm', '--name', name, 'bb', 'sh', '-c', 'echo up; sleep 60', name], { TUGBOAT_RM_WATCHER: 'off' });
    await inject(r, 'SIGKILL', 'up');
    const ps = JSON.parse((await tb.run(['ps', '--format', 'json'])).stdout) as { id: string; status: string }[];
    expect(ps).toEqual([expect.objectContaining({ id: name, status: 'dead' })]);
    expect(processesNaming(name)).not.toEqual([]);
    // rm writes, so its own sweep stops and removes it first; the rm itself then has nothing left to do.
    const rm = await tb.run(['rm', name]);
    expect(rm.code, rm.stderr).toBe(0);
    expect(existsSync(join(tb.root, 'containers', name))).toBe(false);
    await assertClean('SIGKILL', [name], r.pid);
  });

  it('a kept container whose run was killed is reported dead; rm needs --force while it runs', { timeout: 120_000 }, async () => {
    const name = unique();
    const r = start(tb, ['run', '--name', name, 'bb', 'sh', '-c', 'echo up; sleep 60', name]);
    await inject(r, 'SIGKILL', 'up');
    // It is kept: no writing command collects it.
    expect((await tb.run(['cleanup'])).code).toBe(0);
    const ps = JSON.parse((await tb.run(['ps', '--format', 'json'])).stdout) as { id: string; status: string }[];
    expect(ps).toEqual([expect.objectContaining({ id: name, status: 'dead' })]);
    const rm = await tb.run(['rm', name]);
    expect(rm.code).toBe(2);
    expect(oneLine(rm.stderr)).toBe(`tugboat: container ${name} is running (its tugboat run is gone); use rm --force`);
    // A new run of the name cannot take a container that still runs.
    expect((await tb.run(['run', '--name', name, 'bb', 'true'])).code).toBe(2);
    expect((await tb.run(['rm', '--force', name])).code).toBe(0);
    await assertClean('SIGTERM', [name], r.pid);
  });

  it('a kept container whose run was killed after it ended is collected by the next run of its name', { timeout: 120_000 }, async () => {
    const name = unique();
    const r = start(tb, ['run', '--name', name, 'bb', 'true'], { TUGBOAT_TEST_PAUSE_AT: 'exit' });
    await inject(r, 'SIGKILL');
    const ps = JSON.parse((await tb.run(['ps', '--format', 'json'])).stdout) as { id: string; status: string }[];
    expect(ps).toEqual([expect.objectContaining({ id: name, status: 'dead' })]);
    expect(tb.mounts()).not.toEqual([]);
    const again = await tb.run(['run', '--rm', '--name', name, 'bb', 'echo', 'again']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe('again\n');
    await assertClean('SIGTERM', [name], r.pid);
  });

  it('rm of a container being created is refused; rm --force stops its run, which undoes what it made', { timeout: 120_000 }, async () => {
    const name = unique();
    const r = start(tb, ['run', '--rm', '--name', name, 'bb', 'true'], { TUGBOAT_TEST_PAUSE_AT: 'mount' });
    await until('the run to stop at mount', () => procState(r.pid) === 'T');
    const ps = JSON.parse((await tb.run(['ps', '--format', 'json'])).stdout) as { id: string; status: string }[];
    expect(ps).toEqual([expect.objectContaining({ id: name, status: 'creating' })]);
    const rm = await tb.run(['rm', name]);
    expect(rm.code).toBe(2);
    expect(oneLine(rm.stderr)).toBe(`tugboat: container ${name} is being created; stop it first or use --force`);
    // rm --force sends the run SIGTERM, which waits in the stopped process until it continues.
    const forced = tb.run(['rm', '--force', name]);
    await until('rm --force to send SIGTERM', () => pendingSignals(r.pid) & (1n << 14n));
    process.kill(r.pid, 'SIGCONT');
    figures.faults++;
    expect((await forced).code).toBe(0);
    expect((await r.done).code).toBe(143);
    await assertClean('SIGTERM', [name], r.pid);
  });

  it('keeps the store private and the names of killed runs usable', async () => {
    expect(statSync(join(tb.root, 'tmp')).mode & 0o777).toBe(0o700);
    const r = await tb.run(['run', '--rm', '--name', 'tugboat-fault-1', 'bb', 'echo', 'reused']);
    expect(r.stdout).toBe('reused\n');
  });
});
