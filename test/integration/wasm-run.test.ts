// `tugboat run` of Wasm images under real runc: what reaches the guest, what
// comes back out, and exit statuses.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, REPO, useRunSandbox, WASM } from './helpers.js';

describe('tugboat run: Wasm images', () => {
  const s = useRunSandbox();
  let probeImage: string;
  beforeAll(async () => {
    probeImage = `oci:${join(s.vol, 'probe-layout')}:probe`;
    const b = await s.tb.run(['image', 'build', join(REPO, 'test', 'guests', 'out', 'probe.wasm'), '-o', probeImage]);
    expect(b.code, b.stderr).toBe(0);
  });

  it('passes stdout, stderr, args and env to the guest', async () => {
    const r = await s.tb.run(['run', '--rm', '-e', 'GREETING=ahoy', WASM('hello'), 'one', 'two words']);
    expect(r.stderr).toBe('stderr: hello\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hello from wasm\n');
    expect(r.stdout).toContain('args: /hello.wasm one two words\n');
    expect(r.stdout).toContain('env: GREETING=ahoy\n');
    // Nothing of the host's plumbing leaks into the guest environment.
    expect(r.stdout).not.toMatch(/TUGBOAT_GUEST|NODE_/);
  });

  it("gives a WASI guest exactly the image's Env plus -e (no default PATH, which is a Linux process's)", async () => {
    const r = await s.tb.run(['run', '--rm', '-e', 'ONLY=this', WASM('hello')]);
    expect(r.code, r.stderr).toBe(0);
    // The fixture image sets no Env: -e is all the guest sees.
    expect(r.stdout.split('\n').filter((l) => l.startsWith('env: '))).toEqual(['env: ONLY=this']);
    const p = await s.tb.run(['run', '--rm', '-e', 'PATH=/mine', WASM('hello')]);
    expect(p.stdout).toContain('env: PATH=/mine\n');
  });

  it('resolves a relative --kit or TUGBOAT_KIT once, before runc sees it', async () => {
    const flag = await s.tb.run(['--kit', 'build/kit', 'run', '--rm', WASM('hello')], { cwd: REPO });
    expect(flag.code, flag.stderr).toBe(0);
    expect(flag.stdout).toContain('hello from wasm\n');
    const env = await s.tb.run(['run', '--rm', WASM('hello')], { cwd: join(REPO, 'build'), env: { TUGBOAT_KIT: './kit' } });
    expect(env.code, env.stderr).toBe(0);
    const missing = await s.tb.run(['--kit', 'no/such/kit', 'run', '--rm', WASM('hello')], { cwd: REPO });
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe(`tugboat: runtime kit not found at ${join(REPO, 'no/such/kit')} (run "make build", or set TUGBOAT_KIT)`);
  });

  it('reads variables from --env-file', async () => {
    const file = join(s.vol, 'env.list');
    writeFileSync(file, '# comment\nFROM_FILE=yes\n\nOTHER=two\n');
    const r = await s.tb.run(['run', '--rm', '--env-file', file, WASM('hello')]);
    expect(r.stdout).toContain('env: FROM_FILE=yes\n');
    expect(r.stdout).toContain('env: OTHER=two\n');
  });

  it('resolves relative paths against the working directory (-w)', async () => {
    const r = await s.tb.run(['run', '--rm', '-w', '/tmp', WASM('fileio'), 'write', 'rel.txt', 'in tmp']);
    expect(r.stdout).toBe('wrote rel.txt\n');
    expect(r.code).toBe(0);
    const c = await s.tb.run(['run', '--rm', '-w', '/tmp', '--entrypoint', '/fileio.wasm', WASM('fileio'), 'write', 'rel.txt', 'x']);
    expect(c.code).toBe(0);
  });

  it('reads and writes files in its own root filesystem', async () => {
    const r = await s.tb.run(['run', '--rm', WASM('fileio'), 'ls', '/']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toContain('fileio.wasm');
    const w = await s.tb.run(['run', '--rm', WASM('fileio'), 'write', '/note.txt', 'hi']);
    expect(w.code).toBe(0);
    expect(w.stdout).toBe('wrote /note.txt\n');
  });

  it('reads and writes a -v volume', async () => {
    writeFileSync(join(s.vol, 'in.txt'), 'from the host\n');
    const r = await s.tb.run(['run', '--rm', '-v', `${s.vol}:/data`, WASM('fileio'), 'read', '/data/in.txt']);
    expect(r.stdout).toBe('from the host\n');
    const w = await s.tb.run(['run', '--rm', '-v', `${s.vol}:/data`, WASM('fileio'), 'write', '/data/out.txt', 'from the guest']);
    expect(w.code).toBe(0);
    expect(readFileSync(join(s.vol, 'out.txt'), 'utf8')).toBe('from the guest');
  });

  it('refuses writes to a read-only volume', async () => {
    const r = await s.tb.run(['run', '--rm', '-v', `${s.vol}:/data:ro`, WASM('fileio'), 'write', '/data/ro.txt', 'x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/fileio: \/data\/ro.txt: .*(Read-only|read-only|EROFS|not permitted|Permission)/i);
  });

  it.each([0, 3, 42, 255])('passes guest exit code %i through', async (code) => {
    const r = await s.tb.run(['run', '--rm', WASM('exitcode'), String(code)]);
    expect(r.code).toBe(code);
  });

  it('reports a trap on stderr with status 134', async () => {
    const r = await s.tb.run(['run', '--rm', WASM('exitcode'), 'trap']);
    expect(r.code).toBe(134);
    expect(r.stdout).toBe('about to trap\n');
    expect(r.stderr).toMatch(/^tugboat: wasm trap in \/exitcode\.wasm: unreachable/m);
  });

  it('ends with 143 on SIGTERM', async () => {
    const r = await s.tb.run(['run', '--rm', WASM('exitcode'), 'sleep', '60'], { signal: { name: 'SIGTERM', after: 'sleeping' } });
    expect(r.code).toBe(143);
  });

  // Without --rm, so that the time measured is the container's, not the removal of its root.
  it.each([
    ['a sleep', ['sleep', '60'], 'sleeping'],
    ['a read from stdin', ['readwait'], 'reading'],
  ])('SIGTERM while the guest is blocked in %s: 143 at once', async (_what, args, after) => {
    const name = `blocked-${args[0]}`;
    const r = await s.tb.run(['run', '--name', name, '--entrypoint', '/probe.wasm', probeImage, ...args], { keepStdin: true, signal: { name: 'SIGTERM', after } });
    await s.tb.run(['rm', '-f', name]);
    expect(r.code).toBe(143);
    // The goal is 100 ms; the bound holds on a loaded 2-core CI (the old host waited for the sleep to end).
    expect(r.killMs).toBeLessThan(2000);
  });

  it.each([
    ['SIGINT', 130],
    ['SIGHUP', 129],
    ['SIGUSR1', 138],
  ] as const)('%s ends the container with %i (tini reports the default action)', async (signal, status) => {
    const r = await s.tb.run(['run', '--rm', '--entrypoint', '/probe.wasm', probeImage, 'sleep', '60'], { keepStdin: true, signal: { name: signal, after: 'sleeping' } });
    expect(r.code).toBe(status);
  });

  it('ends with 137 when it exceeds --memory', async () => {
    const r = await s.tb.run(['run', '--rm', '--memory', '96m', WASM('exitcode'), 'alloc', '400']);
    expect(r.code).toBe(137);
    expect(r.stdout).not.toContain('allocated');
  });

  it('runs with --network none: only a loopback interface', async () => {
    const r = await s.tb.run(['run', '--rm', '--network', 'none', WASM('fileio'), 'ls', '/sys/class/net']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('lo\n');
  });

  it('runs the CNCF Wasm artifact form', async () => {
    const r = await s.tb.run(['run', '--rm', `oci:${join(FIXTURES, 'artifact')}:hello`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hello from wasm');
  });

  it('leaves no mounts or containers behind with --rm', async () => {
    await s.tb.run(['run', '--rm', WASM('hello')]);
    expect(s.tb.mounts()).toEqual([]);
    const ps = await s.tb.run(['ps', '--format', 'json']);
    expect(JSON.parse(ps.stdout)).toEqual([]);
  });

  describe('io.tugboat.wasm.preopens', () => {
    const preopens = (value: string) => ['--annotation', `io.tugboat.wasm.preopens=${value}`];

    it('maps a container directory into the guest under another name', async () => {
      mkdirSync(join(s.vol, 'pre'), { recursive: true });
      writeFileSync(join(s.vol, 'pre', 'in.txt'), 'preopened\n');
      const r = await s.tb.run(['run', '--rm', '-v', `${join(s.vol, 'pre')}:/mnt/in`, ...preopens('/in=/mnt/in'), WASM('fileio'), 'read', '/in/in.txt']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('preopened\n');
      const w = await s.tb.run(['run', '--rm', '-v', `${join(s.vol, 'pre')}:/mnt/in`, ...preopens('/out=/mnt/in'), WASM('fileio'), 'write', '/out/rw.txt', 'written']);
      expect(w.code, w.stderr).toBe(0);
      expect(readFileSync(join(s.vol, 'pre', 'rw.txt'), 'utf8')).toBe('written');
    });

    it('makes a :ro preopen read-only twice: by the host rights and for the kernel (node:wasi enforces no rights)', async () => {
      mkdirSync(join(s.vol, 'ro'), { recursive: true });
      writeFileSync(join(s.vol, 'ro', 'in.txt'), 'read me\n');
      const args = ['run', '--rm', '-v', `${join(s.vol, 'ro')}:/mnt/in`, ...preopens('/in=/mnt/in:ro')];
      const r = await s.tb.run([...args, WASM('fileio'), 'read', '/in/in.txt']);
      expect(r.stdout).toBe('read me\n');
      // Tugboat's host refuses the write itself (ENOTCAPABLE: the preopen lacks the rights).
      const w = await s.tb.run([...args, WASM('fileio'), 'write', '/in/new.txt', 'x']);
      expect(w.code).toBe(1);
      expect(w.stderr).toMatch(/fileio: \/in\/new.txt: Capabilities insufficient/);
      // node:wasi lets it through to the kernel, which refuses it on the read-only bind mount.
      const u = await s.tb.run([...args, '--annotation', 'io.tugboat.wasi=uvwasi', WASM('fileio'), 'write', '/in/new.txt', 'x']);
      expect(u.code).toBe(1);
      expect(u.stderr).toMatch(/fileio: \/in\/new.txt: .*(Read-only|read-only|EROFS)/i);
      expect(existsSync(join(s.vol, 'ro', 'new.txt'))).toBe(false);
    });

    it.each([
      ['/in', /io\.tugboat\.wasm\.preopens: no "=" in "\/in"/],
      ['/in=relative', /container path "relative" is not absolute/],
      ['/in=/no/such/dir', /\/no\/such\/dir is not a directory in the container/],
    ])('refuses %j at create with one line and status 2', async (value, message) => {
      const r = await s.tb.run(['run', '--rm', ...preopens(value), WASM('fileio'), 'ls', '/']);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    });
  });
});
