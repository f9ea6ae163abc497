// `docker run --runtime tugboat` with Debian's Docker 20.10 (a private dockerd
// on a private containerd), for a Wasm image and a busybox image. Docker
// drives tugboat through containerd-shim-runc-v2 exactly as it drives runc.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type DockerdHandle } from './daemons/dockerd.js';
import { FIXTURES, TUGBOAT } from './helpers.js';

const WASM = 'tugboat.local/wasm-tools:latest';
const HELLO = 'tugboat.local/hello-wasm:latest';
const BUSYBOX = 'tugboat.local/busybox:latest';

describe('docker run --runtime tugboat', () => {
  let d: DockerdHandle;
  let vol: string;
  const docker = (args: string[], input?: string) => d.docker(args, { ...(input ? { input } : {}), timeoutMs: 60_000 });
  // The docker client's own warnings (e.g. about the host's IPv4 forwarding)
  // are not the container's stderr.
  const run = async (args: string[]) => {
    const r = await docker(['run', '--runtime', 'tugboat', ...args]);
    return { ...r, stderr: r.stderr.replace(/^WARNING: .*\n/gm, '') };
  };
  const inspect = async (c: string, fmt: string) => (await docker(['inspect', '-f', fmt, c])).stdout.trim();
  async function until(c: string, fmt: string, want: string): Promise<string> {
    let got = '';
    for (let i = 0; i < 300; i++) {
      got = await inspect(c, fmt);
      if (got === want) return got;
      await new Promise((r) => setTimeout(r, 100));
    }
    return got;
  }

  /** The guest announces itself; before that, PID 1 may not have its signal handlers yet. */
  async function untilLogged(c: string, text: string): Promise<void> {
    for (let i = 0; i < 300; i++) {
      if ((await docker(['logs', c])).stdout.includes(text)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${c} never logged ${text}`);
  }

  beforeAll(async () => {
    d = await startDockerd({ runtimes: { tugboat: { path: TUGBOAT } } });
    for (const f of ['wasm-tools.docker.tar', 'hello-wasm.docker.tar', 'busybox.docker.tar']) {
      const r = await d.docker(['load', '-i', join(FIXTURES, f)]);
      expect(r.code, r.stderr).toBe(0);
    }
    vol = mkdtempSync(join(tmpdir(), 'tugboat-dvol-'));
    chmodSync(vol, 0o777);
  });
  afterAll(async () => {
    await d?.stop();
    rmSync(vol, { recursive: true, force: true });
  });

  it('lists tugboat among the runtimes', async () => {
    const r = await docker(['info', '--format', '{{json .Runtimes}}']);
    expect(Object.keys(JSON.parse(r.stdout))).toContain('tugboat');
  });

  it('runs the Wasm image: stdout, stderr, args, env', async () => {
    const r = await run(['--rm', '-e', 'GREETING=ahoy', HELLO, 'one', 'two']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('hello from wasm\n');
    expect(r.stdout).toContain('args: /hello.wasm one two\n');
    expect(r.stdout).toContain('env: GREETING=ahoy\n');
    expect(r.stderr).toBe('stderr: hello\n');
  });

  it('runs busybox through the same runtime', async () => {
    const r = await run(['--rm', BUSYBOX, 'sh', '-c', 'echo out; echo err >&2; exit 4']);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe('err\n');
    expect(r.code).toBe(4);
  });

  it.each([
    ['wasm', ['--entrypoint', '/exitcode.wasm', WASM, '3'], '3'],
    ['wasm trap', ['--entrypoint', '/exitcode.wasm', WASM, 'trap'], '134'],
    ['busybox', [BUSYBOX, 'sh', '-c', 'exit 5'], '5'],
  ])('reports the exit code of %s through docker wait', async (_k, args, code) => {
    const c = (await run(['-d', ...args])).stdout.trim();
    expect((await docker(['wait', c])).stdout.trim()).toBe(code);
    await docker(['rm', c]);
  });

  it('keeps docker logs of a Wasm container', async () => {
    const c = (await run(['-d', HELLO, 'logged'])).stdout.trim();
    await docker(['wait', c]);
    const logs = await docker(['logs', c]);
    expect(logs.stdout).toContain('args: /hello.wasm logged\n');
    expect(logs.stderr).toBe('stderr: hello\n');
    await docker(['rm', c]);
  });

  it('gives the Wasm guest -w and a -v volume to read and write', async () => {
    writeFileSync(join(vol, 'in.txt'), 'from the host\n');
    const read = await run(['--rm', '-v', `${vol}:/data`, '--entrypoint', '/fileio.wasm', WASM, 'read', '/data/in.txt']);
    expect(read.stdout, read.stderr).toBe('from the host\n');
    const write = await run(['--rm', '-v', `${vol}:/data`, '-w', '/data', '--entrypoint', '/fileio.wasm', WASM, 'write', 'rel.txt', 'relative to -w']);
    expect(write.code, write.stderr).toBe(0);
    expect(readFileSync(join(vol, 'rel.txt'), 'utf8')).toBe('relative to -w');
  });

  it('reports OOMKilled when a Wasm container exceeds --memory', async () => {
    const c = (await run(['-d', '-m', '96m', '--memory-swap', '96m', '--entrypoint', '/exitcode.wasm', WASM, 'alloc', '400'])).stdout.trim();
    expect((await docker(['wait', c])).stdout.trim()).toBe('137');
    expect(await inspect(c, '{{.State.OOMKilled}}')).toBe('true');
    await docker(['rm', c]);
  });

  it('restarts a failing Wasm container with --restart on-failure:2', async () => {
    const c = (await run(['-d', '--restart', 'on-failure:2', '--entrypoint', '/exitcode.wasm', WASM, '1'])).stdout.trim();
    expect(await until(c, '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}', '2 exited 1')).toBe('2 exited 1');
    await docker(['rm', '-f', c]);
  });

  it('ends a Wasm container with 143 on docker kill -s TERM, and on docker stop', async () => {
    const a = (await run(['-d', '--entrypoint', '/exitcode.wasm', WASM, 'sleep', '300'])).stdout.trim();
    await untilLogged(a, 'sleeping');
    expect((await docker(['kill', '-s', 'TERM', a])).code).toBe(0);
    expect((await docker(['wait', a])).stdout.trim()).toBe('143');
    const b = (await run(['-d', '--entrypoint', '/exitcode.wasm', WASM, 'sleep', '300'])).stdout.trim();
    await untilLogged(b, 'sleeping');
    expect((await docker(['stop', '-t', '30', b])).code).toBe(0);
    expect(await inspect(b, '{{.State.ExitCode}}')).toBe('143');
    await docker(['rm', a, b]);
  });

  it('pauses and unpauses a Wasm container and reports its stats', async () => {
    const c = (await run(['-d', '--name', 'wpause', '--entrypoint', '/exitcode.wasm', WASM, 'sleep', '300'])).stdout.trim();
    expect(await until(c, '{{.State.Status}}', 'running')).toBe('running');
    expect((await docker(['pause', c])).code).toBe(0);
    expect(await inspect(c, '{{.State.Status}}')).toBe('paused');
    expect((await docker(['unpause', c])).code).toBe(0);
    expect(await inspect(c, '{{.State.Status}}')).toBe('running');
    const stats = await docker(['stats', '--no-stream', '--format', '{{.Name}} {{.MemUsage}}', c]);
    expect(stats.stdout).toMatch(/^wpause \d+(\.\d+)?[KMG]iB \/ /);
    await docker(['rm', '-f', c]);
  });

  it('execs into a busybox container and into a Wasm container', async () => {
    const b = (await run(['-d', BUSYBOX, 'sleep', '300'])).stdout.trim();
    const e = await docker(['exec', b, 'sh', '-c', 'echo from exec; id -u']);
    expect(e.stdout).toBe('from exec\n0\n');
    const w = (await run(['-d', '--entrypoint', '/exitcode.wasm', WASM, 'sleep', '300'])).stdout.trim();
    const we = await docker(['exec', w, '/fileio.wasm', 'ls', '/']);
    expect(we.code, we.stderr).toBe(0);
    expect(we.stdout.split('\n')).toEqual(expect.arrayContaining(['exitcode.wasm', 'fileio.wasm', 'hello.wasm']));
    const code = await docker(['exec', w, '/exitcode.wasm', '9']);
    expect(code.code).toBe(9);
    await docker(['rm', '-f', b, w]);
  });

  it('puts a Wasm container on a user-defined bridge, reachable by name and sharing a volume', async () => {
    expect((await docker(['network', 'create', '--subnet', '10.214.7.0/24', 'tbnet'])).code).toBe(0);
    try {
      const w = (await run(['-d', '--name', 'wasmbox', '--network', 'tbnet', '-v', `${vol}:/shared`, '--entrypoint', '/fileio.wasm', WASM, 'append', '/shared/beacon', 'wasm was here'])).stdout.trim();
      // The guest exits after writing; keep a long-lived one on the network to be reached by name.
      const s = (await run(['-d', '--name', 'wasmsleeper', '--network', 'tbnet', '--entrypoint', '/exitcode.wasm', WASM, 'sleep', '300'])).stdout.trim();
      expect(await until(s, '{{.State.Status}}', 'running')).toBe('running');
      const ip = await inspect(s, '{{(index .NetworkSettings.Networks "tbnet").IPAddress}}');
      expect(ip).toMatch(/^10\.214\.7\.\d+$/);
      const probe = await run(['--rm', '--network', 'tbnet', '-v', `${vol}:/shared`, BUSYBOX, 'sh', '-c',
        'for i in $(seq 50); do [ -s /shared/beacon ] && break; sleep 0.1; done; cat /shared/beacon; ping -c 1 -W 2 wasmsleeper >/dev/null && echo reachable']);
      expect(probe.stdout, probe.stderr).toBe('wasm was here\nreachable\n');
      await docker(['rm', '-f', w, s]);
    } finally {
      await docker(['network', 'rm', 'tbnet']);
    }
  });

  it('gives busybox the same: logs, -e, -w, -v, OOMKilled, stop, pause, stats', async () => {
    writeFileSync(join(vol, 'bb-in.txt'), 'host for busybox\n');
    const c = (await run(['-d', '-e', 'X=y', '-w', '/data', '-v', `${vol}:/data`, BUSYBOX, 'sh', '-c', 'echo "$X $(pwd)"; cat bb-in.txt; echo written > bb-out.txt; echo err >&2'])).stdout.trim();
    expect((await docker(['wait', c])).stdout.trim()).toBe('0');
    const logs = await docker(['logs', c]);
    expect(logs.stdout).toBe('y /data\nhost for busybox\n');
    expect(logs.stderr).toBe('err\n');
    expect(readFileSync(join(vol, 'bb-out.txt'), 'utf8')).toBe('written\n');
    const oom = (await run(['-d', '-m', '32m', '--memory-swap', '32m', BUSYBOX, 'sh', '-c', 'x=$(head -c 200m /dev/zero | tr "\\0" a)'])).stdout.trim();
    expect((await docker(['wait', oom])).stdout.trim()).toBe('137');
    expect(await inspect(oom, '{{.State.OOMKilled}}')).toBe('true');
    // sh as PID 1 only dies of SIGTERM if it traps it.
    const s = (await run(['-d', '--name', 'bbstop', BUSYBOX, 'sh', '-c', 'trap "exit 143" TERM; echo ready; while :; do sleep 0.1; done'])).stdout.trim();
    await untilLogged(s, 'ready');
    expect((await docker(['pause', s])).code).toBe(0);
    expect(await inspect(s, '{{.State.Status}}')).toBe('paused');
    expect((await docker(['unpause', s])).code).toBe(0);
    const stats = await docker(['stats', '--no-stream', '--format', '{{.Name}} {{.MemUsage}}', s]);
    expect(stats.stdout).toMatch(/^bbstop \d+(\.\d+)?[KMG]iB \/ /);
    expect((await docker(['stop', '-t', '30', s])).code).toBe(0);
    expect(await inspect(s, '{{.State.ExitCode}}')).toBe('143');
    await docker(['rm', c, oom, s]);
  });

  it('reports a missing entrypoint like runc does (127)', async () => {
    const r = await run(['--rm', BUSYBOX, 'no-such-command']);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/executable file not found|no such file/);
  });
});
