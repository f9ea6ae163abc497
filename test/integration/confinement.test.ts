// Escape attempts against the host: links to "/", "../../..", absolute names,
// a link to a host file, and a rename race against a path being opened. They
// run twice: inside a container (tugboat run, runc around the host) and with
// the host directly on this machine on a root directory, with no runc at all,
// where only the host's kernel-resolved paths (openat2 RESOLVE_IN_ROOT, or
// the O_NOFOLLOW walk) stand between the guest and the host's files. The
// same matrix runs for a core module (Tugboat's preview1 host) and for a
// component (Tugboat's wasi:filesystem, through jco's glue and the preview1
// adapter), with openat2 and with the walk, with and without runc.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuestComponent } from '../../src/wasi-host/guest-config.js';
import { setOpenat2 } from '../../src/wasi-host/preview1/index.js';
import { EXAMPLES, GUESTS, runGuest } from '../helpers/guest-run.js';
import { runComponentHost, transpiledComponent } from './component-helpers.js';
import { exec, REPO, TugboatSandbox, type Result } from './helpers.js';

const COMPONENTS = join(REPO, 'examples', 'components', 'out');

const secret = `secret-${randomBytes(8).toString('hex')}`;
const hostDir = join('/tmp', `tugboat-canary-${randomBytes(6).toString('hex')}`);
const canary = join(hostDir, 'secret');
const pwned = join('/tmp', `tugboat-pwned-${randomBytes(6).toString('hex')}`);

/** The image's tree: fileio.wasm, probe.wasm (and their components), hostile links, and the race directory. */
function buildTree(dir: string): void {
  copyFileSync(join(EXAMPLES, 'fileio.wasm'), join(dir, 'fileio.wasm'));
  copyFileSync(join(GUESTS, 'probe.wasm'), join(dir, 'probe.wasm'));
  copyFileSync(join(COMPONENTS, 'fileio.wasm'), join(dir, 'fileio-component.wasm'));
  copyFileSync(join(GUESTS, 'probe.component.wasm'), join(dir, 'probe-component.wasm'));
  const links = join(dir, 'links');
  mkdirSync(links);
  symlinkSync('/', join(links, 'root'));
  symlinkSync('../../../../../../../..', join(links, 'up'));
  symlinkSync('/tmp', join(links, 'tmp'));
  symlinkSync(canary, join(links, 'canary'));
  symlinkSync(hostDir, join(links, 'hostdir'));
  mkdirSync(join(dir, 'race', 'd'), { recursive: true });
  writeFileSync(join(dir, 'race', 'd', 'secret'), 'inside');
  symlinkSync(hostDir, join(dir, 'race', 'abs'));
  symlinkSync(`../../../../../../../..${hostDir}`, join(dir, 'race', 'rel'));
}

const READS = ['/links/canary', `/links/root${canary}`, `/links/up${canary}`, `/links/tmp${canary.slice(4)}`, '/links/hostdir/secret', canary, `/../../..${canary}`];
const WRITES = [`/links/root${pwned}`, `/links/up${pwned}`, `/links/tmp${pwned.slice(4)}`, '/links/hostdir/pwned', pwned, `/../../..${pwned}`];

/**
 * Swaps race/d between the real directory and a symlink out of the root
 * (absolute, then climbing), as fast as it can, in its own process.
 */
function startSwapper(raceDir: string): ChildProcess {
  const script = `
    const fs = require('fs'); const p = require('path'); const d = ${JSON.stringify(raceDir)};
    const swap = (link) => { try { fs.renameSync(p.join(d, 'd'), p.join(d, 'd.real')); fs.renameSync(p.join(d, link), p.join(d, 'd'));
      fs.renameSync(p.join(d, 'd'), p.join(d, link)); fs.renameSync(p.join(d, 'd.real'), p.join(d, 'd')); } catch {} };
    for (;;) { swap('abs'); swap('rel'); }`;
  return spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
}

/** Runs `race` (the probe's rename-race mode) while the swapper swaps race/d: nothing outside is read or written. */
async function withSwapper(raceDir: string, run: () => Promise<Result>, rounds: number): Promise<void> {
  const swapper = startSwapper(raceDir);
  let r: Result;
  try {
    r = await run();
  } finally {
    swapper.kill('SIGKILL');
  }
  expect(r.stderr).toBe('');
  expect(r.stdout).toContain(`done ${rounds}`);
  expect(r.stdout).not.toContain(secret);
  expectNothingOutside();
}

/** `tugboat run` of the probe's race mode (entrypoint `probe`) in a container, swapping inside its rootfs. */
async function raceInContainer(tb: TugboatSandbox, image: string, probe: string, rounds: number, extra: string[] = []): Promise<void> {
  const name = `race-${randomBytes(4).toString('hex')}`;
  const run = tb.run(['run', '--rm', '--name', name, ...extra, '--entrypoint', probe, image, 'race', '/race/d/secret', String(rounds)]);
  const raceDir = join(tb.root, 'containers', name, 'rootfs', 'race');
  for (let i = 0; i < 400 && !existsSync(join(raceDir, 'abs')); i++) await new Promise((r) => setTimeout(r, 25));
  await withSwapper(raceDir, () => run, rounds);
}

function expectNothingOutside(): void {
  expect(existsSync(pwned)).toBe(false);
  expect(existsSync(join(hostDir, 'pwned'))).toBe(false);
  expect(existsSync(`${canary}.pwned`)).toBe(false);
  expect(readFileSync(canary, 'utf8')).toBe(secret);
}

beforeAll(() => {
  mkdirSync(hostDir);
  writeFileSync(canary, secret);
});
afterAll(() => {
  rmSync(hostDir, { recursive: true, force: true });
  rmSync(pwned, { force: true });
});

describe('confinement with the host directly on the machine (no runc)', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'tugboat-conf-root-'));
    buildTree(root);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  describe.each([
    ['openat2', true],
    ['the component walk', false],
  ])('paths resolved with %s', (_n, useOpenat2) => {
    beforeAll(() => setOpenat2(useOpenat2));
    afterAll(() => setOpenat2(undefined));

    it.each(READS)('cannot read the host file through %s', async (path) => {
      const r = await runGuest(join(EXAMPLES, 'fileio.wasm'), ['read', path], { root });
      expect(r.stdout).not.toContain(secret);
      expect(r.outcome).toEqual({ kind: 'exit', code: 1 });
    });

    it.each(WRITES)('cannot create a host file through %s', async (path) => {
      await runGuest(join(EXAMPLES, 'fileio.wasm'), ['write', path, 'pwned'], { root });
      expectNothingOutside();
    });

    it('sees the links resolve inside its own root', async () => {
      const r = await runGuest(join(EXAMPLES, 'fileio.wasm'), ['ls', '/links/root'], { root });
      expect(r.outcome).toEqual({ kind: 'exit', code: 0 });
      expect(r.stdout.split('\n')).toEqual(expect.arrayContaining(['fileio.wasm', 'links', 'race']));
    });
  });

  it.each([
    ['openat2', '0'],
    ['the component walk', '1'],
  ])('wins no rename race (%s)', async (_n, noOpenat2) => {
    const guest = { args: ['/probe.wasm', 'race', '/race/d/secret', '20000'], env: [], root, cwd: '/' };
    const run = () => exec(process.execPath, ['--no-warnings', join(REPO, 'dist', 'host', 'host.mjs')], {
      env: { TUGBOAT_GUEST: JSON.stringify(guest), TUGBOAT_WASI_NO_OPENAT2: noOpenat2 },
    });
    await withSwapper(join(root, 'race'), run, 20000);
  }, 120_000);
});

describe('a component\'s confinement with the host directly on the machine (no runc)', () => {
  let root: string;
  let cache: string;
  let fileio: GuestComponent;
  let probe: GuestComponent;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'tugboat-conf-croot-'));
    cache = mkdtempSync(join(tmpdir(), 'tugboat-conf-cache-'));
    buildTree(root);
    fileio = await transpiledComponent(join(COMPONENTS, 'fileio.wasm'), cache);
    probe = await transpiledComponent(join(GUESTS, 'probe.component.wasm'), cache);
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  });

  describe.each([
    ['openat2', false],
    ['the component walk', true],
  ])('paths resolved with %s', (_n, noOpenat2) => {
    const fileioRun = (args: string[]) => runComponentHost({ args: ['/fileio.wasm', ...args], env: [], root, cwd: '/', component: fileio }, { noOpenat2 });

    it.each(READS)('cannot read the host file through %s', async (path) => {
      const r = await fileioRun(['read', path]);
      expect(r.stdout).not.toContain(secret);
      expect(r.code).toBe(1);
    });

    it.each(WRITES)('cannot create a host file through %s', async (path) => {
      await fileioRun(['write', path, 'pwned']);
      expectNothingOutside();
    });

    it('sees the links resolve inside its own root', async () => {
      const r = await fileioRun(['ls', '/links/root']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.split('\n')).toEqual(expect.arrayContaining(['fileio.wasm', 'links', 'race']));
    });

    it('wins no rename race', async () => {
      const run = () => runComponentHost({ args: ['/probe.wasm', 'race', '/race/d/secret', '5000'], env: [], root, cwd: '/', component: probe }, { noOpenat2 });
      await withSwapper(join(root, 'race'), run, 5000);
    }, 120_000);
  });
});

// The same escapes inside a container of its own and at process isolation
// (the guest runs in the calling process, no runc: the kernel-resolved paths
// are all that confine it).
const LEVELS: Array<[string, string[]]> = [
  ['inside a container (tugboat run)', []],
  ['at process isolation, no runc (tugboat run --isolation process)', ['--isolation', 'process']],
];

describe.each(LEVELS)('confinement %s', (_name, level) => {
  let tb: TugboatSandbox;
  let work: string;
  let image: string;

  beforeAll(async () => {
    tb = new TugboatSandbox();
    work = mkdtempSync(join(tmpdir(), 'tugboat-conf-'));
    const tree = join(work, 'tree');
    mkdirSync(tree);
    buildTree(tree);
    image = `oci:${join(work, 'layout')}:links`;
    const files = ['links', 'race', 'probe.wasm'].flatMap((f) => ['--file', `${join(tree, f)}:/${f}`]);
    const b = await tb.run(['image', 'build', join(tree, 'fileio.wasm'), ...files, '-o', image]);
    expect(b.code, b.stderr).toBe(0);
  });
  afterAll(() => {
    tb.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it.each(READS)('cannot read the host file through %s', async (path) => {
    const r = await tb.run(['run', '--rm', ...level, image, 'read', path]);
    expect(r.stdout).not.toContain(secret);
    expect(r.code).toBe(1);
  });

  it.each(WRITES)('cannot create a host file through %s', async (path) => {
    await tb.run(['run', '--rm', ...level, image, 'write', path, 'pwned']);
    expectNothingOutside();
  });

  it('sees the links resolve to its own root', async () => {
    const r = await tb.run(['run', '--rm', ...level, image, 'ls', '/links/root']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual(expect.arrayContaining(['fileio.wasm', 'links']));
  });

  it('cannot change the runtime kit', async () => {
    const r = await tb.run(['run', '--rm', ...level, image, 'write', '/.tugboat/host/host.mjs', 'tampered']);
    expect(r.code).toBe(1);
    // In a container the kit is a read-only mount; at process level it is not in the guest's root at all.
    expect(r.stderr).toMatch(level.length === 0 ? /read-only|Read-only|EROFS|permission/i : /No such file or directory/);
  });

  it('wins no rename race', async () => {
    await raceInContainer(tb, image, '/probe.wasm', 5000, level);
  }, 120_000);
});

describe.each(LEVELS)('a component\'s confinement %s', (_name, level) => {
  let tb: TugboatSandbox;
  let work: string;
  let image: string;
  let noOpenat2Profile: string;

  beforeAll(async () => {
    tb = new TugboatSandbox();
    work = mkdtempSync(join(tmpdir(), 'tugboat-cconf-'));
    const tree = join(work, 'tree');
    mkdirSync(tree);
    buildTree(tree);
    image = `oci:${join(work, 'layout')}:links`;
    const files = ['links', 'race', 'probe-component.wasm'].flatMap((f) => ['--file', `${join(tree, f)}:/${f}`]);
    const b = await tb.run(['image', 'build', join(tree, 'fileio-component.wasm'), ...files, '-o', image]);
    expect(b.code, b.stderr).toBe(0);
    // A profile that refuses openat2 as Docker's older default profiles do (EPERM): the host walks instead.
    noOpenat2Profile = join(work, 'no-openat2.json');
    writeFileSync(noOpenat2Profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['openat2'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }));
  });
  afterAll(() => {
    tb.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  // A seccomp profile is runc's: at process level only openat2 (or the walk where the kernel lacks it) applies.
  const resolvers: Array<[string, boolean]> = [['openat2', false], ...(level.length === 0 ? [['the component walk (openat2 refused by seccomp)', true] as [string, boolean]] : [])];
  describe.each(resolvers)('paths resolved with %s', (_n, walk) => {
    const opts = () => [...level, ...(walk ? ['--security-opt', `seccomp=${noOpenat2Profile}`] : [])];

    it.each(READS)('cannot read the host file through %s', async (path) => {
      const r = await tb.run(['run', '--rm', ...opts(), image, 'read', path]);
      expect(r.stdout).not.toContain(secret);
      expect(r.code).toBe(1);
    });

    it.each(WRITES)('cannot create a host file through %s', async (path) => {
      await tb.run(['run', '--rm', ...opts(), image, 'write', path, 'pwned']);
      expectNothingOutside();
    });

    it('sees the links resolve to its own root', async () => {
      const r = await tb.run(['run', '--rm', ...opts(), image, 'ls', '/links/root']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.split('\n')).toEqual(expect.arrayContaining(['fileio-component.wasm', 'links']));
    });

    it('wins no rename race', async () => {
      await raceInContainer(tb, image, '/probe-component.wasm', 2000, opts());
    }, 120_000);
  });
});
