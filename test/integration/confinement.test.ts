// node:wasi is not a sandbox: a symlink in the image can point a guest's path
// lookup anywhere. Tugboat's answer is that the guest only ever runs inside
// runc's pivot_root, so "anywhere" is still inside the container. This proves
// it with links that would reach the host if the host ran the guest directly.
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, TugboatSandbox } from './helpers.js';

describe('confinement of Wasm guests', () => {
  let tb: TugboatSandbox;
  let work: string;
  let image: string;
  const secret = `secret-${randomBytes(8).toString('hex')}`;
  const canary = join('/tmp', `tugboat-canary-${randomBytes(6).toString('hex')}`);
  const pwned = join('/tmp', `tugboat-pwned-${randomBytes(6).toString('hex')}`);

  beforeAll(async () => {
    tb = new TugboatSandbox();
    work = mkdtempSync(join(tmpdir(), 'tugboat-conf-'));
    writeFileSync(canary, secret);
    const links = join(work, 'links');
    mkdirSync(links);
    symlinkSync('/', join(links, 'root'));
    symlinkSync('../../../../../../../..', join(links, 'up'));
    symlinkSync('/tmp', join(links, 'tmp'));
    symlinkSync(canary, join(links, 'canary'));
    image = `oci:${join(work, 'layout')}:links`;
    const b = await tb.run(['image', 'build', join(EXAMPLES, 'fileio.wasm'), '--file', `${links}:/links`, '-o', image]);
    expect(b.code, b.stderr).toBe(0);
  });
  afterAll(() => {
    tb.cleanup();
    rmSync(work, { recursive: true, force: true });
    rmSync(canary, { force: true });
    rmSync(pwned, { force: true });
  });

  it.each(['/links/canary', `/links/root${canary}`, `/links/up${canary}`, `/links/tmp/${canary.slice(5)}`, canary])(
    'cannot read the host file through %s',
    async (path) => {
      const r = await tb.run(['run', '--rm', image, 'read', path]);
      expect(r.stdout).not.toContain(secret);
      expect(r.code).toBe(1);
    },
  );

  it.each([`/links/root${pwned}`, `/links/up${pwned}`, `/links/tmp/${pwned.slice(5)}`, pwned])(
    'cannot create a host file through %s',
    async (path) => {
      await tb.run(['run', '--rm', image, 'write', path, 'pwned']);
      expect(existsSync(pwned)).toBe(false);
    },
  );

  it('sees the links resolve to its own root', async () => {
    const r = await tb.run(['run', '--rm', image, 'ls', '/links/root']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual(expect.arrayContaining(['fileio.wasm', 'links']));
  });

  it('sees the runtime kit read-only', async () => {
    const r = await tb.run(['run', '--rm', image, 'write', '/.tugboat/host/host.mjs', 'tampered']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/read-only|Read-only|EROFS|permission/i);
  });
});
