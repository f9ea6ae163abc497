// The local image store: import from every transport, list, run by name, remove.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, FIXTURES, TugboatSandbox } from './helpers.js';

describe('tugboat image import|ls|rm', () => {
  let tb: TugboatSandbox;
  beforeAll(() => {
    tb = new TugboatSandbox();
  });
  afterAll(() => tb.cleanup());

  it('imports an OCI layout, an OCI archive and a docker archive', async () => {
    for (const [ref, name] of [
      [`oci:${join(FIXTURES, 'mixed')}:app`, 'mixed'],
      [`oci-archive:${join(FIXTURES, 'hello-wasm.oci.tar')}:hello`, 'hello-archive'],
      [`docker-archive:${join(FIXTURES, 'busybox.docker.tar')}`, 'busybox'],
    ] as const) {
      const r = await tb.run(['image', 'import', ref, '--name', name]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^${name} sha256:[0-9a-f]{64}\\n$`));
    }
    const ls = await tb.run(['image', 'ls', '--format', 'json']);
    const images = JSON.parse(ls.stdout) as { name: string; platforms: string[] }[];
    expect(images.map((i) => i.name).sort()).toEqual(['busybox', 'hello-archive', 'mixed']);
    expect(images.find((i) => i.name === 'mixed')!.platforms).toEqual(expect.arrayContaining(['wasi/wasm']));
    expect(images.find((i) => i.name === 'mixed')!.platforms.length).toBe(2);
  });

  it('runs images by name', async () => {
    expect((await tb.run(['run', '--rm', 'hello-archive'])).stdout).toContain('hello from wasm');
    expect((await tb.run(['run', '--rm', 'busybox', 'echo', 'bb'])).stdout).toBe('bb\n');
    expect((await tb.run(['run', '--rm', 'mixed'])).stdout).toContain('hello from wasm');
  });

  it('prints a table', async () => {
    const r = await tb.run(['image', 'ls']);
    expect(r.stdout.split('\n')[0]).toMatch(/^NAME\s+DIGEST\s+PLATFORMS$/);
  });

  it('removes an image and keeps the others', async () => {
    expect((await tb.run(['image', 'rm', 'hello-archive'])).code).toBe(0);
    const ls = JSON.parse((await tb.run(['image', 'ls', '--format', 'json'])).stdout) as { name: string }[];
    expect(ls.map((i) => i.name).sort()).toEqual(['busybox', 'mixed']);
    expect((await tb.run(['run', '--rm', 'busybox', 'echo', 'still'])).stdout).toBe('still\n');
    const again = await tb.run(['image', 'rm', 'hello-archive']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/image hello-archive not found/);
  });
});

describe('tugboat image build --format', () => {
  let tb: TugboatSandbox;
  beforeAll(() => {
    tb = new TugboatSandbox();
  });
  afterAll(() => tb.cleanup());

  it('writes a docker archive from --format and a plain path, and refuses unknown formats', async () => {
    const out = join(tb.root, 'app.tar');
    const b = await tb.run(['image', 'build', join(EXAMPLES, 'hello.wasm'), '--format', 'docker-archive', '-o', `${out}:example.com/app:1.0`]);
    expect(b.code, b.stderr).toBe(0);
    const imp = await tb.run(['image', 'import', `docker-archive:${out}`, '--name', 'fromdocker']);
    expect(imp.code, imp.stderr).toBe(0);
    expect((await tb.run(['run', '--rm', 'fromdocker'])).stdout).toContain('hello from wasm');
    const bad = await tb.run(['image', 'build', join(EXAMPLES, 'hello.wasm'), '--format', 'zip', '-o', out]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--format: unknown format "zip"/);
  });
});

describe('tugboat image build --artifact of a component', () => {
  let tb: TugboatSandbox;
  beforeAll(() => {
    tb = new TugboatSandbox();
  });
  afterAll(() => tb.cleanup());

  it('records the world imports and exports in the CNCF config', async () => {
    const out = join(tb.root, 'artifact');
    const b = await tb.run(['image', 'build', join(EXAMPLES, '..', '..', 'components', 'out', 'hello.wasm'), '--artifact', '-o', `oci:${out}:c`]);
    expect(b.code, b.stderr).toBe(0);
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const blob = (d: string) => JSON.parse(readFileSync(join(out, 'blobs', 'sha256', d.slice(7)), 'utf8'));
    const manifest = blob(index.manifests[0]!.digest);
    const config = blob(manifest.config.digest);
    expect(config.os).toBe('wasip2');
    expect(config.component.exports).toEqual([expect.stringMatching(/^wasi:cli\/run@0\.2\./)]);
    expect(config.component.imports).toEqual(expect.arrayContaining([expect.stringMatching(/^wasi:cli\/stdout@0\.2\./)]));
  });
});
