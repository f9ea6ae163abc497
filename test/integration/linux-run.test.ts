// `tugboat run` of a Linux (busybox) image: handed to runc unchanged.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUSYBOX, exec, FIXTURES, TUGBOAT, useRunSandbox, WASM } from './helpers.js';

const WASM_HELLO = WASM('hello');

describe('tugboat run: Linux images', () => {
  const s = useRunSandbox();

  it('passes stdout, stderr, args and env', async () => {
    const r = await s.tb.run(['run', '--rm', '-e', 'GREETING=ahoy', BUSYBOX, 'sh', '-c', 'echo "out $GREETING $0 $1" ; echo err >&2', 'zero', 'one']);
    expect(r.stdout).toBe('out ahoy zero one\n');
    expect(r.stderr).toBe('err\n');
    expect(r.code).toBe(0);
  });

  it('runs the image CMD by default with the image env', async () => {
    const r = await s.tb.run(['run', '--rm', BUSYBOX], { input: 'echo $PATH; exit 0\n' });
    expect(r.stdout).toBe('/bin\n');
    expect(r.code).toBe(0);
  });

  it('writes to /dev/stdout (real pipes, not sockets)', async () => {
    const r = await s.tb.run(['run', '--rm', BUSYBOX, 'sh', '-c', 'echo via-dev-stdout > /dev/stdout']);
    expect(r.stdout).toBe('via-dev-stdout\n');
  });

  it('honours -w', async () => {
    const r = await s.tb.run(['run', '--rm', '-w', '/tmp', BUSYBOX, 'pwd']);
    expect(r.stdout).toBe('/tmp\n');
  });

  it.each([0, 3, 42])('passes exit code %i through', async (code) => {
    const r = await s.tb.run(['run', '--rm', BUSYBOX, 'sh', '-c', `exit ${code}`]);
    expect(r.code).toBe(code);
  });

  it('ends with 143 on SIGTERM', async () => {
    // sh as PID 1 ignores SIGTERM unless it traps it, and its own re-raise
    // too (the kernel protects a namespace's init): the trap exits 143. The
    // signal may land before sh reaches a wait, so it waits in short steps.
    const r = await s.tb.run(['run', '--rm', BUSYBOX, 'sh', '-c', 'trap "echo got TERM; exit 143" TERM; echo ready; while :; do sleep 1 & wait $!; done'], {
      signal: { name: 'SIGTERM', after: 'ready' },
    });
    expect(r.stdout).toBe('ready\ngot TERM\n');
    expect(r.code).toBe(143);
  });

  it('ends with 137 when it exceeds --memory', async () => {
    const r = await s.tb.run(['run', '--rm', '--memory', '16m', BUSYBOX, 'sh', '-c', 'x=$(head -c 200m /dev/zero | tr "\\0" a); echo survived']);
    expect(r.stdout).not.toContain('survived');
    expect(r.code).toBe(137);
  });

  it('reads and writes the rootfs and a -v volume', async () => {
    writeFileSync(join(s.vol, 'in.txt'), 'host data\n');
    const r = await s.tb.run(['run', '--rm', '-v', `${s.vol}:/data`, BUSYBOX, 'sh', '-c', 'echo hi > /etc/new && cat /etc/new /data/in.txt && echo guest > /data/out.txt']);
    expect(r.stdout).toBe('hi\nhost data\n');
    expect(readFileSync(join(s.vol, 'out.txt'), 'utf8')).toBe('guest\n');
  });

  it('keeps writes private to the container (image cache untouched)', async () => {
    await s.tb.run(['run', '--rm', BUSYBOX, 'sh', '-c', 'echo changed > /etc/passwd']);
    const r = await s.tb.run(['run', '--rm', BUSYBOX, 'head', '-1', '/etc/passwd']);
    expect(r.stdout).toBe('root:x:0:0:root:/root:/bin/sh\n');
  });

  it('has only loopback with --network none and the host interfaces with --network host', async () => {
    const none = await s.tb.run(['run', '--rm', '--network', 'none', BUSYBOX, 'ls', '/sys/class/net']);
    expect(none.stdout).toBe('lo\n');
    const host = await s.tb.run(['run', '--rm', '--network', 'host', BUSYBOX, 'ls', '/sys/class/net']);
    expect(host.stdout.split('\n').filter(Boolean).length).toBeGreaterThan(1);
  });

  it('runs as pid 1 in its own pid namespace with the requested user', async () => {
    const r = await s.tb.run(['run', '--rm', '-u', 'nobody', BUSYBOX, 'sh', '-c', 'echo $$; id -u']);
    expect(r.stdout).toBe('1\n65534\n');
  });

  it('picks the Linux manifest of a mixed image with --platform', async () => {
    const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const r = await s.tb.run(['run', '--rm', '--platform', `linux/${arch}`, `oci:${join(FIXTURES, 'mixed')}:app`, 'echo', 'linux side']);
    expect(r.stdout).toBe('linux side\n');
    const w = await s.tb.run(['run', '--rm', `oci:${join(FIXTURES, 'mixed')}:app`]);
    expect(w.stdout).toContain('hello from wasm');
  });

  it('allocates a terminal with -t (for Linux and Wasm containers)', async () => {
    // script(1) gives tugboat a terminal of its own, as an interactive user has.
    const cmd = (image: string, args: string) => `${TUGBOAT} --root ${s.tb.root} run --rm -t ${image} ${args}`;
    const linux = await exec('script', ['-qec', cmd(BUSYBOX, 'tty'), '/dev/null']);
    expect(linux.code, linux.stderr).toBe(0);
    expect(linux.stdout).toMatch(/\/dev\/pts\/\d+\r?\n/);
    const wasm = await exec('script', ['-qec', cmd(WASM_HELLO, ''), '/dev/null']);
    expect(wasm.code, wasm.stderr).toBe(0);
    expect(wasm.stdout).toContain('hello from wasm');
  });

  it('reports a missing executable with 127', async () => {
    const r = await s.tb.run(['run', '--rm', BUSYBOX, 'no-such-binary']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no-such-binary.*(not found|no such file)/i);
  });
});
