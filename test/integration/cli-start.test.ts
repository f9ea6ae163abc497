// The CLI and the shim load what a command needs when it needs it (README
// "Performance"). Nothing here times anything: the checks are which of
// Node's builtins a command loaded, and that building only the command given
// (not all of them) changed no help, error or suggestion.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, DeleteResponseSchema } from '../../src/shim/proto/index.js';
import { exec, REPO, TugboatSandbox, WASM } from './helpers.js';

const SHIM = join(REPO, 'bin', 'containerd-shim-tugboat-v1');

/** Heavy builtins no command loads unless it does that kind of work. */
const ARCHIVES = ['zlib'];
const NETWORK = ['http', 'https', 'tls', 'http2'];
const RARE = ['worker_threads', 'readline', 'vm', 'inspector'];

describe('what each command loads', () => {
  let tb: TugboatSandbox;
  let work: string;
  let preload: string;

  beforeAll(async () => {
    tb = new TugboatSandbox('tugboat-start-');
    work = mkdtempSync(join(tmpdir(), 'tugboat-start-work-'));
    preload = join(work, 'builtins.cjs');
    // Written at exit, to the file the test names: the public builtins the process loaded.
    writeFileSync(
      preload,
      "process.on('exit', () => require('fs').writeFileSync(process.env.TUGBOAT_TEST_BUILTINS, " +
        "process.moduleLoadList.filter((m) => m.startsWith('NativeModule ') && !m.includes('internal/')).map((m) => m.slice(13)).join('\\n')));\n",
    );
    expect((await tb.run(['image', 'import', WASM('hello'), '--name', 'hello'])).code).toBe(0);
    // Unpacks the image: later runs find its root filesystem in the store.
    expect((await tb.run(['run', '--rm', 'hello'])).code).toBe(0);
  });
  afterAll(() => {
    tb?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  async function builtinsOf(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ builtins: Set<string>; code: number }> {
    const out = join(work, `builtins-${Math.random().toString(36).slice(2)}`);
    const r = await exec(cmd, args, { env: { NODE_OPTIONS: `--require ${preload}`, TUGBOAT_TEST_BUILTINS: out, ...env } });
    return { builtins: new Set(readFileSync(out, 'utf8').split('\n')), code: r.code };
  }

  it.each([
    ['image ls', () => ['--root', tb.root, 'image', 'ls'], ['crypto', 'child_process', ...ARCHIVES, ...NETWORK, ...RARE]],
    ['ps', () => ['--root', tb.root, 'ps'], ['crypto', ...ARCHIVES, ...NETWORK, ...RARE]],
    ['--version', () => ['--version'], ['crypto', ...ARCHIVES, ...NETWORK, ...RARE]],
    ['run --rm of an unpacked image', () => ['--root', tb.root, 'run', '--rm', 'hello'], [...ARCHIVES, ...NETWORK, ...RARE]],
  ])('%s', async (_what, args, never) => {
    const { builtins, code } = await builtinsOf(join(REPO, 'bin', 'tugboat'), args());
    expect(code).toBe(0);
    expect(never.filter((m) => builtins.has(m))).toEqual([]);
  });

  // The wrapper answers such a delete from sh (shim-delete.test.ts); this is Node's own path, which it falls back to.
  it('shim delete in Node: no sockets, no child processes, no hashing, and the DeleteResponse containerd expects', async () => {
    const bundle = join(work, 'task');
    mkdirSync(join(bundle, 'rootfs'), { recursive: true });
    writeFileSync(join(bundle, 'config.json'), '{"ociVersion":"1.0.2"}');
    writeFileSync(join(bundle, 'init.pid'), '4242');
    const { builtins, code } = await builtinsOf(SHIM, ['-namespace', 'tugboat-test', '-id', 'gone', '-address', join(work, 'none.sock'), '-bundle', bundle, 'delete'], { TUGBOAT_SHIM_FAST: 'off' });
    expect(code).toBe(0);
    expect(['net', 'child_process', 'crypto', 'fs/promises', ...ARCHIVES, ...NETWORK, ...RARE].filter((m) => builtins.has(m))).toEqual([]);
    const stdout = execFileSync(SHIM, ['-namespace', 'tugboat-test', '-id', 'gone', '-address', join(work, 'none.sock'), '-bundle', bundle, 'delete'], { env: { ...process.env, TUGBOAT_SHIM_FAST: 'off' } });
    const res = decode(DeleteResponseSchema, stdout);
    expect(res).toMatchObject({ pid: 4242, exitStatus: 137 });
    expect(Math.abs(Number(res.exitedAt!.seconds) * 1000 - Date.now())).toBeLessThan(60_000);
  });
});

// A guest's thread loads its bundle before it serves or runs anything.
// node:http's WebSocket, CloseEvent and MessageEvent getters load Node's
// whole undici (~60 ms), and a bundle that takes node:http's namespace (as
// preview2-shim's HTTP code does) read them all when it was evaluated
// (scripts/bundle-host.mjs, neverRead). Evaluated here on a main thread,
// where the module list is this process's: the thread's own code only waits
// for a message there.
describe("a guest thread's bundle", () => {
  it.each([
    ['component.mjs', "a component's thread (container level)"],
    ['http-worker.mjs', "an HTTP component's handler thread"],
    ['hosted-component.mjs', "a component's thread in a shared host"],
  ])('%s (%s) does not load undici', async (bundle) => {
    const url = pathToFileURL(join(REPO, 'dist', 'host', bundle)).href;
    const script = `await import(${JSON.stringify(url)}); console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('undici'))));`;
    const r = await exec(join(REPO, 'vendor', 'node', 'bin', 'node'), ['--input-type=module', '-e', script]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual([]);
  });
});

describe('building only the command given', () => {
  const tugboat = (args: string[]) => exec(join(REPO, 'bin', 'tugboat'), args);

  it('still lists every command in the help', async () => {
    const r = await tugboat(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['run', 'ps', 'rm', 'cleanup', 'image', 'pull', 'push', 'login', 'logout', 'seccomp-profile', 'version', 'help']) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
  });

  it('still suggests a command for a typo, after global options too', async () => {
    for (const args of [['rnu'], ['--root', '/nonexistent', '--log-level', 'warn', 'rnu']]) {
      const r = await tugboat(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/unknown command 'rnu'/);
      expect(r.stderr).toMatch(/Did you mean run\?/);
    }
    const r = await tugboat(['image', 'lss']);
    expect(r.stderr).toMatch(/Did you mean ls\?/);
  });

  it("gives a command's own help and errors", async () => {
    let r = await tugboat(['--root=/nonexistent', 'run', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: tugboat run \[options\] <image> \[args\.\.\.\]/);
    r = await tugboat(['image', 'ls', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--bogus'/);
  });
});
