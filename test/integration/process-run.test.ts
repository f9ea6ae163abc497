// `tugboat run --isolation process`: the guest runs inside the CLI process,
// with no runc at all. What reaches the guest, what comes back, every exit
// status, and that nothing of runc is used or left behind.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO, TUGBOAT, useRunSandbox, WASM } from './helpers.js';

const AT = ['--isolation', 'process'];

describe('tugboat run --isolation process', () => {
  const s = useRunSandbox();
  let probeImage: string;
  beforeAll(async () => {
    probeImage = `oci:${join(s.vol, 'probe-layout')}:probe`;
    const b = await s.tb.run(['image', 'build', join(REPO, 'test', 'guests', 'out', 'probe.wasm'), '-o', probeImage]);
    expect(b.code, b.stderr).toBe(0);
  });

  it('passes stdout, stderr, args and env (exactly the image Env and -e)', async () => {
    const r = await s.tb.run(['run', '--rm', ...AT, '-e', 'GREETING=ahoy', WASM('hello'), 'one', 'two words']);
    expect(r.stderr).toBe('stderr: hello\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('hello from wasm\nargs: /hello.wasm one two words\nenv: GREETING=ahoy\n');
  });

  it('runs no runc: nothing in its state, no container process', async () => {
    const r = await s.tb.run(['run', '--rm', ...AT, WASM('hello')]);
    expect(r.code, r.stderr).toBe(0);
    const runcState = join(s.tb.root, 'runc');
    expect(existsSync(runcState) ? readdirSync(runcState) : []).toEqual([]);
  });

  it('resolves relative paths against -w, making it if the image lacks it', async () => {
    const r = await s.tb.run(['run', '--rm', ...AT, '-w', '/work/dir', WASM('fileio'), 'write', 'rel.txt', 'here']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('wrote rel.txt\n');
  });

  it('gives -v directories as preopens: read, write, and :ro refused by the host', async () => {
    writeFileSync(join(s.vol, 'in.txt'), 'from the host\n');
    const r = await s.tb.run(['run', '--rm', ...AT, '-v', `${s.vol}:/data`, WASM('fileio'), 'read', '/data/in.txt']);
    expect(r.stdout).toBe('from the host\n');
    const w = await s.tb.run(['run', '--rm', ...AT, '-v', `${s.vol}:/data`, WASM('fileio'), 'write', '/data/out.txt', 'from the guest']);
    expect(w.code, w.stderr).toBe(0);
    expect(readFileSync(join(s.vol, 'out.txt'), 'utf8')).toBe('from the guest');
    const ro = await s.tb.run(['run', '--rm', ...AT, '-v', `${s.vol}:/data:ro`, WASM('fileio'), 'write', '/data/ro.txt', 'x']);
    expect(ro.code).toBe(1);
    expect(ro.stderr).toMatch(/fileio: \/data\/ro.txt: Capabilities insufficient/);
    expect(existsSync(join(s.vol, 'ro.txt'))).toBe(false);
    // The volume is confined beneath itself.
    const up = await s.tb.run(['run', '--rm', ...AT, '-v', `${s.vol}:/data`, WASM('fileio'), 'read', '/data/../../../../etc/hostname']);
    expect(up.code).toBe(1);
  });

  it('maps io.tugboat.wasm.preopens inside the root, and refuses a missing directory with status 2', async () => {
    const ok = await s.tb.run(['run', '--rm', ...AT, '--annotation', 'io.tugboat.wasm.preopens=/r=/', WASM('fileio'), 'ls', '/r']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.split('\n')).toContain('fileio.wasm');
    const bad = await s.tb.run(['run', '--rm', ...AT, '--annotation', 'io.tugboat.wasm.preopens=/x=/no/such', WASM('fileio'), 'ls', '/']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('tugboat: annotation io.tugboat.wasm.preopens: /no/such is not a directory in the container');
  });

  it.each([0, 3, 42, 255])('passes guest exit code %i through', async (code) => {
    expect((await s.tb.run(['run', '--rm', ...AT, WASM('exitcode'), String(code)])).code).toBe(code);
  });

  it('reports a trap with 134, a missing module with 127, a file that is no Wasm with 126', async () => {
    const t = await s.tb.run(['run', '--rm', ...AT, WASM('exitcode'), 'trap']);
    expect(t.code).toBe(134);
    expect(t.stdout).toBe('about to trap\n');
    expect(t.stderr).toMatch(/^tugboat: wasm trap in \/exitcode\.wasm: unreachable/m);
    const m = await s.tb.run(['run', '--rm', ...AT, '--entrypoint', '/nope.wasm', WASM('exitcode')]);
    expect(m.code).toBe(127);
    expect(m.stderr).toContain('tugboat: /nope.wasm: wasm module not found');
    const dir = join(s.vol, 'notwasm');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'x.wasm'), '\0asm\x01\0\0\0garbage');
    const n = await s.tb.run(['run', '--rm', ...AT, '-v', `${dir}:/v`, '--entrypoint', '/v/x.wasm', WASM('exitcode')]);
    expect(n.code).toBe(126);
  });

  it('ends with 137 and a message when the guest grows past -m; runs below it', async () => {
    const r = await s.tb.run(['run', '--rm', ...AT, '-m', '32m', WASM('exitcode'), 'alloc', '64']);
    expect(r.code).toBe(137);
    expect(r.stderr).toContain("tugboat: /exitcode.wasm: out of memory (the guest's memory cap)");
    const ok = await s.tb.run(['run', '--rm', ...AT, '-m', '32m', WASM('exitcode'), 'alloc', '8']);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
    ['SIGHUP', 129],
    ['SIGUSR1', 138],
  ] as const)('%s ends the guest with %i', async (signal, status) => {
    const r = await s.tb.run(['run', '--rm', ...AT, '--entrypoint', '/probe.wasm', probeImage, 'sleep', '60'], { keepStdin: true, signal: { name: signal, after: 'sleeping' } });
    expect(r.code).toBe(status);
  });

  it('SIGTERM ends a spinning guest at once', async () => {
    const r = await s.tb.run(['run', '--rm', ...AT, WASM('exitcode'), 'spin'], { signal: { name: 'SIGTERM', after: 'spinning' } });
    expect(r.code).toBe(143);
    // 100 ms is the goal on a quiet machine; the bound holds on a loaded 2-core CI.
    expect(r.killMs).toBeLessThan(1000);
  });

  it('refuses bad levels and node:wasi with one line and status 2', async () => {
    const pod = await s.tb.run(['run', '--rm', '--isolation', 'pod', WASM('hello')]);
    expect(pod.code).toBe(2);
    expect(pod.stderr).toMatch(/^tugboat: --isolation pod: a pod host serves a containerd shim group/);
    const bad = await s.tb.run(['run', '--rm', '--isolation', 'vm', WASM('hello')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('tugboat: --isolation: unknown level "vm" (container or process)');
    const clash = await s.tb.run(['run', '--rm', ...AT, '--annotation', 'io.tugboat.isolation=container', WASM('hello')]);
    expect(clash.code).toBe(2);
    const uv = await s.tb.run(['run', '--rm', ...AT, '--annotation', 'io.tugboat.wasi=uvwasi', WASM('hello')]);
    expect(uv.code).toBe(2);
    expect(uv.stderr).toContain('node:wasi is no sandbox and runs only at container isolation');
  });

  it('runs components: output and status, a volume through its own kernel-resolved filesystem, memory limits', async () => {
    const h = await s.tb.run(['run', '--rm', ...AT, WASM('component-hello'), 'x']);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toMatch(/^hello from wasm\nargs: \/hello.wasm x\n/);
    expect((await s.tb.run(['run', '--rm', ...AT, WASM('component-exit-with-code'), 'a', 'b'])).code).toBe(42);
    writeFileSync(join(s.vol, 'c.txt'), 'to the component\n');
    const r = await s.tb.run(['run', '--rm', ...AT, '-v', `${s.vol}:/data`, WASM('component-fileio'), 'read', '/data/c.txt']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('to the component\n');
    const w = await s.tb.run(['run', '--rm', ...AT, '-v', `${s.vol}:/data`, WASM('component-fileio'), 'write', '/data/from-c.txt', 'hi']);
    expect(w.code, w.stderr).toBe(0);
    expect(readFileSync(join(s.vol, 'from-c.txt'), 'utf8')).toBe('hi');
    const ro = await s.tb.run(['run', '--rm', ...AT, '-v', `${s.vol}:/data:ro`, WASM('component-fileio'), 'write', '/data/no.txt', 'x']);
    expect(ro.code).toBe(1);
    expect(existsSync(join(s.vol, 'no.txt'))).toBe(false);
    const out = await s.tb.run(['run', '--rm', ...AT, WASM('component-fileio'), 'read', '/../../../../etc/hostname']);
    expect(out.code).toBe(1);
    const oom = await s.tb.run(['run', '--rm', ...AT, '-m', '8m', WASM('component-grow'), ...'abcdefghij'.split('')]);
    expect(oom.code).toBe(137);
    expect((await s.tb.run(['run', '--rm', ...AT, '-m', '8m', WASM('component-grow'), 'a', 'b'])).code).toBe(0);
  });

  it('serves an HTTP component on the host network with -p HOST:CONTAINER; SIGTERM ends it with 143', async () => {
    const port = 20000 + (process.pid % 20000);
    const child = spawn(TUGBOAT, ['--root', s.tb.root, 'run', '--rm', ...AT, '-p', `${port}:8080`, WASM('component-http')], { stdio: 'ignore' });
    const code = new Promise<number | null>((r) => child.once('exit', (c, sig) => r(c ?? (sig === 'SIGTERM' ? 143 : -1))));
    let body = '';
    try {
      // Instrumenting and compiling its 14 MB core module takes seconds on a loaded machine.
      for (let i = 0; i < 120 && body === ''; i++) {
        await new Promise((r) => setTimeout(r, 500));
        body = await fetch(`http://127.0.0.1:${port}/path`).then((x) => x.text(), () => '');
      }
      expect(body).toBe('hello from a wasm component: /path\n');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await code).toBe(143);
    const bad = await s.tb.run(['run', '--rm', ...AT, '-p', `${port}:9999`, WASM('component-http')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('-p: the component serves one port, 8080');
    const notProcess = await s.tb.run(['run', '--rm', '-p', `${port}:8080`, WASM('component-http')]);
    expect(notProcess.code).toBe(2);
  }, 120_000);

  it('leaves no mounts or containers behind with --rm', async () => {
    await s.tb.run(['run', '--rm', ...AT, WASM('hello')]);
    expect(s.tb.mounts()).toEqual([]);
    const ps = await s.tb.run(['ps', '--format', 'json']);
    expect(JSON.parse(ps.stdout)).toEqual([]);
  });
});
