// `podman --runtime tugboat` (Debian's podman 4.3 with conmon), rootful, with
// a private storage root, for a Wasm image and a busybox image.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, FIXTURES, TUGBOAT, type Result } from './helpers.js';

const WASM = 'tugboat.local/wasm-tools:latest';
const BUSYBOX = 'tugboat.local/busybox:latest';

describe('podman --runtime tugboat', () => {
  let dir: string;
  let vol: string;
  const podman = (args: string[]): Promise<Result> =>
    exec('podman', [
      '--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--tmpdir', join(dir, 'tmp'),
      '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--storage-driver', 'vfs',
      '--runtime', TUGBOAT, ...args,
    ], { env: { TUGBOAT_STATE: join(dir, 'tugboat') } });
  // podman asks for RLIMIT_NOFILE 1048576 by default, above this sandbox's hard
  // limit (runc fails the same way); ask for what the host allows.
  const LIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--network', 'none'];
  const run = (args: string[]) => podman(['run', ...LIMITS, ...args]);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tugboat-podman-'));
    vol = mkdtempSync(join(tmpdir(), 'tugboat-pvol-'));
    chmodSync(vol, 0o777);
    for (const f of ['wasm-tools.docker.tar', 'busybox.docker.tar']) {
      const r = await podman(['load', '-i', join(FIXTURES, f)]);
      expect(r.code, r.stderr).toBe(0);
    }
  });
  afterAll(async () => {
    await podman(['rm', '-af']).catch(() => undefined);
    // podman leaves its storage mounted; unmount everything under our dir.
    await exec('sh', ['-c', `grep -o ' ${dir}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l`]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(vol, { recursive: true, force: true });
  });

  it('runs the Wasm image with its output and exit code', async () => {
    const r = await run(['--rm', '-e', 'GREETING=ahoy', WASM, 'x']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('hello from wasm\nargs: /hello.wasm x\n');
    expect(r.stdout).toContain('env: GREETING=ahoy\n');
    const c = await run(['--rm', '--entrypoint', '/exitcode.wasm', WASM, '3']);
    expect(c.code).toBe(3);
  });

  it('runs busybox with its output and exit code', async () => {
    const r = await run(['--rm', BUSYBOX, 'sh', '-c', 'echo linux; exit 6']);
    expect(r.stdout).toBe('linux\n');
    expect(r.code).toBe(6);
  });

  it("takes `tugboat seccomp-profile`'s profile (Docker's format) with --security-opt, its rules on capabilities resolved by podman", async () => {
    const profile = join(dir, 'wasm-host.json');
    writeFileSync(profile, execFileSync(TUGBOAT, ['seccomp-profile'], { encoding: 'utf8' }));
    const w = await run(['--rm', '--security-opt', `seccomp=${profile}`, WASM, 'x']);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toContain('hello from wasm\n');
    const b = await run(['--rm', '--security-opt', `seccomp=${profile}`, BUSYBOX, 'sh', '-c', 'grep ^Seccomp: /proc/self/status; unshare -U -r true 2>/dev/null || echo refused']);
    expect(b.stdout, b.stderr).toBe('Seccomp:\t2\nrefused\n');
  });

  it('keeps logs of both kinds', async () => {
    for (const [args, text] of [
      [[WASM, 'logged'], 'args: /hello.wasm logged'],
      [[BUSYBOX, 'echo', 'busybox logged'], 'busybox logged'],
    ] as const) {
      const c = (await run(['-d', ...args])).stdout.trim();
      await podman(['wait', c]);
      expect((await podman(['logs', c])).stdout).toContain(text);
      await podman(['rm', c]);
    }
  });

  it('gives both kinds a volume to read and write', async () => {
    writeFileSync(join(vol, 'in.txt'), 'host\n');
    const w = await run(['--rm', '-v', `${vol}:/data`, '--entrypoint', '/fileio.wasm', WASM, 'write', '/data/wasm.txt', 'from wasm']);
    expect(w.code, w.stderr).toBe(0);
    const b = await run(['--rm', '-v', `${vol}:/data`, BUSYBOX, 'sh', '-c', 'cat /data/in.txt /data/wasm.txt; echo; echo from busybox > /data/bb.txt']);
    expect(b.stdout).toBe('host\nfrom wasm\n');
    expect(readFileSync(join(vol, 'bb.txt'), 'utf8')).toBe('from busybox\n');
  });

  it('honours io.tugboat.wasm.preopens from --annotation, and refuses a malformed one at create', async () => {
    writeFileSync(join(vol, 'pre.txt'), 'preopened\n');
    const args = ['--rm', '-v', `${vol}:/data`, '--annotation', 'io.tugboat.wasm.preopens=/in=/data:ro', '--entrypoint', '/fileio.wasm', WASM];
    const r = await run([...args, 'read', '/in/pre.txt']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('preopened\n');
    const w = await run([...args, 'write', '/in/no.txt', 'x']);
    expect(w.code).toBe(1);
    expect(existsSync(join(vol, 'no.txt'))).toBe(false);
    const bad = await run(['--rm', '--annotation', 'io.tugboat.wasm.preopens=/in', '--entrypoint', '/fileio.wasm', WASM, 'ls', '/']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/io\.tugboat\.wasm\.preopens: no "=" in "\/in"/);
  });
});
