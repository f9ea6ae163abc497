// `tugboat` as a runc-compatible OCI runtime, driven the way
// containerd-shim-runc-v2 drives it (go-runc argv order), with real runc below.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ociDerivedBundleDir } from '../../src/defaults.js';
import { EXAMPLES, exec, execDetached, TUGBOAT } from './helpers.js';

function makeBundle(dir: string, files: Record<string, string>, args: string[]): string {
  mkdirSync(join(dir, 'rootfs'), { recursive: true });
  for (const [dest, src] of Object.entries(files)) cpSync(src, join(dir, 'rootfs', dest));
  execFileSync('runc', ['spec'], { cwd: dir });
  const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = args;
  spec.root.readonly = false;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  return dir;
}

describe('tugboat as an OCI runtime (runc CLI)', () => {
  let work: string;
  let root: string;
  let state: string;
  let wasmBundle: string;
  let linuxBundle: string;
  const env = () => ({ TUGBOAT_STATE: state });
  const globals = () => ['--root', root, '--log', join(work, 'log.json'), '--log-format', 'json'];
  const rt = (args: string[]) => exec(TUGBOAT, [...globals(), ...args], { env: env() });
  // create and start leave the container holding their stdio, as the shim's pipes would be.
  const rtDetached = (args: string[]) => execDetached(TUGBOAT, [...globals(), ...args], { env: env() });

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'tugboat-oci-'));
    root = join(work, 'runc');
    state = join(work, 'state');
    wasmBundle = makeBundle(join(work, 'wasm'), { 'fileio.wasm': join(EXAMPLES, 'fileio.wasm'), 'exitcode.wasm': join(EXAMPLES, 'exitcode.wasm') }, ['/exitcode.wasm', 'sleep', '60']);
    linuxBundle = makeBundle(join(work, 'linux'), { busybox: '/bin/busybox' }, ['/busybox', 'sleep', '60']);
  });
  afterAll(() => {
    try {
      for (const c of (JSON.parse(execFileSync('runc', ['--root', root, 'list', '--format', 'json'], { encoding: 'utf8' }) || 'null') ?? []) as { id: string }[]) {
        execFileSync('runc', ['--root', root, 'delete', '--force', c.id], { stdio: 'ignore' });
      }
    } catch {
      // nothing was created
    }
    rmSync(work, { recursive: true, force: true });
  });

  it.each([
    ['wasm', () => wasmBundle],
    ['linux', () => linuxBundle],
  ])('runs the create/start/state/kill/delete life cycle of a %s container', async (kind, bundle) => {
    const id = `life-${kind}`;
    const before = readFileSync(join(bundle(), 'config.json'), 'utf8');
    const c = await rtDetached(['create', '--bundle', bundle(), '--pid-file', join(work, `${id}.pid`), id]);
    expect(c.code, c.stderr).toBe(0);
    const pidText = readFileSync(join(work, `${id}.pid`), 'utf8');
    expect(pidText).toMatch(/^\d+$/);
    const created = JSON.parse((await rt(['state', id])).stdout);
    expect(created).toMatchObject({ id, status: 'created', pid: Number(pidText) });
    expect((await rtDetached(['start', id])).code).toBe(0);
    expect(JSON.parse((await rt(['state', id])).stdout).status).toBe('running');
    const ps = await rt(['ps', '--format', 'json', id]);
    expect(JSON.parse(ps.stdout)).toContain(Number(pidText));
    // The host handles SIGTERM as PID 1; busybox sleep has no handler, so it
    // would ignore it (as any PID 1 does): it gets SIGKILL.
    expect((await rt(['kill', id, kind === 'wasm' ? '15' : 'KILL'])).code).toBe(0);
    for (let i = 0; i < 50 && JSON.parse((await rt(['state', id])).stdout).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(JSON.parse((await rt(['state', id])).stdout).status).toBe('stopped');
    expect((await rt(['delete', id])).code).toBe(0);
    expect((await rt(['state', id])).code).not.toBe(0);
    // The caller's bundle is never modified, and nothing of ours is left behind.
    expect(readFileSync(join(bundle(), 'config.json'), 'utf8')).toBe(before);
    expect(existsSync(join(state, 'bundles')) ? readdirSync(join(state, 'bundles')).flatMap((d) => readdirSync(join(state, 'bundles', d))) : []).toEqual([]);
  });

  it('keeps its state dir (derived bundles hold the environment) private, repairing an old one', async () => {
    mkdirSync(state, { recursive: true });
    chmodSync(state, 0o755);
    expect((await rtDetached(['create', '--bundle', wasmBundle, 'private'])).code).toBe(0);
    expect(statSync(state).mode & 0o777).toBe(0o700);
    expect((await rt(['delete', '--force', 'private'])).code).toBe(0);
  });

  it('marks a Wasm container in its state annotations', async () => {
    const id = 'annot';
    expect((await rtDetached(['create', '--bundle', wasmBundle, id])).code).toBe(0);
    const st = JSON.parse((await rt(['state', id])).stdout);
    expect(st.annotations['io.tugboat.workload']).toBe('wasm-module');
    expect((await rt(['delete', '--force', id])).code).toBe(0);
  });

  it('execs another module inside a running Wasm container', async () => {
    const id = 'wexec';
    expect((await rtDetached(['create', '--bundle', wasmBundle, id])).code).toBe(0);
    expect((await rtDetached(['start', id])).code).toBe(0);
    // --process form, as containerd and Docker use it.
    const proc = join(work, 'proc.json');
    writeFileSync(proc, JSON.stringify({ terminal: false, user: { uid: 0, gid: 0 }, args: ['/fileio.wasm', 'write', '/shared.txt', 'from exec'], env: ['PATH=/'], cwd: '/' }));
    const e = await rt(['exec', '--process', proc, id]);
    expect(e.stdout, e.stderr).toBe('wrote /shared.txt\n');
    expect(e.code).toBe(0);
    // Inline form; sees the file the first exec wrote: same root filesystem.
    const r = await rt(['exec', id, '/fileio.wasm', 'read', '/shared.txt']);
    expect(r.stdout).toBe('from exec');
    const code = await rt(['exec', id, '/exitcode.wasm', '7']);
    expect(code.code).toBe(7);
    expect((await rt(['delete', '--force', id])).code).toBe(0);
  });

  it('gives every guest of a container its io.tugboat.wasm.preopens directories, read-only ones by a read-only bind mount', async () => {
    const bundle = makeBundle(join(work, 'pre'), { 'fileio.wasm': join(EXAMPLES, 'fileio.wasm'), 'exitcode.wasm': join(EXAMPLES, 'exitcode.wasm') }, ['/exitcode.wasm', 'sleep', '60']);
    mkdirSync(join(bundle, 'rootfs', 'data'));
    writeFileSync(join(bundle, 'rootfs', 'data', 'in.txt'), 'in the image\n');
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    spec.annotations = { 'io.tugboat.wasm.preopens': '/d=/data:ro,/w=/tmp' };
    spec.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] });
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    const id = 'preopens';
    const c = await rtDetached(['create', '--bundle', bundle, id]);
    expect(c.code, c.stderr).toBe(0);
    try {
      expect((await rtDetached(['start', id])).code).toBe(0);
      const r = await rt(['exec', id, '/fileio.wasm', 'read', '/d/in.txt']);
      expect(r.stdout, r.stderr).toBe('in the image\n');
      // Read-only for the kernel: under its preopen name and under its own path.
      for (const path of ['/d/new.txt', '/data/new.txt']) {
        const w = await rt(['exec', id, '/fileio.wasm', 'write', path, 'x']);
        expect(w.code, path).toBe(1);
        expect(w.stderr).toMatch(/(Read-only|read-only|EROFS|Capabilities insufficient)/i);
      }
      const t = await rt(['exec', id, '/fileio.wasm', 'write', '/w/scratch.txt', 'ok']);
      expect(t.code, t.stderr).toBe(0);
      expect(existsSync(join(bundle, 'rootfs', 'data', 'new.txt'))).toBe(false);
    } finally {
      expect((await rt(['delete', '--force', id])).code).toBe(0);
    }
  });

  it('refuses a malformed io.tugboat.wasm.preopens at create: status 2, one line, nothing left behind', async () => {
    const bundle = makeBundle(join(work, 'badpre'), { 'fileio.wasm': join(EXAMPLES, 'fileio.wasm') }, ['/fileio.wasm', 'ls', '/']);
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    spec.annotations = { 'io.tugboat.wasm.preopens': '/d=data' };
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    const r = await rtDetached(['create', '--bundle', bundle, 'badpre']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('tugboat: annotation io.tugboat.wasm.preopens: container path "data" is not absolute in "/d=data" (expected GUEST=CONTAINER[:ro], both absolute, comma-separated)');
    const last = readFileSync(join(work, 'log.json'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).at(-1);
    expect(last).toMatchObject({ level: 'error', msg: expect.stringMatching(/io\.tugboat\.wasm\.preopens/) });
    expect((await rt(['state', 'badpre'])).code).not.toBe(0);
    expect(existsSync(join(state, 'bundles')) ? readdirSync(join(state, 'bundles')).flatMap((d) => readdirSync(join(state, 'bundles', d))) : []).toEqual([]);
  });

  it('reports a malformed bundle config as one clear error, also in the JSON log', async () => {
    const bad = join(work, 'bad');
    mkdirSync(join(bad, 'rootfs'), { recursive: true });
    writeFileSync(join(bad, 'config.json'), '{ "ociVersion": "1.0.2", ');
    const r = await rtDetached(['create', '--bundle', bad, 'bad1']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^tugboat: bundle config .*config\.json: invalid JSON: unexpected end of input$/);
    const last = readFileSync(join(work, 'log.json'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).at(-1);
    expect(last).toMatchObject({ level: 'error', msg: expect.stringMatching(/config\.json: invalid JSON/) });
    expect(typeof last.time).toBe('string');
  });

  it('rejects an unknown flag with status 2', async () => {
    const r = await rtDetached(['create', '--bogus', '--bundle', wasmBundle, 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/flag provided but not defined: -bogus/);
  });

  it('rejects an unknown global flag with runc\'s own words, not commander\'s', async () => {
    const r = await execDetached(TUGBOAT, ['--bogus', ...globals(), 'create', '--bundle', wasmBundle, 'x'], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('tugboat: flag provided but not defined: -bogus');
    expect(r.stderr).not.toMatch(/unknown option/);
  });

  it('rejects a missing container id and bad ids', async () => {
    const r = await rtDetached(['create', '--bundle', wasmBundle]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/container id cannot be empty/);
    const bad = await rtDetached(['create', '--bundle', wasmBundle, '../evil']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid container id format/);
  });

  it('answers like runc for a container that does not exist', async () => {
    for (const args of [['state', 'nope'], ['kill', 'nope', '9'], ['delete', 'nope'], ['exec', 'nope', '/x']]) {
      const r = await rt(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(/does not exist/);
    }
    expect((await rt(['delete', '--force', 'nope'])).code).toBe(0);
  });

  it('prints a version Docker can parse', async () => {
    const r = await exec(TUGBOAT, ['--version']);
    expect(r.stdout.split('\n')[0]).toMatch(/^tugboat version \d+\.\d+\.\d+$/);
    expect(r.stdout).toMatch(/^spec: 1\.0\.2-dev$/m);
  });
});

// Issue 11, item 3: `--root ..` plus `delete bundles` once wiped every
// derived bundle on the host. A fake runc stands in (the real one's delete of
// an unknown container removes <root>/<id> whole, which is exactly what must
// never reach our directories): it records its pid, so a test can tell
// bin/tugboat's sh fast path (runc execs in the place of the command) from
// Node's (Node spawns runc).
describe('issue 11 item 3: runc roots and derived bundle paths', () => {
  let work: string;
  let state: string;
  let data: string;
  let cwd: string;
  let calls: string;
  const env = () => ({ TUGBOAT_STATE: state, TUGBOAT_ROOT: data, TUGBOAT_RUNC: join(work, 'runc') });

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'tugboat-item3-'));
    state = join(work, 'state');
    data = join(work, 'data');
    cwd = join(work, 'a', 'cwd');
    calls = join(work, 'calls');
    mkdirSync(cwd, { recursive: true });
    writeFileSync(
      join(work, 'runc'),
      `#!/bin/sh\necho "$$ $*" >> ${calls}\necho 'time="2024-01-01T00:00:00Z" level=error msg="container does not exist"' >&2\nexit 1\n`,
      { mode: 0o755 },
    );
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** Runs `tugboat --root ROOT delete ID`; which path ran runc, if any. */
  async function del(root: string, id: string): Promise<{ code: number; stderr: string; path: 'sh' | 'node' | 'none' }> {
    rmSync(calls, { force: true });
    const child = spawn(TUGBOAT, ['--root', root, 'delete', id], { cwd, env: { ...process.env, ...env() }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number>((r) => child.once('close', (c) => r(c ?? 128)));
    if (!existsSync(calls)) return { code, stderr, path: 'none' };
    const pid = Number(readFileSync(calls, 'utf8').split(' ')[0]);
    return { code, stderr, path: pid === child.pid ? 'sh' : 'node' };
  }

  /** Derived bundles as the state dir holds them. */
  const bundles = () => (existsSync(join(state, 'bundles')) ? readdirSync(join(state, 'bundles')).flatMap((k) => readdirSync(join(state, 'bundles', k)).map((id) => `${k}/${id}`)).sort() : []);

  it.each([['/abs/runc'], ['rel/runc'], ['../x/./runc/'], ['a%b'], ['with space'], ['.'], ['..'], ['//double//slash']])(
    'bin/tugboat and src/defaults.ts agree on the derived bundle of --root %j',
    async (root) => {
      // The path Node computes, for a root given relative to the command's working directory.
      const derived = ociDerivedBundleDir(resolve(cwd, root), 'wasm1', { TUGBOAT_STATE: state, TUGBOAT_ROOT: data });
      mkdirSync(derived, { recursive: true });
      writeFileSync(join(derived, 'config.json'), '{}');
      // sh finds it, so Node runs the delete and removes it (runc does not know the container).
      const w = await del(root, 'wasm1');
      expect(w.path, w.stderr).toBe('node');
      expect(existsSync(derived)).toBe(false);
      // Nothing derived: sh hands the delete straight to runc.
      const l = await del(root, 'linux1');
      expect(l.path, l.stderr).toBe('sh');
      expect(l.code).toBe(1);
    },
  );

  it('--root .. delete bundles removes nobody else\'s derived bundles', async () => {
    const victim = ociDerivedBundleDir('/run/runc', 'victim', { TUGBOAT_STATE: state });
    mkdirSync(victim, { recursive: true });
    for (const root of ['..', '../..', join(state, '..')]) {
      const r = await del(root, 'bundles');
      expect(r.code).not.toBe(0);
      expect(bundles()).toEqual(['%run%runc/victim']);
    }
    // The same through Node (a derived bundle for that key exists, so sh passes it on).
    mkdirSync(ociDerivedBundleDir(resolve(cwd, '..'), 'bundles', { TUGBOAT_STATE: state }), { recursive: true });
    const r = await del('..', 'bundles');
    expect(r.path).toBe('node');
    expect(bundles()).toEqual(['%run%runc/victim']);
    rmSync(victim, { recursive: true });
  });

  it.each([
    ['a root inside the state dir', () => [join(state, 'bundles'), 'x'], /runc's state cannot live inside Tugboat's state dir/],
    ['the state dir as runc root', () => [state, 'bundles'], /runc's state cannot live inside Tugboat's state dir/],
    ['a root/ID that is the state dir', () => [work, 'state'], /which holds Tugboat's .*\/state; refusing/],
    ['a root/ID that holds the data root', () => [dirname(work), basename(work)], /which holds Tugboat's/],
  ])('%s never reaches runc (its delete would remove that directory whole): status 2', async (_what, args, message) => {
    const victim = ociDerivedBundleDir('/run/runc', 'victim', { TUGBOAT_STATE: state });
    mkdirSync(victim, { recursive: true });
    mkdirSync(data, { recursive: true });
    const [root, id] = args();
    const r = await del(root!, id!);
    expect(r.path).toBe('none');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(message);
    expect(bundles()).toEqual(['%run%runc/victim']);
    expect(existsSync(data)).toBe(true);
    rmSync(victim, { recursive: true });
  });
});
