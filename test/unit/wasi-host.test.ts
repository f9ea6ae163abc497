import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeGuestConfig, defaultPreopens, encodeGuestConfig, envListToObject, preopenRecord } from '../../src/wasi-host/guest-config.js';
import { guestExitStatus, signalExitStatus } from '../../src/wasi-host/exit-status.js';
import { resolveModulePath } from '../../src/wasi-host/module-path.js';

describe('guest config', () => {
  it('round-trips', () => {
    const c = { args: ['x.wasm', 'x y'], module: '/bin/x.wasm', env: ['A=1', 'B=2=3'], preopens: [{ guest: '/', path: '/' }, { guest: '/d', path: '/mnt/d', readonly: true }] };
    expect(decodeGuestConfig(encodeGuestConfig(c))).toEqual(c);
  });
  it.each([
    undefined,
    '',
    '{',
    '{"args":[],"env":[]}',
    '{"args":["a"]}',
    '{"args":["a"],"env":[],"preopens":{"/":"/"}}',
    '{"args":["a"],"env":[],"preopens":[{"guest":"/","path":"rel"}]}',
    '{"args":["a"],"env":[],"preopens":[{"guest":"/","path":"/","readonly":"yes"}]}',
    '{"args":["a"],"env":[],"module":"rel.wasm"}',
  ])('rejects %j', (raw) => {
    expect(() => decodeGuestConfig(raw)).toThrow(/TUGBOAT_GUEST/);
  });
  it('turns an env list into an object, later keys winning', () => {
    expect(envListToObject(['A=1', 'B==x', 'A=2', 'NOEQ', '=bad'])).toEqual({ A: '2', B: '=x' });
  });
});

describe('exit statuses', () => {
  it.each([
    [0, 0],
    [3, 3],
    [255, 255],
    [256, 1],
    [257, 1],
    [-1, 1],
  ])('guest exit %i → %i', (code, status) => {
    expect(guestExitStatus(code)).toBe(status);
  });
  it('signals are 128+N', () => {
    expect(signalExitStatus(15)).toBe(143);
    expect(signalExitStatus(9)).toBe(137);
  });
});

describe('module lookup and preopens', () => {
  it('resolves paths and PATH names', () => {
    const d = mkdtempSync(join(tmpdir(), 'modpath-'));
    try {
      mkdirSync(join(d, 'bin'));
      writeFileSync(join(d, 'bin', 'm.wasm'), '');
      expect(resolveModulePath('bin/m.wasm', [], d)).toBe(join(d, 'bin', 'm.wasm'));
      expect(resolveModulePath('m.wasm', [`PATH=/nope:${d}/bin`], '/')).toBe(join(d, 'bin', 'm.wasm'));
      expect(resolveModulePath('missing.wasm', [`PATH=${d}/bin`], '/')).toBeUndefined();
      expect(resolveModulePath('', [], '/')).toBeUndefined();
    } finally {
      rmSync(d, { recursive: true });
    }
  });
  it('registers "/" before "." so relative paths use the working directory', () => {
    expect(Object.keys(preopenRecord(defaultPreopens('/work')))).toEqual(['/', '.']);
    expect(preopenRecord(defaultPreopens('/'))).toEqual({ '/': '/' });
    // Extra directories go between the two: "." stays last.
    expect(defaultPreopens('/work', [{ guest: '/d', path: '/data' }]).map((p) => p.guest)).toEqual(['/', '/d', '.']);
  });
});
