// Every bad input ends with one clear line on stderr, a non-zero status, and
// nothing already stored lost or changed.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, oneLine, TugboatSandbox, WASM } from './helpers.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function tarOf(entries: { name: string; body?: string; type?: 'file' | 'symlink'; linkname?: string }[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => p.on('end', r));
  for (const e of entries) {
    if (e.type === 'symlink') p.entry({ name: e.name, type: 'symlink', linkname: e.linkname ?? '/' });
    else p.entry({ name: e.name, mode: 0o644 }, e.body ?? '');
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** An OCI layout with one linux image whose single layer is `layer`. */
function writeLayout(dir: string, layer: Buffer, tag: string): void {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer | string) => {
    const d = sha(b);
    writeFileSync(join(blobs, d), b);
    return { digest: `sha256:${d}`, size: Buffer.byteLength(b) };
  };
  const gz = gzipSync(layer);
  const config = JSON.stringify({ architecture: process.arch === 'arm64' ? 'arm64' : 'amd64', os: 'linux', config: { Cmd: ['/x'] }, rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layer)}`] } });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(config) },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(gz) }],
  });
  const m = put(manifest);
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
}

describe('bad input', () => {
  let tb: TugboatSandbox;
  let work: string;
  beforeAll(async () => {
    tb = new TugboatSandbox();
    work = mkdtempSync(join(tmpdir(), 'tugboat-bad-'));
    // A good image already in the store: it must survive every failure below.
    const imp = await tb.run(['image', 'import', WASM('hello'), '--name', 'good']);
    expect(imp.code, imp.stderr).toBe(0);
  });
  afterAll(() => {
    tb.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  async function storeStillGood(): Promise<void> {
    const ls = await tb.run(['image', 'ls', '--format', 'json']);
    expect((JSON.parse(ls.stdout) as { name: string }[]).map((i) => i.name)).toEqual(['good']);
    const r = await tb.run(['run', '--rm', 'good']);
    expect(r.stdout).toContain('hello from wasm');
    expect(readdirSync(join(tb.root, 'rootfs')).filter((n) => n.includes('.tmp-'))).toEqual([]);
  }


  it('rejects a malformed wasm module with status 126', async () => {
    const bad = join(work, 'bad.wasm');
    writeFileSync(bad, Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff]));
    const b = await tb.run(['image', 'build', bad, '-o', `oci:${join(work, 'badwasm')}:bad`]);
    expect(b.code, b.stderr).toBe(0);
    const r = await tb.run(['run', '--rm', `oci:${join(work, 'badwasm')}:bad`]);
    expect(r.code).toBe(126);
    expect(oneLine(r.stderr)).toMatch(/^tugboat: \/bad\.wasm: invalid wasm module: /);
    await storeStillGood();
  });

  it('refuses to build an image from a file that is not wasm', async () => {
    const notWasm = join(work, 'not.wasm');
    writeFileSync(notWasm, '#!/bin/sh\necho hi\n');
    const r = await tb.run(['image', 'build', notWasm, '-o', `oci:${join(work, 'nw')}:x`]);
    expect(r.code).not.toBe(0);
    expect(oneLine(r.stderr)).toMatch(/^tugboat: .*not a WebAssembly (binary|module)/i);
    expect(existsSync(join(work, 'nw', 'index.json'))).toBe(false);
  });

  it.each([
    ['a path climbing out', [{ name: '../escape.txt', body: 'x' }], /refusing layer entry "\.\.\/escape\.txt": .*escapes/],
    ['an absolute path', [{ name: '/abs.txt', body: 'x' }], /refusing layer entry "\/abs\.txt": .*absolute/],
    ['a write through an escaping link', [{ name: 'up', type: 'symlink' as const, linkname: '../../../../..' }, { name: 'up/tmp/pwn', body: 'x' }], /refusing layer entry "up\/tmp\/pwn"/],
  ])('refuses a hostile image with %s and keeps the store intact', async (_what, entries, message) => {
    const dir = join(work, `hostile-${sha(String(message)).slice(0, 8)}`);
    writeLayout(dir, await tarOf(entries), 'evil');
    const r = await tb.run(['run', '--rm', `oci:${dir}:evil`]);
    expect(r.code).not.toBe(0);
    expect(oneLine(r.stderr)).toMatch(message);
    expect(existsSync(join(work, 'escape.txt'))).toBe(false);
    expect(existsSync('/abs.txt')).toBe(false);
    await storeStillGood();
  });

  it('refuses an image whose blob does not match its digest', async () => {
    const dir = join(work, 'corrupt');
    writeLayout(dir, await tarOf([{ name: 'x', body: 'ok' }]), 'c');
    const blobs = join(dir, 'blobs', 'sha256');
    // Corrupt the biggest blob (the layer) in place.
    const files = readdirSync(blobs);
    const layer = files.find((f) => f !== files[0]) ?? files[0]!;
    writeFileSync(join(blobs, layer), 'garbage');
    const r = await tb.run(['image', 'import', `oci:${dir}:c`, '--name', 'corrupt']);
    expect(r.code).not.toBe(0);
    expect(oneLine(r.stderr)).toMatch(/^tugboat: .*(digest|size) mismatch|^tugboat: .*(malformed|not valid)/i);
    await storeStillGood();
  });

  it('names a missing tag and lists the available ones', async () => {
    const r = await tb.run(['run', '--rm', WASM('nope')]);
    expect(r.code).not.toBe(0);
    expect(oneLine(r.stderr)).toMatch(/nope.*not found.*hello/);
  });

  it('rejects an unknown option with status 2', async () => {
    const r = await tb.run(['run', '--bogus', WASM('hello')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--bogus'/);
  });

  it('rejects an unknown seccomp-profile format with status 2', async () => {
    const r = await tb.run(['seccomp-profile', '--format', 'json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tugboat: option '--format <format>' argument 'json' is invalid. Allowed choices are docker, oci.\n/);
    expect(r.stdout).toBe('');
  });

  it.each([
    [['--memory', 'lots'], /--memory: invalid size "lots"/],
    [['--network', 'bridge'], /--network: unsupported mode "bridge"/],
    [['-v', '/definitely/not/here:/x'], /-v: host path does not exist/],
    [['--platform', 'linux'], /platform/],
    [['--name', '../x'], /--name: invalid container id format/],
  ])('rejects bad option value %j with status 2', async (args, message) => {
    const r = await tb.run(['run', '--rm', ...args, WASM('hello')]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(message);
  });

  it.each([
    ['io.tugboat.http.reset=yes', 'annotation io.tugboat.http.reset=yes: only false (make every instance anew) is accepted; instances are reset wherever the component allows it'],
    ['io.tugboat.http.reuse=true', 'annotation io.tugboat.http.reuse=true: only false (a fresh instance for every request) is accepted; a component declares itself that its instances may be reused'],
    ['io.tugboat.http.pool=0', 'annotation io.tugboat.http.pool=0: expected a whole number from 1 to 4096'],
  ])('refuses the HTTP annotation %s with one line and status 1', async (annotation, message) => {
    const r = await tb.run(['run', '--rm', '--annotation', annotation, WASM('component-http-bench')]);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toBe(`tugboat: ${message}`);
    await storeStillGood();
  });

  it('names an image that is not in the store', async () => {
    const r = await tb.run(['run', '--rm', 'nosuchimage']);
    expect(r.code).not.toBe(0);
    expect(oneLine(r.stderr)).toMatch(/image nosuchimage not found in the store/);
  });

  it('refuses a second container with the same name', async () => {
    await tb.run(['run', '--name', 'dup', 'good']);
    const r = await tb.run(['run', '--name', 'dup', 'good']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/container name dup is already in use/);
    const rm = await tb.run(['rm', 'dup']);
    expect(rm.code, rm.stderr).toBe(0);
  });
});
