// The host bundle (dist/host/host.mjs) run directly on this machine on a
// root directory (GuestConfig.root), the way issue 9's `process` level will
// run it: real pipes for stdio, real signals, no runc.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Guest } from '../../src/wasi-host/preview1/index.js';
import { GUESTS, runGuest, wasmModule } from '../helpers/guest-run.js';
import { REPO } from './helpers.js';

const HOST = join(REPO, 'dist', 'host', 'host.mjs');

interface HostRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: number;
  peakRssKiB: number;
  /** ms from the signal (when one was sent) to the process's end. */
  killMs?: number;
}

/** Runs the host on `root`; optionally sends `signal` once stdout shows `after`. */
function runHost(root: string, args: string[], opts: { input?: string | null; signal?: { name: NodeJS.Signals; after: string }; keepStdout?: boolean } = {}): Promise<HostRun> {
  const guest = { args, env: [], root, cwd: '/' };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-warnings', '--disable-sigusr1', HOST], {
      env: { TUGBOAT_GUEST: JSON.stringify(guest) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stdoutBytes = 0;
    let stderr = '';
    let peakRssKiB = 0;
    let killedAt: number | undefined;
    const sample = setInterval(() => {
      try {
        const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakRssKiB = Math.max(peakRssKiB, Number(m[1]));
      } catch {
        // gone
      }
    }, 20);
    child.stdout.on('data', (d: Buffer) => {
      stdoutBytes += d.length;
      if (opts.keepStdout !== false) stdout += d.toString();
      if (opts.signal && killedAt === undefined && stdout.includes(opts.signal.after)) {
        killedAt = performance.now();
        child.kill(opts.signal.name);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearInterval(sample);
      resolve({ code, signal, stdout, stderr, stdoutBytes, peakRssKiB, ...(killedAt !== undefined ? { killMs: performance.now() - killedAt } : {}) });
    });
    child.stdin.on('error', () => undefined);
    if (opts.input === null) return; // stdin stays open: a reader blocks
    child.stdin.end(opts.input ?? '');
  });
}

describe('the host run directly on a root directory (no runc)', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'tugboat-hostproc-'));
    copyFileSync(join(GUESTS, 'probe.wasm'), join(root, 'probe.wasm'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('writes 1 GB to a stdout pipe with bounded host memory', async () => {
    const r = await runHost(root, ['/probe.wasm', 'spew', '1024'], { keepStdout: false });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdoutBytes).toBe(1024 * 1024 * 1024);
    // Node itself is ~50 MiB here and the guest's memory a few MiB: unbounded buffering would be > 1 GiB.
    expect(r.peakRssKiB).toBeLessThan(256 * 1024);
  }, 180_000);

  it('reads stdin at EOF as 0 bytes (an empty pipe, closed)', async () => {
    const r = await runHost(root, ['/probe.wasm', 'cat'], { input: '' });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('eof 0 errno 0\n');
  });

  it('copies stdin to stdout through pipes', async () => {
    const input = 'line\n'.repeat(50_000);
    const r = await runHost(root, ['/probe.wasm', 'cat'], { input });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(input);
    expect(r.stderr).toBe(`eof ${input.length} errno 0\n`);
  });

  it.each([
    ['a sleep', ['sleep', '60'], 'sleeping'],
    ['a read from a pipe', ['readwait'], 'reading'],
  ])('SIGTERM while the guest is blocked in %s ends the host at once (default action)', async (_what, args, after) => {
    const r = await runHost(root, ['/probe.wasm', ...args], { input: null, signal: { name: 'SIGTERM', after } });
    expect(r.signal).toBe('SIGTERM');
    // 100 ms is the goal; the bound is generous for a loaded 2-core CI.
    expect(r.killMs).toBeLessThan(1000);
  });

  it('poll_oneoff wakes on a pipe becoming readable, before its clock', async () => {
    const r = await new Promise<HostRun>((resolve, reject) => {
      const guest = { args: ['/probe.wasm', 'poll-stdin'], env: [], root, cwd: '/' };
      const child = spawn(process.execPath, ['--no-warnings', HOST], { env: { TUGBOAT_GUEST: JSON.stringify(guest) }, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      const started = performance.now();
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      setTimeout(() => child.stdin.write('wake up\n'), 300);
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, stdoutBytes: 0, peakRssKiB: 0, killMs: performance.now() - started }));
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('poll 0 1 userdata 1 type 1 nbytes>0 true\n');
    expect(r.killMs).toBeLessThan(9000);
  });

  it('SIGUSR1 ends the host like any other signal (no inspector)', async () => {
    const r = await runHost(root, ['/probe.wasm', 'sleep', '60'], { input: null, signal: { name: 'SIGUSR1', after: 'sleeping' } });
    expect(r.signal).toBe('SIGUSR1');
    expect(r.stderr).not.toMatch(/Debugger|inspector/i);
  });
});

describe('Guest objects in one process', () => {
  it('kill resolves the outcome at once and the guest is never resumed', async () => {
    const g = new Guest({ args: ['probe', 'sleep', '60'], env: [], root: '/', stdio: [0, 1, 2] });
    const started = performance.now();
    const outcome = g.run(wasmModule(join(GUESTS, 'probe.wasm')));
    setTimeout(() => g.kill(15), 200);
    expect(await outcome).toEqual({ kind: 'signal', signal: 15 });
    expect(performance.now() - started).toBeLessThan(5000);
    await g.close();
  });

  it('pause takes effect at the next suspension point; resume lets the guest finish', async () => {
    const g = new Guest({ args: ['probe', 'sleep', '0'], env: [], root: '/', stdio: [0, 1, 2] });
    g.pause();
    const outcome = g.run(wasmModule(join(GUESTS, 'probe.wasm')));
    let settled = false;
    void outcome.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(settled).toBe(false);
    g.resume();
    expect(await outcome).toEqual({ kind: 'exit', code: 0 });
    await g.close();
  });

  it('runs many sleeping guests at once, each with its own outcome', async () => {
    const guests = Array.from({ length: 50 }, (_, i) => new Guest({ args: ['probe', 'sleep', '1'], env: [`N=${i}`], root: '/', stdio: [0, 1, 2] }));
    const started = performance.now();
    const outcomes = await Promise.all(guests.map((g) => g.run(wasmModule(join(GUESTS, 'probe.wasm')))));
    // Sleeping together, not one after another (50 s).
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(outcomes.every((o) => o.kind === 'exit' && o.code === 0)).toBe(true);
    await Promise.all(guests.map((g) => g.close()));
  });
});

describe('sockets the host preopens for a guest', () => {
  it('sock_accept suspends until a client connects; sock_recv/sock_send/sock_shutdown on the connection', async () => {
    const { default: koffi } = await import('koffi');
    const libc = koffi.load('libc.so.6');
    const socket = libc.func('int socket(int, int, int)');
    const bind = libc.func('int bind(int, void *, uint32_t)');
    const listen = libc.func('int listen(int, int)');
    const getsockname = libc.func('int getsockname(int, _Inout_ void *, _Inout_ uint32_t *)');
    const AF_INET = 2;
    const SOCK_STREAM = 1;
    const fd = socket(AF_INET, SOCK_STREAM | 0o2000000 /* SOCK_CLOEXEC */, 0) as number;
    expect(fd).toBeGreaterThan(2);
    const addr = Buffer.alloc(16);
    addr.writeUInt16LE(AF_INET, 0);
    addr.set([127, 0, 0, 1], 4);
    expect(bind(fd, addr, 16)).toBe(0);
    expect(listen(fd, 4)).toBe(0);
    const len = [16];
    expect(getsockname(fd, addr, len)).toBe(0);
    const port = addr.readUInt16BE(2);

    const run = runGuest(join(GUESTS, 'probe.wasm'), ['echo-server'], { root: '/', listeners: [fd] });
    const net = await import('node:net');
    const reply = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => c.end('ping over a socket'));
      let got = '';
      c.on('data', (d) => (got += d.toString()));
      c.on('end', () => resolve(got));
      c.on('error', reject);
    });
    expect(reply).toBe('ping over a socket');
    const r = await run;
    expect(r.outcome).toEqual({ kind: 'exit', code: 0 });
    expect(r.stdout).toBe('accept 0\nfiletype 6\nrecv.end 0\nshutdown 0\naccept.notsock 57\n');
  });
});

describe('FIFOs opened by path', () => {
  it('opening a FIFO for writing waits for a reader without blocking the host', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tugboat-fifo-'));
    try {
      execFileSync('mkfifo', [join(root, 'pipe')]);
      const run = runGuest(join(GUESTS, 'probe.wasm'), ['fifo-write', '/pipe'], { root });
      // The host's event loop keeps running while the guest waits in path_open.
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 10);
      await new Promise((r) => setTimeout(r, 300));
      clearInterval(ticker);
      expect(ticks).toBeGreaterThan(5);
      const got = await new Promise<string>((resolve, reject) => {
        let data = '';
        createReadStream(join(root, 'pipe'), 'utf8').on('data', (d) => (data += d)).on('end', () => resolve(data)).on('error', reject);
      });
      expect(got).toBe('through the fifo\n');
      const r = await run;
      expect(r.outcome).toEqual({ kind: 'exit', code: 0 });
      expect(r.stdout).toBe('write 0\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
