import { describe, expect, it } from 'vitest';
import { decodeGuestConfig, defaultPreopens, encodeGuestConfig, envListToObject, preopenRecord } from '../../src/wasi-host/guest-config.js';
import { guestExitStatus, signalExitStatus } from '../../src/wasi-host/exit-status.js';
import { ending } from '../../src/wasi-host/outcome.js';

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

describe('outcome → exit status (the one mapping)', () => {
  it.each([
    [{ kind: 'exit', code: 3 } as const, 3, undefined],
    [{ kind: 'exit', code: 256 } as const, 1, undefined],
    [{ kind: 'signal', signal: 15 } as const, 143, undefined],
    [{ kind: 'trap', message: 'unreachable' } as const, 134, 'wasm trap in /m.wasm: unreachable'],
    [{ kind: 'oom' } as const, 137, "/m.wasm: out of memory (the guest's memory cap)"],
    [{ kind: 'link', message: 'no _start' } as const, 126, '/m.wasm: no _start'],
    [{ kind: 'error', message: 'boom' } as const, 125, '/m.wasm: boom'],
  ])('%j → %i', (outcome, status, message) => {
    expect(ending(outcome, '/m.wasm')).toEqual(message === undefined ? { status } : { status, message });
  });
});

describe('preopens', () => {
  it('registers "/" before "." so relative paths use the working directory', () => {
    expect(Object.keys(preopenRecord(defaultPreopens('/work')))).toEqual(['/', '.']);
    expect(preopenRecord(defaultPreopens('/'))).toEqual({ '/': '/' });
    // Extra directories go between the two: "." stays last.
    expect(defaultPreopens('/work', [{ guest: '/d', path: '/data' }]).map((p) => p.guest)).toEqual(['/', '/d', '.']);
  });
  it('carries the ordered list, readonly included', () => {
    const list = [{ guest: '/data', path: '/mnt/data', readonly: true }];
    expect(decodeGuestConfig(JSON.stringify({ args: ['a'], env: [], preopens: list })).preopens).toEqual(list);
  });
  it.each([
    '{"args":["a"],"env":[],"preopens":{"/":"/"}}',
    '{"args":["a"],"env":[],"preopens":[{"guest":"/","path":"relative"}]}',
    '{"args":["a"],"env":[],"root":"relative"}',
    '{"args":["a"],"env":[],"backend":"wasmtime"}',
  ])('rejects %s', (raw) => {
    expect(() => decodeGuestConfig(raw)).toThrow(/TUGBOAT_GUEST/);
  });
});
