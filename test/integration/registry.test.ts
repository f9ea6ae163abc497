// tugboat pull / push / login / logout / run --pull / image build --push
// against Debian's real registry (distribution 2.8), started privately on
// loopback: plain HTTP, TLS with htpasswd (Basic) auth and a test CA, and
// token (Bearer) auth. What Tugboat pushes is pulled back by ctr (and run
// through the shim) and by Docker 20.10 (and run with --runtime tugboat).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, type ContainerdHandle } from './daemons/containerd.js';
import { startDockerd, type DockerdHandle } from './daemons/dockerd.js';
import { startRegistry, type RegistryHandle } from './daemons/registry.js';
import { EXAMPLES, FIXTURES, REPO, TUGBOAT, TugboatSandbox, type Result } from './helpers.js';
import { makeCerts, makeHtpasswd, startProxy, startTokenServer, type Proxy, type ProxyAction, type TestCerts, type TokenServer } from './registry-fixtures.js';

const HELLO = join(EXAMPLES, 'hello.wasm');
const MIXED = `oci:${join(FIXTURES, 'mixed')}:app`;
const ARTIFACT = `oci:${join(FIXTURES, 'artifact')}:hello`;
const BUSYBOX = `oci:${join(FIXTURES, 'busybox')}:latest`;

function layoutDigest(dir: string, tag: string): string {
  const index = JSON.parse(readFileSync(join(FIXTURES, dir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!d) throw new Error(`no ${tag} in ${dir}`);
  return d.digest;
}

/** Everything below `dir`, relative. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      if (statSync(p).isDirectory()) walk(p, r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out;
}

function oneLine(r: Result): string {
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0] as string;
}

async function registryJson(reg: RegistryHandle, path: string, accept: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${reg.url}${path}`, { headers: { accept } });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

const INDEX_ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json';

describe('registry over plain HTTP', () => {
  let reg: RegistryHandle;
  let sb: TugboatSandbox;
  const proxies: Proxy[] = [];
  const proxy = async (decide: (req: import('node:http').IncomingMessage) => ProxyAction) => {
    const p = await startProxy(reg.url, decide);
    proxies.push(p);
    return p;
  };
  beforeAll(async () => {
    reg = await startRegistry();
    sb = new TugboatSandbox('tugboat-reg-');
    // What most tests pull: the mixed fixture as <reg>/mixed:1.
    const r = await sb.run(['push', MIXED, `${reg.host}/mixed:1`]);
    if (r.code !== 0) throw new Error(`push of the mixed fixture failed: ${r.stderr}`);
  });
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    await reg?.stop();
    sb?.cleanup();
  });

  it('a mixed index (linux + wasi) round-trips through push and pull', async () => {
    const ref = `${reg.host}/roundtrip:1`;
    const digest = layoutDigest('mixed', 'app');
    const push = await sb.run(['push', MIXED, ref]);
    expect(push.code, push.stderr).toBe(0);
    expect(push.stdout).toBe(`${ref} ${digest}\n`);
    expect(push.stderr).toBe('');

    const pull = await sb.run(['pull', '--all-platforms', ref]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stdout).toBe(`${ref} ${digest}\n`);
    const ls = JSON.parse((await sb.run(['image', 'ls', '--format', 'json'])).stdout) as { name: string; digest: string; platforms: string[] }[];
    expect(ls).toEqual([expect.objectContaining({ name: ref, digest, platforms: expect.arrayContaining(['linux/amd64', 'wasi/wasm']) })]);

    const wasm = await sb.run(['run', '--rm', ref, 'one']);
    expect(wasm.code, wasm.stderr).toBe(0);
    expect(wasm.stdout).toContain('hello from wasm');
    const linux = await sb.run(['run', '--rm', '--platform', 'linux/amd64', ref, 'echo', 'hi']);
    expect(linux.code, linux.stderr).toBe(0);
    expect(linux.stdout).toBe('hi\n');

    // Without --all-platforms a pull keeps one platform: Wasm first.
    const one = new TugboatSandbox('tugboat-reg-');
    try {
      const p = await one.run(['pull', ref]);
      expect(p.code, p.stderr).toBe(0);
      const [entry] = JSON.parse((await one.run(['image', 'ls', '--format', 'json'])).stdout) as { platforms: string[] }[];
      expect(entry?.platforms).toEqual(['wasi/wasm']);
      const again = await one.run(['pull', ref]);
      expect(again.stdout).toBe(p.stdout);
    } finally {
      one.cleanup();
    }
  });

  it('a CNCF Wasm artifact round-trips through push and pull', async () => {
    const ref = `${reg.host}/artifact:1`;
    const digest = layoutDigest('artifact', 'hello');
    const push = await sb.run(['push', ARTIFACT, ref]);
    expect(push.code, push.stderr).toBe(0);
    const m = (await registryJson(reg, '/v2/artifact/manifests/1', INDEX_ACCEPT)) as { config: { mediaType: string }; layers: { mediaType: string }[] };
    expect(m.config.mediaType).toBe('application/vnd.wasm.config.v0+json');
    expect(m.layers.map((l) => l.mediaType)).toEqual(['application/wasm']);
    const fresh = new TugboatSandbox('tugboat-reg-');
    try {
      const pull = await fresh.run(['pull', ref]);
      expect(pull.code, pull.stderr).toBe(0);
      expect(pull.stdout).toBe(`${ref} ${digest}\n`);
      const r = await fresh.run(['run', '--rm', ref]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('hello from wasm');
    } finally {
      fresh.cleanup();
    }
  });

  it('uploads in chunks, and mounts blobs across repositories', async () => {
    const p = await proxy(() => 'pass');
    const chunked = `${p.host}/chunked:1`;
    const r = await sb.run(['push', '--chunk-size', '16k', MIXED, chunked]);
    expect(r.code, r.stderr).toBe(0);
    expect(p.seen.filter((s) => s.startsWith('PATCH ')).length).toBeGreaterThan(2);
    const fresh = new TugboatSandbox('tugboat-reg-');
    try {
      const pull = await fresh.run(['pull', '--all-platforms', chunked]);
      expect(pull.stdout).toBe(`${chunked} ${layoutDigest('mixed', 'app')}\n`);
      // pulled from one repository, pushed to another of the same registry: mounted, not uploaded
      p.seen.length = 0;
      const copy = await fresh.run(['push', chunked, `${p.host}/elsewhere/copy:1`]);
      expect(copy.code, copy.stderr).toBe(0);
      expect(p.seen.filter((s) => s.startsWith('POST ') && s.includes('mount=')).length).toBeGreaterThan(0);
      expect(p.seen.filter((s) => s.startsWith('PUT ') && s.includes('/blobs/uploads/'))).toEqual([]);
    } finally {
      fresh.cleanup();
    }
  });

  it('image build --push, and --add-to puts the Wasm platform beside a Linux image', async () => {
    const built = await sb.run(['image', 'build', HELLO, '--push', `${reg.host}/built:1`]);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toMatch(new RegExp(`^${reg.host}/built:1 sha256:[0-9a-f]{64}\\n$`));

    const ref = `${reg.host}/both:1`;
    expect((await sb.run(['push', BUSYBOX, ref])).code).toBe(0);
    const add = await sb.run(['image', 'build', HELLO, '--add-to', ref]);
    expect(add.code, add.stderr).toBe(0);
    const index = (await registryJson(reg, '/v2/both/manifests/1', INDEX_ACCEPT)) as { mediaType: string; manifests: { platform: { os: string; architecture: string }; annotations?: unknown }[] };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`).sort()).toEqual(['linux/amd64', 'wasi/wasm']);
    expect(index.manifests.every((m) => m.annotations === undefined)).toBe(true);
    // Adding again replaces the Wasm entry rather than growing the index.
    expect((await sb.run(['image', 'build', HELLO, '--add-to', ref, '--', 'x'])).code).toBe(0);
    expect(((await registryJson(reg, '/v2/both/manifests/1', INDEX_ACCEPT)) as { manifests: unknown[] }).manifests).toHaveLength(2);

    const run = await sb.run(['run', '--rm', ref]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('args: /hello.wasm x');
    const linux = await sb.run(['run', '--rm', '--pull', 'always', '--platform', 'linux/amd64', ref, 'echo', 'linux']);
    expect(linux.stdout).toBe('linux\n');

    const missing = await sb.run(['image', 'build', HELLO, '--add-to', `${reg.host}/nothing:1`]);
    expect(missing.code).toBe(1);
    expect(oneLine(missing)).toMatch(/does not exist in the registry; nothing to add a platform to/);
  });

  it('run --pull: missing pulls once, never does not, always does', async () => {
    const p = await proxy(() => 'pass');
    const ref = `${p.host}/mixed:1`;
    const manifestGets = () => p.seen.filter((s) => s.startsWith('GET ') && s.includes('/manifests/')).length;
    const never = await sb.run(['run', '--rm', '--pull', 'never', ref]);
    expect(never.code).toBe(1);
    expect(oneLine(never)).toMatch(/not found in the store/);
    expect(p.seen).toEqual([]);
    expect((await sb.run(['run', '--rm', ref])).code).toBe(0);
    const after = manifestGets();
    expect(after).toBeGreaterThan(0);
    expect((await sb.run(['run', '--rm', ref])).code).toBe(0);
    expect(manifestGets()).toBe(after);
    expect((await sb.run(['run', '--rm', '--pull', 'always', ref])).code).toBe(0);
    expect(manifestGets()).toBeGreaterThan(after);
    const bad = await sb.run(['run', '--pull', 'sometimes', ref]);
    expect(bad.code).toBe(2);
  });

  it('a corrupted blob is refused, and nothing is stored', async () => {
    const p = await proxy((req) => (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '') ? 'corrupt' : 'pass'));
    const fresh = new TugboatSandbox('tugboat-reg-');
    try {
      const r = await fresh.run(['pull', `${p.host}/mixed:1`]);
      expect(r.code).toBe(1);
      expect(oneLine(r)).toMatch(/^tugboat: .*blob sha256:[0-9a-f]{64}: digest mismatch, expected sha256:[0-9a-f]{64}, got sha256:[0-9a-f]{64}$/);
      expect(filesUnder(join(fresh.root, 'images')).filter((f) => f.startsWith('blobs/'))).toEqual([]);
      expect(JSON.parse((await fresh.run(['image', 'ls', '--format', 'json'])).stdout)).toEqual([]);
      expect(filesUnder(join(fresh.root, 'tmp'))).toEqual([]);
      expect(filesUnder(join(fresh.root, 'rootfs'))).toEqual([]);
    } finally {
      fresh.cleanup();
    }
  });

  it('a pull killed mid-layer leaves nothing behind, and the next pull succeeds', async () => {
    // A layer big enough to be caught half-way: 4 MiB of random bytes.
    const dir = mkdtempSync(join(tmpdir(), 'tugboat-reg-big-'));
    const fresh = new TugboatSandbox('tugboat-reg-');
    try {
      writeFileSync(join(dir, 'big.bin'), Buffer.from(Array.from({ length: 4 * 1024 * 1024 }, () => Math.floor(Math.random() * 256))));
      const big = `${reg.host}/big:1`;
      const built = await sb.run(['image', 'build', HELLO, '--file', `${join(dir, 'big.bin')}:/big.bin`, '--push', big]);
      expect(built.code, built.stderr).toBe(0);
      let stall = true;
      const p = await proxy((req) => (stall && req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '') ? 'stall' : 'pass'));
      const child = spawn(TUGBOAT, ['--root', fresh.root, 'pull', `${p.host}/big:1`], { stdio: 'ignore' });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      await Promise.race([p.stalled, exited.then(() => Promise.reject(new Error('tugboat pull ended before the stall')))]);
      // the CLI has a partial blob in its staging directory by now
      for (let i = 0; i < 50 && !filesUnder(join(fresh.root, 'tmp')).some((f) => f.endsWith('.part')); i++) await new Promise((r) => setTimeout(r, 100));
      expect(filesUnder(join(fresh.root, 'tmp')).some((f) => f.endsWith('.part'))).toBe(true);
      child.kill('SIGKILL');
      await exited;
      expect(JSON.parse((await fresh.run(['image', 'ls', '--format', 'json'])).stdout)).toEqual([]);

      stall = false;
      const again = await fresh.run(['pull', `${p.host}/big:1`]);
      expect(again.code, again.stderr).toBe(0);
      expect(filesUnder(join(fresh.root, 'tmp'))).toEqual([]);
      expect(filesUnder(fresh.root).filter((f) => /\.part$|\.tmp-/.test(f))).toEqual([]);
      const r = await fresh.run(['run', '--rm', `${p.host}/big:1`]);
      expect(r.stdout).toContain('hello from wasm');
    } finally {
      fresh.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an unknown tag, a 429 and an unreachable registry each give one line; a 503 is retried', async () => {
    const unknown = await sb.run(['pull', `${reg.host}/mixed:nope`]);
    expect(unknown.code).toBe(1);
    expect(oneLine(unknown)).toBe(`tugboat: ${reg.host}/mixed:nope: manifest unknown (no such tag or digest in the registry)`);

    const busy = await proxy(() => ({ status: 429, headers: { 'retry-after': '0' } }));
    const r429 = await sb.run(['pull', `${busy.host}/mixed:1`]);
    expect(r429.code).toBe(1);
    expect(oneLine(r429)).toMatch(/answered 429 too many requests.*try again later$/);
    expect(busy.seen.length).toBe(4); // the first try and 3 retries

    let failures = 2;
    const flaky = await proxy(() => (failures-- > 0 ? { status: 503 } : 'pass'));
    const ok = new TugboatSandbox('tugboat-reg-');
    try {
      const r = await ok.run(['pull', `${flaky.host}/mixed:1`]);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      ok.cleanup();
    }

    const unreachable = await sb.run(['pull', '127.0.0.1:9/x:1']);
    expect(unreachable.code).toBe(1);
    expect(oneLine(unreachable)).toMatch(/^tugboat: cannot reach 127\.0\.0\.1:9: connect ECONNREFUSED/);
  });

  it('progress: JSON lines with --log-format json, nothing when stderr is not a terminal', async () => {
    const fresh = new TugboatSandbox('tugboat-reg-');
    try {
      const quiet = await fresh.run(['pull', `${reg.host}/mixed:1`]);
      expect(quiet.stderr).toBe('');
      const json = await fresh.run(['pull', '--log-format', 'json', '--platform', 'linux/amd64', `${reg.host}/mixed:1`]);
      expect(json.code, json.stderr).toBe(0);
      const events = json.stderr.trim().split('\n').map((l) => JSON.parse(l) as { action: string; digest: string; status: string; current: number; total: number });
      expect(events.length).toBeGreaterThan(0);
      const done = events.filter((e) => e.status === 'done');
      expect(done.length).toBeGreaterThan(0);
      for (const e of done) expect(e).toMatchObject({ action: 'pull', current: e.total });
    } finally {
      fresh.cleanup();
    }
  });

  describe('other engines read what Tugboat pushed', () => {
    it('ctr image pull --plain-http, then ctr run through the shim', async () => {
      const c: ContainerdHandle = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
      try {
        const ref = `${reg.host}/mixed:1`;
        const pull = await c.ctr(['images', 'pull', '--plain-http', '--platform', 'wasi/wasm', ref]);
        expect(pull.code, pull.stderr).toBe(0);
        const run = await c.ctr(['run', '--rm', '--runtime', 'io.containerd.tugboat.v1', '--platform', 'wasi/wasm', ref, 'reg-wasm', '/hello.wasm', 'from-ctr']);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stdout).toContain('args: /hello.wasm from-ctr');
        const linux = await c.ctr(['images', 'pull', '--plain-http', '--platform', 'linux/amd64', ref]);
        expect(linux.code, linux.stderr).toBe(0);
        const echo = await c.ctr(['run', '--rm', '--runtime', 'io.containerd.tugboat.v1', '--platform', 'linux/amd64', ref, 'reg-linux', 'echo', 'linux']);
        expect(echo.stdout).toBe('linux\n');
      } finally {
        await c.stop();
      }
    });

    it('docker pull of the linux/amd64 image, run with --runtime tugboat', async () => {
      const d: DockerdHandle = await startDockerd({ runtimes: { tugboat: { path: TUGBOAT } } });
      try {
        const ref = `${reg.host}/mixed:1`;
        const pull = await d.docker(['pull', ref]);
        expect(pull.code, pull.stderr).toBe(0);
        const r = await d.docker(['run', '--rm', '--runtime', 'tugboat', ref, 'echo', 'from docker']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe('from docker\n');
      } finally {
        await d.stop();
      }
    });
  });
});

describe('registry over TLS with htpasswd auth', () => {
  let reg: RegistryHandle;
  let sb: TugboatSandbox;
  let dir: string;
  let certs: TestCerts;
  let certDir: string;
  let authfile: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tugboat-reg-tls-'));
    certs = makeCerts(dir);
    reg = await startRegistry({ tls: { certificate: certs.serverCert, key: certs.serverKey }, htpasswd: makeHtpasswd(join(dir, 'htpasswd'), { alice: 's3cret' }) });
    sb = new TugboatSandbox('tugboat-reg-');
    certDir = join(dir, 'certs');
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), readFileSync(certs.caCert));
    authfile = join(dir, 'auth', 'config.json');
  });
  afterAll(async () => {
    await reg?.stop();
    sb?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a certificate from an unknown CA without --cert-dir gives one line', async () => {
    const r = await sb.run(['pull', `${reg.host}/x:1`]);
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(new RegExp(`^tugboat: TLS with ${reg.host.replace(/\./g, '\\.')} failed: its certificate is signed by an unknown authority.*--cert-dir`));
  });

  it('no credentials, then wrong ones, each give one line; login stores nothing on failure', async () => {
    const anon = await sb.run(['pull', '--cert-dir', certDir, '--authfile', authfile, `${reg.host}/x:1`]);
    expect(anon.code).toBe(1);
    expect(oneLine(anon)).toBe(`tugboat: ${reg.host}/x:1: unauthorized: authentication required (tugboat login ${reg.host})`);
    const wrong = await sb.run(['login', '--cert-dir', certDir, '--authfile', authfile, '-u', 'alice', '--password-stdin', reg.host], { input: 'nope\n' });
    expect(wrong.code).toBe(1);
    expect(oneLine(wrong)).toMatch(/unauthorized: .* refused the credentials \(wrong username or password\?/);
    expect(existsSync(authfile)).toBe(false);
  });

  it('login saves credentials as Docker does; push and pull use them; logout removes them', async () => {
    const login = await sb.run(['login', '--cert-dir', certDir, '--authfile', authfile, '-u', 'alice', '--password-stdin', `https://${reg.host}`], { input: 's3cret\n' });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toBe('Login Succeeded\n');
    expect(statSync(authfile).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(readFileSync(authfile, 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(saved.auths[reg.host]?.auth).toBe(Buffer.from('alice:s3cret').toString('base64'));

    const ref = `${reg.host}/secure/mixed:1`;
    const push = await sb.run(['push', '--cert-dir', certDir, '--authfile', authfile, MIXED, ref]);
    expect(push.code, push.stderr).toBe(0);
    // Docker's certs.d layout works too: DIR/<host:port>/ca.crt
    const certsD = join(dir, 'certs.d');
    mkdirSync(join(certsD, reg.host), { recursive: true });
    writeFileSync(join(certsD, reg.host, 'ca.crt'), readFileSync(certs.caCert));
    const fresh = new TugboatSandbox('tugboat-reg-');
    try {
      const pull = await fresh.run(['pull', '--cert-dir', certsD, '--authfile', authfile, ref]);
      expect(pull.code, pull.stderr).toBe(0);
      expect(pull.stdout).toBe(`${ref} ${layoutDigestOfWasm()}\n`);
    } finally {
      fresh.cleanup();
    }

    const logout = await sb.run(['logout', '--authfile', authfile, reg.host]);
    expect(logout.code).toBe(0);
    expect(logout.stdout).toBe(`Removed login credentials for ${reg.host}\n`);
    expect(JSON.parse(readFileSync(authfile, 'utf8'))).toEqual({ auths: {} });
    const again = await sb.run(['logout', '--authfile', authfile, reg.host]);
    expect(again.stderr).toBe(`Not logged in to ${reg.host}\n`);
  });

  it('credentials from a docker-credential helper (credsStore)', async () => {
    const bin = join(dir, 'helper-bin');
    mkdirSync(bin, { recursive: true });
    const helper = join(bin, 'docker-credential-tugtest');
    writeFileSync(helper, `#!/bin/sh\n[ "$1" = get ] || exit 1\nread server\n[ "$server" = "${reg.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '{"ServerURL":"${reg.host}","Username":"alice","Secret":"s3cret"}'\n`, { mode: 0o755 });
    const cfg = join(dir, 'helper-config.json');
    writeFileSync(cfg, JSON.stringify({ credsStore: 'tugtest' }));
    const fresh = new TugboatSandbox('tugboat-reg-');
    try {
      const r = await fresh.run(['pull', '--cert-dir', certDir, '--authfile', cfg, `${reg.host}/secure/mixed:1`], { env: { PATH: `${bin}:${process.env.PATH ?? ''}` } });
      expect(r.code, r.stderr).toBe(0);
    } finally {
      fresh.cleanup();
    }
  });
});

/** The wasi/wasm manifest of the mixed fixture: what a default (Wasm-first) pull stores. */
function layoutDigestOfWasm(): string {
  const index = JSON.parse(readFileSync(join(FIXTURES, 'mixed', 'blobs', 'sha256', layoutDigest('mixed', 'app').slice(7)), 'utf8')) as {
    manifests: { digest: string; platform?: { os: string } }[];
  };
  return index.manifests.find((m) => m.platform?.os === 'wasi')?.digest ?? '';
}

describe('registry with token (Bearer) auth', () => {
  let reg: RegistryHandle;
  let tokens: TokenServer;
  let sb: TugboatSandbox;
  let dir: string;
  let authfile: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tugboat-reg-token-'));
    // bob may pull everything and push only to bob/*; anonymous users may pull public/*.
    tokens = await startTokenServer(dir, { bob: 'b0b' }, (user, repo, actions) => {
      if (user === 'bob') return repo.startsWith('bob/') ? actions : actions.filter((a) => a === 'pull');
      return repo.startsWith('public/') ? actions.filter((a) => a === 'pull') : [];
    });
    reg = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certBundle } });
    sb = new TugboatSandbox('tugboat-reg-');
    authfile = join(dir, 'config.json');
  });
  afterAll(async () => {
    await reg?.stop();
    await tokens?.stop();
    sb?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs in through the token server, pushes and pulls with scoped tokens', async () => {
    const login = await sb.run(['login', '--authfile', authfile, '-u', 'bob', '-p', 'b0b', reg.host]);
    expect(login.code, login.stderr).toBe(0);
    const ref = `${reg.host}/bob/app:1`;
    const push = await sb.run(['push', '--authfile', authfile, ARTIFACT, ref]);
    expect(push.code, push.stderr).toBe(0);
    expect(tokens.requests.some((r) => r.user === 'bob' && r.scopes.includes('repository:bob/app:pull,push'))).toBe(true);
    const fresh = new TugboatSandbox('tugboat-reg-');
    try {
      const pull = await fresh.run(['pull', '--authfile', authfile, ref]);
      expect(pull.code, pull.stderr).toBe(0);
      expect(pull.stdout).toBe(`${ref} ${layoutDigest('artifact', 'hello')}\n`);
    } finally {
      fresh.cleanup();
    }
  });

  it('wrong credentials, no credentials and a denied push each give their own line', async () => {
    const badAuth = join(dir, 'bad.json');
    writeFileSync(badAuth, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('bob:wrong').toString('base64') } } }));
    const wrong = await sb.run(['pull', '--authfile', badAuth, `${reg.host}/bob/app:1`]);
    expect(wrong.code).toBe(1);
    expect(oneLine(wrong)).toMatch(/unauthorized: the token server refused the credentials/);

    const anon = await sb.run(['pull', '--authfile', join(dir, 'none.json'), `${reg.host}/bob/app:1`]);
    expect(anon.code).toBe(1);
    expect(oneLine(anon)).toMatch(/unauthorized: authentication required \(tugboat login /);

    const denied = await sb.run(['push', '--authfile', authfile, ARTIFACT, `${reg.host}/alice/app:1`]);
    expect(denied.code).toBe(1);
    expect(oneLine(denied)).toMatch(/alice\/app.*: denied: requested access to the resource is denied/);
  });
});
