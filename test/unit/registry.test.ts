// Pure parts of the registry client: references, WWW-Authenticate parsing,
// the credentials file, bounded concurrency and progress output.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { parseChallenges } from '../../src/oci/registry/auth.js';
import { authFilePath, eraseCredentials, lookupCredentials, storeCredentials } from '../../src/oci/registry/credentials.js';
import { forEachLimit } from '../../src/oci/registry/parallel.js';
import { createProgress } from '../../src/oci/registry/progress.js';
import { formatRegistryRef, isLoopbackHost, looksLikeRegistryRef, manifestReference, parseRegistryHost, parseRegistryRef } from '../../src/oci/registry/reference.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseRegistryRef', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['ns/app', 'docker.io/ns/app:latest'],
    ['index.docker.io/library/alpine:3', 'docker.io/library/alpine:3'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/a/b:v1.2-rc_3', 'localhost:5000/a/b:v1.2-rc_3'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    [`ghcr.io/o/app@${D}`, `ghcr.io/o/app@${D}`],
    [`ghcr.io/o/app:1@${D}`, `ghcr.io/o/app:1@${D}`],
    ['[::1]:5000/app:1', '[::1]:5000/app:1'],
    ['example.com/a__b/c-d/e.f:x', 'example.com/a__b/c-d/e.f:x'],
  ])('%s → %s', (input, full) => {
    expect(formatRegistryRef(parseRegistryRef(input))).toBe(full);
  });

  it('prefers the digest when both are given', () => {
    expect(manifestReference(parseRegistryRef(`h.io/a:1@${D}`))).toBe(D);
    expect(manifestReference(parseRegistryRef('h.io/a:1'))).toBe('1');
  });

  it.each(['', 'UPPER', 'a/../b', 'h.io/a b', 'h.io/a/', 'h.io//a', 'a:b:c', 'h.io/a:-bad', `h.io/a@sha256:${'A'.repeat(64)}`, 'h.io/a@md5:00', 'h.io/a?x=1', 'h.io/a#f', 'bad_host:5000/a'])('refuses %j', (input) => {
    expect(() => parseRegistryRef(input)).toThrow(UsageError);
  });

  it('tells registry references from store names and transports', () => {
    expect(looksLikeRegistryRef('hello')).toBe(false);
    expect(looksLikeRegistryRef('ns/app')).toBe(false);
    expect(looksLikeRegistryRef('hello:1')).toBe(true);
    expect(looksLikeRegistryRef('localhost/app')).toBe(true);
    expect(looksLikeRegistryRef('127.0.0.1:5000/app')).toBe(true);
    expect(looksLikeRegistryRef(`app@${D}`)).toBe(true);
    expect(looksLikeRegistryRef('oci:./dir:tag')).toBe(false);
    expect(looksLikeRegistryRef('docker-archive:x.tar:h.io/a:1')).toBe(false);
    expect(looksLikeRegistryRef('Not A Ref:1')).toBe(false);
  });

  it('parses registry hosts as login takes them', () => {
    expect(parseRegistryHost('https://h.io:5000/v2/')).toBe('h.io:5000');
    expect(parseRegistryHost('index.docker.io')).toBe('docker.io');
    expect(() => parseRegistryHost('h.io:5000 x')).toThrow(UsageError);
    expect(isLoopbackHost('127.0.0.1:5000')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('[::1]:5000')).toBe(true);
    expect(isLoopbackHost('10.0.0.1:5000')).toBe(false);
  });
});

describe('parseChallenges', () => {
  it('reads a Bearer challenge with quoted commas and escapes', () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
    ]);
    expect(parseChallenges('Basic realm="a \\"quoted\\" realm"')).toEqual([{ scheme: 'basic', params: { realm: 'a "quoted" realm' } }]);
  });

  it('reads several challenges and token values', () => {
    expect(parseChallenges('Basic realm=x, Bearer realm="r", error=invalid_token')).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'r', error: 'invalid_token' } },
    ]);
    expect(parseChallenges('')).toEqual([]);
  });
});

describe('credentials file', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tugboat-creds-'));
    file = join(dir, 'docker', 'config.json');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the file as Docker and podman do', () => {
    expect(authFilePath('/x.json', {})).toBe('/x.json');
    expect(authFilePath(undefined, { REGISTRY_AUTH_FILE: '/r.json', DOCKER_CONFIG: '/d' })).toBe('/r.json');
    expect(authFilePath(undefined, { DOCKER_CONFIG: '/d' })).toBe('/d/config.json');
  });

  it('stores base64 user:password with mode 0600, keeps other entries, and erases', async () => {
    await storeCredentials('h.io:5000', 'u', 'p:w', file);
    await storeCredentials('docker.io', 'hub', 'pw', file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(saved.auths['h.io:5000']?.auth).toBe(Buffer.from('u:p:w').toString('base64'));
    expect(Object.keys(saved.auths)).toContain('https://index.docker.io/v1/');
    expect(await lookupCredentials('h.io:5000', file)).toEqual({ username: 'u', password: 'p:w' });
    expect(await lookupCredentials('docker.io', file)).toEqual({ username: 'hub', password: 'pw' });
    expect(await lookupCredentials('other.io', file)).toBeUndefined();
    expect(await eraseCredentials('h.io:5000', file)).toBe(true);
    expect(await eraseCredentials('h.io:5000', file)).toBe(false);
    expect(await lookupCredentials('docker.io', file)).toEqual({ username: 'hub', password: 'pw' });
  });

  it('reads the other forms Docker writes, and refuses a broken file', async () => {
    writeFileSync(
      join(dir, 'c.json'),
      JSON.stringify({ auths: { 'https://h.io/v2/': { identitytoken: 'tok' }, 'plain.io': { username: 'a', password: 'b' } }, other: { kept: true } }),
    );
    expect(await lookupCredentials('h.io', join(dir, 'c.json'))).toEqual({ identityToken: 'tok' });
    expect(await lookupCredentials('plain.io', join(dir, 'c.json'))).toEqual({ username: 'a', password: 'b' });
    writeFileSync(join(dir, 'bad.json'), '{');
    await expect(lookupCredentials('h.io', join(dir, 'bad.json'))).rejects.toThrow(/invalid JSON/);
    writeFileSync(join(dir, 'helper.json'), JSON.stringify({ credsStore: 'does-not-exist-anywhere' }));
    await expect(lookupCredentials('h.io', join(dir, 'helper.json'))).rejects.toThrow(/docker-credential-does-not-exist-anywhere not found/);
    writeFileSync(join(dir, 'evil.json'), JSON.stringify({ credsStore: '../../bin/sh' }));
    await expect(lookupCredentials('h.io', join(dir, 'evil.json'))).rejects.toThrow(/not valid/);
  });
});

describe('forEachLimit', () => {
  it('never runs more than the limit at once', async () => {
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    await forEachLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      done.push(n);
    });
    expect(peak).toBe(3);
    expect(done.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('stops starting work after a failure and rethrows it once the rest settled', async () => {
    const started: number[] = [];
    let settled = 0;
    await expect(
      forEachLimit([1, 2, 3, 4, 5], 2, async (n) => {
        started.push(n);
        await new Promise((r) => setTimeout(r, n === 1 ? 1 : 10));
        settled++;
        if (n === 1) throw new Error('one failed');
      }),
    ).rejects.toThrow('one failed');
    expect(started).toEqual([1, 2]);
    expect(settled).toBe(2);
  });
});

describe('progress', () => {
  const capture = (isTTY: boolean) => {
    const out = new PassThrough() as PassThrough & { isTTY?: boolean };
    out.isTTY = isTTY;
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    return { out: out as unknown as NodeJS.WriteStream, text: () => text };
  };

  it('writes JSON lines, one per state change and the final one with all bytes', () => {
    const c = capture(false);
    const p = createProgress('json', 'pull', c.out);
    p.start(D, 'layer', 10);
    p.advance(D, 4);
    p.finish(D, 'done');
    p.close();
    const lines = c.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ action: 'pull', digest: D, kind: 'layer', status: 'waiting', current: 0, total: 10 });
    expect(lines.at(-1)).toMatchObject({ status: 'done', current: 10, total: 10 });
  });

  it('says nothing in text form when the stream is not a terminal, and redraws rows on one', () => {
    const quiet = capture(false);
    const p = createProgress('text', 'pull', quiet.out);
    p.start(D, 'layer', 10);
    p.finish(D, 'done');
    p.close();
    expect(quiet.text()).toBe('');
    const tty = capture(true);
    const t = createProgress('text', 'push', tty.out);
    t.start(D, 'layer', 2048);
    t.finish(D, 'done');
    t.close();
    expect(tty.text()).toContain('aaaaaaaaaaaa  layer    done');
    expect(tty.text()).toContain('\x1b[1A');
  });
});
