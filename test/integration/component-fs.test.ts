// wasi:filesystem for components, end to end: the probe guest of the preview1
// tests (test/guests/probe.rs), wrapped into a component with jco's preview1
// adapter, transpiled by jco and run by the host bundle directly on a root
// directory (no runc), so that every preview1 call the probe makes becomes
// wasi:filesystem calls through jco's glue into Tugboat's own filesystem.
// The results are the preview1 host's (preview1.test.ts), except where the
// adapter itself decides differently (noted below); with openat2 and with the
// component-by-component walk.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuestComponent } from '../../src/wasi-host/guest-config.js';
import { GUESTS, lines } from '../helpers/guest-run.js';
import { E, itAgreesWithEveryHost, makeProbeRoot, PROBE_PREOPENS } from '../helpers/probe-checks.js';
import { runComponentHost, transpiledComponent } from './component-helpers.js';

let cache: string;
let probe: GuestComponent;

beforeAll(async () => {
  cache = mkdtempSync(join(tmpdir(), 'tugboat-cfs-cache-'));
  probe = await transpiledComponent(join(GUESTS, 'probe.component.wasm'), cache);
});
afterAll(() => rmSync(cache, { recursive: true, force: true }));

describe.each([
  ['openat2', false],
  ['the component walk (openat2 refused)', true],
])('a component\'s files with %s', (_name, noOpenat2) => {
  let root: string;
  let r: Record<string, string>;
  beforeAll(async () => {
    root = makeProbeRoot();
    const run = await runComponentHost({ args: ['/probe.wasm', 'checks', 'adapter'], env: [], root, cwd: '/', preopens: PROBE_PREOPENS, component: probe }, { noOpenat2 });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    r = lines(run.stdout);
    expect(r.done).toBe('1');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  itAgreesWithEveryHost(() => ({ r, root }));

  it('a path that is not UTF-8: the adapter hands the bytes on as a string, jco\'s glue decodes them lossily: no such name', () => {
    expect(r['path.badutf8']).toBe(String(E.NOENT));
  });

  it('a read-only preopen refuses every change with EROFS (the host says read-only)', () => {
    for (const k of ['ro.write', 'ro.create', 'ro.mkdir', 'ro.unlink', 'truncate.ro.trunc']) expect(r[k], k).toBe(String(E.ROFS));
    expect(existsSync(join(root, 'ro', 'new'))).toBe(false);
    expect(existsSync(join(root, 'ro', 'rofile'))).toBe(true);
  });

  it('what the adapter decides itself: no preview1 rights, ENOTDIR for a directory op on a file', () => {
    expect(r['truncate.noright']).toBe('0');
    expect(r['file.readdir']).toBe(String(E.NOTDIR));
    expect(r['file.mkdir']).toBe(String(E.NOTDIR));
  });
});

describe('a component run directly on a root directory', () => {
  it('a preopen that does not exist is a host failure before the guest runs, with one line naming it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tugboat-cfs-'));
    try {
      const run = await runComponentHost({ args: ['/probe.wasm', 'checks'], env: [], root, preopens: [{ guest: '/', path: '/' }, { guest: '/data', path: '/missing' }], component: probe });
      expect(run.stderr).toBe("tugboat: /probe.wasm: cannot set up the guest: cannot open /missing (the guest's /data): ENOENT\n");
      expect(run.code).toBe(125);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
