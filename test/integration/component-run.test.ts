// `tugboat run` of Wasm components (wasi:cli/command) under real runc: jco
// transpiles outside the container into a cache keyed by the component's
// sha256, the entry is mounted read-only, the host runs it with preview2-shim.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type DockerdHandle } from './daemons/dockerd.js';
import { FIXTURES, freePort, TUGBOAT, TugboatSandbox, useRunSandbox, WASM } from './helpers.js';

const COMPONENT = (name: string) => WASM(`component-${name}`);

describe('tugboat run: Wasm components', () => {
  const s = useRunSandbox();

  const cacheEntries = () => readdirSync(join(s.tb.root, 'components')).filter((n) => /^[0-9a-f]{64}$/.test(n));

  it('passes stdout, stderr, args and env to the component', async () => {
    const r = await s.tb.run(['run', '--rm', '-e', 'GREETING=ahoy', COMPONENT('hello'), 'one', 'two words']);
    expect(r.stderr).toBe('stderr: hello\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hello from wasm\n');
    expect(r.stdout).toContain('args: /hello.wasm one two words\n');
    expect(r.stdout).toContain('env: GREETING=ahoy\n');
    expect(r.stdout).not.toMatch(/TUGBOAT_GUEST|NODE_|PREVIEW2/);
  });

  it('transpiles once: the next start reuses the cache entry untouched', async () => {
    const before = cacheEntries();
    expect(before.length).toBeGreaterThan(0);
    const entry = join(s.tb.root, 'components', before[0]!);
    const stamp = () => [statSync(entry).ino, statSync(entry).mtimeMs, statSync(join(entry, 'component.mjs')).ino, statSync(join(entry, 'meta.json')).mtimeMs];
    const was = stamp();
    const r = await s.tb.run(['--log-level', 'debug', 'run', '--rm', COMPONENT('hello')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('"msg":"component cache hit"');
    expect(r.stderr).not.toContain('"msg":"component transpiled"');
    expect(stamp()).toEqual(was);
    expect(cacheEntries()).toEqual(before);
    expect(readdirSync(join(s.tb.root, 'components')).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('logs the transpile on a miss (fresh root)', async () => {
    const other = new TugboatSandbox();
    try {
      const r = await other.run(['--log-level', 'debug', 'run', '--rm', COMPONENT('hello')]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('"msg":"component transpiled"');
      const meta = JSON.parse(readFileSync(join(other.root, 'components', readdirSync(join(other.root, 'components'))[0]!, 'meta.json'), 'utf8')) as { world: string; exports: string[] };
      expect(meta.world).toBe('command');
      expect(meta.exports).toEqual(['wasi:cli/run@0.2.12']);
    } finally {
      other.cleanup();
    }
  });

  it('exit(ok) → 0 and exit(err) → 1 (the preview1 adapter maps every non-zero proc_exit to err)', async () => {
    expect((await s.tb.run(['run', '--rm', COMPONENT('exitcode'), '0'])).code).toBe(0);
    expect((await s.tb.run(['run', '--rm', COMPONENT('exitcode'), '3'])).code).toBe(1);
  });

  it('exit-with-code n → n', async () => {
    // 39 + argc: /exit-with-code.wasm a b → 42
    expect((await s.tb.run(['run', '--rm', COMPONENT('exit-with-code'), 'a', 'b'])).code).toBe(42);
    expect((await s.tb.run(['run', '--rm', COMPONENT('exit-with-code'), 'a', 'b', 'c', 'd', 'e', 'f', 'g'])).code).toBe(47);
  });

  it('reports a trap on stderr with status 134', async () => {
    const r = await s.tb.run(['run', '--rm', COMPONENT('exitcode'), 'trap']);
    expect(r.code).toBe(134);
    expect(r.stdout).toBe('about to trap\n');
    expect(r.stderr).toMatch(/^tugboat: wasm trap in \/exitcode\.wasm: .*unreachable/m);
  });

  it('ends with 143 on SIGTERM while the guest sleeps', async () => {
    const r = await s.tb.run(['run', '--rm', COMPONENT('exitcode'), 'sleep', '60'], { signal: { name: 'SIGTERM', after: 'sleeping' } });
    expect(r.code).toBe(143);
  });

  it('reads and writes its root filesystem through the preopens', async () => {
    const ls = await s.tb.run(['run', '--rm', COMPONENT('fileio'), 'ls', '/']);
    expect(ls.code).toBe(0);
    expect(ls.stdout.split('\n')).toContain('fileio.wasm');
    const w = await s.tb.run(['run', '--rm', COMPONENT('fileio'), 'write', '/note.txt', 'hi']);
    expect(w.stdout).toBe('wrote /note.txt\n');
    expect(w.code).toBe(0);
  });

  it('resolves relative paths against -w', async () => {
    const r = await s.tb.run(['run', '--rm', '-w', '/tmp', COMPONENT('fileio'), 'write', 'rel.txt', 'x']);
    expect(r.stdout).toBe('wrote rel.txt\n');
    expect(r.code).toBe(0);
  });

  it('reads and writes a -v volume, and a read-only one refuses writes', async () => {
    writeFileSync(join(s.vol, 'in.txt'), 'from the host\n');
    const r = await s.tb.run(['run', '--rm', '-v', `${s.vol}:/data`, COMPONENT('fileio'), 'read', '/data/in.txt']);
    expect(r.stdout).toBe('from the host\n');
    const w = await s.tb.run(['run', '--rm', '-v', `${s.vol}:/data`, COMPONENT('fileio'), 'write', '/data/out.txt', 'from the guest']);
    expect(w.code).toBe(0);
    expect(readFileSync(join(s.vol, 'out.txt'), 'utf8')).toBe('from the guest');
    const ro = await s.tb.run(['run', '--rm', '-v', `${s.vol}:/data:ro`, COMPONENT('fileio'), 'write', '/data/ro.txt', 'x']);
    expect(ro.code).toBe(1);
  });

  it('cannot write into its transpile cache entry', async () => {
    const entry = join(s.tb.root, 'components', cacheEntries()[0]!);
    const snapshot = () => readdirSync(entry).sort().map((f) => [f, readFileSync(join(entry, f)).toString('base64')]);
    const before = snapshot();
    const ls = await s.tb.run(['run', '--rm', COMPONENT('fileio'), 'ls', '/.tugboat-component']);
    expect(ls.stdout.split('\n')).toContain('component.mjs');
    for (const target of ['/.tugboat-component/component.mjs', '/.tugboat-component/new.mjs', '/.tugboat-component/component.core.wasm']) {
      const r = await s.tb.run(['run', '--rm', COMPONENT('fileio'), 'write', target, 'pwned']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/Read-only file system/);
    }
    const app = await s.tb.run(['run', '--rm', COMPONENT('fileio'), 'append', '/.tugboat-component/meta.json', 'x']);
    expect(app.code).toBe(1);
    expect(snapshot()).toEqual(before);
  });

  it('leaves no mounts or containers behind with --rm', async () => {
    await s.tb.run(['run', '--rm', COMPONENT('hello')]);
    expect(s.tb.mounts()).toEqual([]);
    const ps = await s.tb.run(['ps', '--format', 'json']);
    expect(JSON.parse(ps.stdout)).toEqual([]);
  });
});

// The runc-compatible path: Docker 20.10 → containerd-shim-runc-v2 →
// `tugboat create`, which transpiles into <TUGBOAT_ROOT>/components (here a
// temp dir, through a wrapper, instead of /var/lib/tugboat/components).
describe('docker run --runtime tugboat: a Wasm component', () => {
  let d: DockerdHandle;
  let root: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'tugboat-dcomp-'));
    const wrapper = join(root, 'tugboat-runtime');
    writeFileSync(wrapper, `#!/bin/sh\nTUGBOAT_ROOT=${root} exec ${TUGBOAT} "$@"\n`);
    chmodSync(wrapper, 0o755);
    d = await startDockerd({ runtimes: { tugboat: { path: wrapper } } });
    const r = await d.docker(['load', '-i', join(FIXTURES, 'component-hello.docker.tar')]);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    await d?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('runs it, and the second run reuses the transpile cache', async () => {
    const run = async () => {
      const r = await d.docker(['run', '--rm', '--runtime', 'tugboat', '-e', 'GREETING=ahoy', 'tugboat.local/component-hello:latest', 'one'], { timeoutMs: 60_000 });
      return { ...r, stderr: r.stderr.replace(/^WARNING: .*\n/gm, '') };
    };
    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('hello from wasm\n');
    expect(first.stdout).toContain('args: /hello.wasm one\n');
    expect(first.stdout).toContain('env: GREETING=ahoy\n');
    expect(first.stderr).toBe('stderr: hello\n');
    const entries = readdirSync(join(root, 'components')).filter((n) => /^[0-9a-f]{64}$/.test(n));
    expect(entries).toHaveLength(1);
    const meta = join(root, 'components', entries[0]!, 'meta.json');
    const was = [statSync(meta).ino, statSync(meta).mtimeMs];
    const second = await run();
    expect(second.code, second.stderr).toBe(0);
    expect([statSync(meta).ino, statSync(meta).mtimeMs]).toEqual(was);
  });
});

// wasi:http/incoming-handler, served like `wasmtime serve`: with --network
// host on a free loopback port given as PORT, fetched from the test.
describe('tugboat run: an HTTP component', () => {
  let tb: TugboatSandbox;
  let port: number;
  let child: ReturnType<typeof spawn>;
  let stdout = '';
  let stderr = '';
  let exited: Promise<number>;
  const url = (path: string) => `http://127.0.0.1:${port}${path}`;

  beforeAll(async () => {
    tb = new TugboatSandbox();
    port = await freePort();
    child = spawn(TUGBOAT, ['--root', tb.root, 'run', '--rm', '--network', 'host', '-e', `PORT=${port}`, COMPONENT('http')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15))));
    // Up when it answers (the first start transpiles a 14 MB component).
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(url('/ready'))).ok) break;
      } catch {
        if (i > 600 || child.exitCode !== null) throw new Error(`HTTP component never came up: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    tb.cleanup();
  });

  it('answers a request', async () => {
    const r = await fetch(url('/abc?x=1'));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain');
    expect(await r.text()).toBe('hello from a wasm component: /abc\n');
    const e = await fetch(url('/echo'), { method: 'POST', body: 'ping pong' });
    expect(await e.text()).toBe('ping pong');
  });

  it('answers 200 concurrent requests with the right bodies (fresh instance each)', async () => {
    const all = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const r = await fetch(url(`/id/${i}`));
        return [r.status, await r.text()] as const;
      }),
    );
    all.forEach(([status, body], i) => {
      expect(status).toBe(200);
      expect(body).toBe(`id ${i}\n`);
    });
  });

  it('a failing request is a 500, and the server goes on serving', async () => {
    const r = await fetch(url('/error'));
    expect(r.status).toBe(500);
    await r.text();
    // The guest's own report reaches stderr asynchronously.
    for (let i = 0; !stderr.includes('on purpose') && i < 300; i++) await new Promise((r) => setTimeout(r, 20));
    expect(stderr).toContain('the guest failed this request on purpose');
    const after = await fetch(url('/still-there'));
    expect(after.status).toBe(200);
    expect(await after.text()).toBe('hello from a wasm component: /still-there\n');
  });

  it('SIGTERM lets the request in flight finish, then ends with 143', async () => {
    const slow = fetch(url('/slow?ms=1500')).then(async (r) => [r.status, await r.text()] as const);
    for (let i = 0; !stdout.includes('slow request started') && i < 300; i++) await new Promise((r) => setTimeout(r, 20));
    expect(stdout).toContain('slow request started (1500 ms)');
    child.kill('SIGTERM');
    expect(await slow).toEqual([200, 'slept 1500\n']);
    expect(await exited).toBe(143);
    expect(tb.mounts()).toEqual([]);
  });
});

describe('tugboat run: an HTTP component that traps', () => {
  it('a trap is a 500, the server goes on serving, SIGTERM ends it with 143', async () => {
    const tb = new TugboatSandbox();
    const port = await freePort();
    const child = spawn(TUGBOAT, ['--root', tb.root, 'run', '--rm', '--network', 'host', '-e', `PORT=${port}`, COMPONENT('http-trap')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number>((resolve) => child.once('exit', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15))));
    try {
      let first: Response | undefined;
      for (let i = 0; !first; i++) {
        try {
          first = await fetch(`http://127.0.0.1:${port}/one`);
        } catch {
          if (i > 600 || child.exitCode !== null) throw new Error(`HTTP component never came up: ${stderr}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(first.status).toBe(500);
      await first.text();
      for (const path of ['/two', '/three']) {
        const r = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(r.status).toBe(500);
        expect(await r.text()).toBe('internal server error\n');
      }
      for (let i = 0; !/unreachable/.test(stderr) && i < 300; i++) await new Promise((r) => setTimeout(r, 20));
      expect(stderr).toMatch(/tugboat: \/http-trap\.wasm: request failed \(answered 500\): .*unreachable/);
      child.kill('SIGTERM');
      expect(await exited).toBe(143);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      tb.cleanup();
    }
  });
});
