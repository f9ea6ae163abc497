// Issue 11, item 4: `tugboat run` containers get Docker's default seccomp
// profile, and --security-opt changes it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX, TugboatSandbox, WASM } from './helpers.js';

describe('seccomp for tugboat run', () => {
  let tb: TugboatSandbox;
  let work: string;
  beforeAll(() => {
    tb = new TugboatSandbox();
    work = mkdtempSync(join(tmpdir(), 'tugboat-seccomp-'));
  });
  afterAll(() => {
    tb.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('refuses to create namespaces inside a Linux container (unshare -U -r)', async () => {
    const r = await tb.run(['run', '--rm', BUSYBOX, 'unshare', '-U', '-r', 'id', '-u']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unshare\(0x10000000\): Operation not permitted/);
    const status = await tb.run(['run', '--rm', BUSYBOX, 'grep', '^Seccomp:', '/proc/self/status']);
    expect(status.stdout).toBe('Seccomp:\t2\n');
    const nnp = await tb.run(['run', '--rm', BUSYBOX, 'grep', '^NoNewPrivs:', '/proc/self/status']);
    expect(nnp.stdout).toBe('NoNewPrivs:\t1\n');
  });

  it('runs Wasm containers (Node is their host) under the same profile', async () => {
    const r = await tb.run(['run', '--rm', WASM('hello'), 'a']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('hello from wasm');
    const c = await tb.run(['run', '--rm', WASM('component-hello')]);
    expect(c.code, c.stderr).toBe(0);
  });

  it('--security-opt seccomp=unconfined lifts it', async () => {
    const r = await tb.run(['run', '--rm', '--security-opt', 'seccomp=unconfined', BUSYBOX, 'unshare', '-U', '-r', 'id', '-u']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('0\n');
  });

  it('--security-opt seccomp=FILE takes a profile in Docker\'s format', async () => {
    const file = join(work, 'no-mkdir.json');
    writeFileSync(file, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }));
    const r = await tb.run(['run', '--rm', '--security-opt', `seccomp=${file}`, BUSYBOX, 'mkdir', '/x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Permission denied/);
    const bad = await tb.run(['run', '--rm', '--security-opt', 'seccomp=/no/such.json', BUSYBOX, 'true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('tugboat: --security-opt seccomp=/no/such.json: cannot read the profile: ENOENT');
  });
});
