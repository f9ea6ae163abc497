// Issue 11, item 7: concurrent commands on one store lose nothing. Each
// command is its own process, as users and scripts run them.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX, FIXTURES, fsck, TugboatSandbox, WASM } from './helpers.js';

describe('concurrent commands on one store', () => {
  let tb: TugboatSandbox;
  beforeAll(() => {
    tb = new TugboatSandbox();
  });
  afterAll(() => tb.cleanup());

  it('20 parallel imports, removes and runs: no name, blob or root lost', { timeout: 300_000 }, async () => {
    const sources = [WASM('hello'), WASM('fileio'), BUSYBOX, `oci-archive:${join(FIXTURES, 'hello-wasm.oci.tar')}:hello`, `docker-archive:${join(FIXTURES, 'busybox.docker.tar')}`];
    for (let i = 0; i < 4; i++) {
      const r = await tb.run(['image', 'import', sources[i % sources.length]!, '--name', `old${i}`]);
      expect(r.code, r.stderr).toBe(0);
    }
    expect((await tb.run(['image', 'import', BUSYBOX, '--name', 'bb'])).code).toBe(0);
    const jobs = [
      ...Array.from({ length: 12 }, (_, i) => tb.run(['image', 'import', sources[i % sources.length]!, '--name', `c${i}`])),
      ...Array.from({ length: 4 }, (_, i) => tb.run(['image', 'rm', `old${i}`])),
      ...Array.from({ length: 4 }, (_, i) => tb.run(['run', '--rm', 'bb', 'echo', `run${i}`])),
    ];
    const results = await Promise.all(jobs);
    results.forEach((r, i) => expect(r.code, `job ${i}: ${r.stderr}`).toBe(0));
    results.slice(16).forEach((r, i) => expect(r.stdout).toBe(`run${i}\n`));
    expect(fsck(tb.root)).toEqual(['bb', ...Array.from({ length: 12 }, (_, i) => `c${i}`)].sort());
    // Every listed image still runs.
    for (const name of ['c0', 'c2', 'c3', 'c4']) {
      const r = await tb.run(['run', '--rm', name, ...(name === 'c2' || name === 'c4' ? ['echo', 'ok'] : [])]);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
    }
    // Nothing half-written is left.
    expect(readdirSync(join(tb.root, 'images', 'blobs', 'sha256')).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect(readdirSync(join(tb.root, 'rootfs')).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('an import racing image rm of an image with the same blobs never lists an image with missing blobs', { timeout: 300_000 }, async () => {
    for (let round = 0; round < 6; round++) {
      expect((await tb.run(['image', 'import', WASM('exitcode'), '--name', `a${round}`])).code).toBe(0);
      const [imp, rm] = await Promise.all([tb.run(['image', 'import', WASM('exitcode'), '--name', `b${round}`]), tb.run(['image', 'rm', `a${round}`])]);
      expect(imp.code, imp.stderr).toBe(0);
      expect(rm.code, rm.stderr).toBe(0);
      expect(fsck(tb.root)).toContain(`b${round}`);
      expect(fsck(tb.root)).not.toContain(`a${round}`);
    }
  });
});
