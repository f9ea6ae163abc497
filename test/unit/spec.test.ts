import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { DEFAULT_PATH, defaultSpec } from '../../src/oci/runtime-spec.js';
import { mergeEnv, specFromImage } from '../../src/oci/spec-from-image.js';
import type { ImageConfig, ImageConfigProcess } from '../../src/oci/types.js';

const image = (config: ImageConfigProcess): ImageConfig => ({ os: 'linux', architecture: 'amd64', config });

let dir: string;
let rootfs: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tugboat-spec-'));
  rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(
    join(rootfs, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\n# comment\nbad line\napp:x:1000:1001::/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n',
  );
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nappgrp:x:1001:\nstaff:x:50:app,web\naudio:x:29:app\n');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('defaultSpec', () => {
  it('matches containerd defaults', () => {
    const s = defaultSpec();
    expect(s.ociVersion).toBe('1.0.2-dev');
    expect(s.root).toEqual({ path: 'rootfs' });
    expect(s.hostname).toBe('');
    expect(s.process).toMatchObject({ terminal: false, user: { uid: 0, gid: 0 }, args: [], env: [`PATH=${DEFAULT_PATH}`], cwd: '/', rlimits: [], noNewPrivileges: true });
    const caps = s.process?.capabilities;
    expect(caps?.bounding).toHaveLength(14);
    expect(caps?.bounding).toContain('CAP_NET_BIND_SERVICE');
    expect(caps?.bounding).not.toContain('CAP_SYS_ADMIN');
    expect(caps?.effective).toEqual(caps?.bounding);
    expect(caps?.permitted).toEqual(caps?.bounding);
    expect(caps?.effective).not.toBe(caps?.bounding); // separate arrays, safe to edit
    expect(s.mounts?.map((m) => `${m.destination} ${m.type}`)).toEqual([
      '/proc proc',
      '/dev tmpfs',
      '/dev/pts devpts',
      '/dev/shm tmpfs',
      '/dev/mqueue mqueue',
      '/sys sysfs',
      '/sys/fs/cgroup cgroup',
    ]);
    expect(s.mounts?.find((m) => m.destination === '/dev')?.options).toEqual(['nosuid', 'strictatime', 'mode=755', 'size=65536k']);
    expect(s.mounts?.find((m) => m.destination === '/sys/fs/cgroup')?.options).toContain('ro');
    expect(s.linux?.namespaces?.map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount', 'network']);
    expect(s.linux?.maskedPaths).toContain('/proc/kcore');
    expect(s.linux?.readonlyPaths).toContain('/proc/sysrq-trigger');
    expect(s.linux?.resources).toEqual({ devices: [{ allow: false, access: 'rwm' }] });
  });

  it('returns a fresh object each time', () => {
    const a = defaultSpec();
    a.process?.env?.push('X=1');
    expect(defaultSpec().process?.env).toEqual([`PATH=${DEFAULT_PATH}`]);
  });
});

describe('mergeEnv', () => {
  it('replaces by key in place and appends new keys', () => {
    expect(mergeEnv(['A=1', 'B=2'], ['B=3', 'C=4'])).toEqual(['A=1', 'B=3', 'C=4']);
  });
  it('keys on the first = only', () => {
    expect(mergeEnv(['A=x=y'], ['A=z=w'])).toEqual(['A=z=w']);
  });
  it('drops duplicate keys of a replaced entry', () => {
    expect(mergeEnv(['A=1', 'B=2', 'A=3'], ['A=9'])).toEqual(['A=9', 'B=2']);
  });
  it('unsets a bare KEY', () => {
    expect(mergeEnv(['A=1', 'B=2'], ['A'])).toEqual(['B=2']);
  });
  it('keeps an empty value', () => {
    expect(mergeEnv(['A=1'], ['A='])).toEqual(['A=']);
  });
});

describe('specFromImage', () => {
  it('uses the default PATH plus image Env, then overrides', () => {
    const s = specFromImage(image({ Env: ['A=1', 'B=2'], Cmd: ['/x'] }), rootfs, { env: ['B=3', 'C=4'] });
    expect(s.process?.env).toEqual([`PATH=${DEFAULT_PATH}`, 'A=1', 'B=3', 'C=4']);
  });

  it("keeps the image's own PATH", () => {
    const s = specFromImage(image({ Env: ['PATH=/opt/bin'], Cmd: ['/x'] }), rootfs, {});
    expect(s.process?.env).toEqual(['PATH=/opt/bin']);
  });

  it('joins Entrypoint and Cmd', () => {
    expect(specFromImage(image({ Entrypoint: ['/app.wasm'], Cmd: ['--a'] }), rootfs, {}).process?.args).toEqual(['/app.wasm', '--a']);
    expect(specFromImage(image({ Entrypoint: null, Cmd: ['/bin/sh'] }), rootfs, {}).process?.args).toEqual(['/bin/sh']);
  });

  it('lets user args replace Cmd only', () => {
    const s = specFromImage(image({ Entrypoint: ['/app.wasm'], Cmd: ['--a'] }), rootfs, { args: ['--b', 'c'] });
    expect(s.process?.args).toEqual(['/app.wasm', '--b', 'c']);
  });

  it('treats empty user args as none given', () => {
    expect(specFromImage(image({ Cmd: ['/x'] }), rootfs, { args: [] }).process?.args).toEqual(['/x']);
  });

  it('lets --entrypoint replace Entrypoint and drop Cmd', () => {
    const cfg = image({ Entrypoint: ['/app.wasm'], Cmd: ['--a'] });
    expect(specFromImage(cfg, rootfs, { entrypoint: ['/bin/sh'] }).process?.args).toEqual(['/bin/sh']);
    expect(specFromImage(cfg, rootfs, { entrypoint: ['/bin/sh'], args: ['-c', 'true'] }).process?.args).toEqual(['/bin/sh', '-c', 'true']);
  });

  it('fails when there is no command', () => {
    expect(() => specFromImage(image({}), rootfs, {})).toThrow(ConfigError);
    expect(() => specFromImage(image({}), rootfs, {})).toThrow('no command specified');
    expect(() => specFromImage({ os: 'linux', architecture: 'amd64' }, rootfs, {})).toThrow('no command specified');
    expect(() => specFromImage(image({ Entrypoint: ['/a'], Cmd: ['b'] }), rootfs, { entrypoint: [] })).toThrow('no command specified');
  });

  it('sets cwd from override, WorkingDir, or /', () => {
    expect(specFromImage(image({ Cmd: ['/x'], WorkingDir: '/srv' }), rootfs, {}).process?.cwd).toBe('/srv');
    expect(specFromImage(image({ Cmd: ['/x'], WorkingDir: '/srv' }), rootfs, { cwd: '/tmp' }).process?.cwd).toBe('/tmp');
    expect(specFromImage(image({ Cmd: ['/x'] }), rootfs, {}).process?.cwd).toBe('/');
    expect(specFromImage(image({ Cmd: ['/x'], WorkingDir: 'app' }), rootfs, {}).process?.cwd).toBe('/app');
  });

  it('sets the hostname when asked', () => {
    expect(specFromImage(image({ Cmd: ['/x'] }), rootfs, { hostname: 'box' }).hostname).toBe('box');
    expect(specFromImage(image({ Cmd: ['/x'] }), rootfs, {}).hostname).toBe('');
  });
});

describe('user resolution', () => {
  const user = (u: string | undefined, imageUser?: string, root = rootfs) =>
    specFromImage(image({ Cmd: ['/x'], ...(imageUser !== undefined ? { User: imageUser } : {}) }), root, u === undefined ? {} : { user: u }).process?.user;

  it('defaults to root', () => {
    expect(user(undefined)).toEqual({ uid: 0, gid: 0 });
  });

  it('resolves names against /etc/passwd and /etc/group', () => {
    expect(user('app')).toEqual({ uid: 1000, gid: 1001, additionalGids: [1001, 50, 29] });
    expect(user('app:staff')).toEqual({ uid: 1000, gid: 50, additionalGids: [50, 29] });
    expect(user('web:7')).toEqual({ uid: 33, gid: 7, additionalGids: [7, 50] });
  });

  it('takes a numeric uid as is, with its passwd gid if listed', () => {
    expect(user('1000')).toEqual({ uid: 1000, gid: 1001, additionalGids: [1001, 50, 29] });
    expect(user('4242')).toEqual({ uid: 4242, gid: 0 });
    expect(user('4242:77')).toEqual({ uid: 4242, gid: 77 });
    expect(user('4242:appgrp')).toEqual({ uid: 4242, gid: 1001 });
  });

  it("uses the image's User unless overridden", () => {
    expect(user(undefined, 'web')).toMatchObject({ uid: 33, gid: 33 });
    expect(user('0', 'web')).toEqual({ uid: 0, gid: 0 });
  });

  it('fails on unknown names and malformed specs', () => {
    expect(() => user('nobody')).toThrow(ConfigError);
    expect(() => user('nobody')).toThrow('user "nobody" not found');
    expect(() => user('app:nogroup')).toThrow('group "nogroup" not found');
    expect(() => user('a:b:c')).toThrow('invalid user');
    expect(() => user(':1')).toThrow(ConfigError);
    expect(() => user('99999999999')).toThrow('out of range');
  });

  it('ignores a symlinked /etc/passwd that points outside the rootfs', async () => {
    await writeFile(join(dir, 'host-passwd'), 'evil:x:0:0::/:/bin/sh\napp:x:0:0::/:/bin/sh\n');
    await rm(join(rootfs, 'etc/passwd'));
    await symlink(join(dir, 'host-passwd'), join(rootfs, 'etc/passwd'));
    expect(() => user('evil')).toThrow(ConfigError);
    expect(() => user('evil')).toThrow('no usable /etc/passwd');
    expect(() => user('app')).toThrow(ConfigError);
    expect(user('1000')).toEqual({ uid: 1000, gid: 0 });
  });

  it('ignores a symlinked /etc directory', async () => {
    const other = join(dir, 'other-root');
    await mkdir(join(other, 'etc'), { recursive: true });
    await writeFile(join(other, 'etc/passwd'), 'evil:x:0:0::/:/bin/sh\n');
    await symlink(join(other, 'etc'), join(other, 'etc-link'));
    const linked = join(dir, 'linked-rootfs');
    await mkdir(linked);
    await symlink(join(other, 'etc'), join(linked, 'etc'));
    expect(() => user('evil', undefined, linked)).toThrow(ConfigError);
    expect(user('5', undefined, linked)).toEqual({ uid: 5, gid: 0 });
  });

  it('works with no /etc at all for numeric ids', async () => {
    const bare = join(dir, 'bare');
    await mkdir(bare);
    expect(user('5:6', undefined, bare)).toEqual({ uid: 5, gid: 6 });
    expect(() => user('app', undefined, bare)).toThrow(ConfigError);
  });

  it('does not hang on a FIFO in place of /etc/passwd', async () => {
    const { execFileSync } = await import('node:child_process');
    await rm(join(rootfs, 'etc/passwd'));
    execFileSync('mkfifo', [join(rootfs, 'etc/passwd')]);
    expect(() => user('app')).toThrow(ConfigError);
  });
});
