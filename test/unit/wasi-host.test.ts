import { describe, expect, it } from 'vitest';
import { decodeGuestConfig, defaultPreopens, encodeGuestConfig, envListToObject, guestPreopens } from '../../src/wasi-host/guest-config.js';
import { guestExitStatus, signalExitStatus } from '../../src/wasi-host/exit-status.js';
import { ending } from '../../src/wasi-host/outcome.js';

describe('guest config', () => {
  it('round-trips', () => {
    const c = { args: ['/a.wasm', 'x y'], env: ['A=1', 'B=2=3'], preopens: { '/': '/' } };
    expect(decodeGuestConfig(encodeGuestConfig(c))).toEqual(c);
  });
  it.each([undefined, '', '{', '{"args":[],"env":[]}', '{"args":["a"]}', '{"args":["a"],"env":[],"preopens":{"/":1}}'])('rejects %j', (raw) => {
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
    expect(defaultPreopens('/work').map((p) => p.guest)).toEqual(['/', '.']);
    expect(defaultPreopens('/')).toEqual([{ guest: '/', path: '/' }]);
  });
  it('accepts the ordered list and the older object form', () => {
    const list = [{ guest: '/data', path: '/mnt/data', readonly: true }];
    expect(guestPreopens(decodeGuestConfig(JSON.stringify({ args: ['a'], env: [], preopens: list })))).toEqual(list);
    expect(guestPreopens({ args: ['a'], env: [], preopens: { '/': '/' } })).toEqual([{ guest: '/', path: '/' }]);
    expect(guestPreopens({ args: ['a'], env: [] })).toBeUndefined();
  });
  it.each([
    '{"args":["a"],"env":[],"preopens":[{"guest":"/","path":"relative"}]}',
    '{"args":["a"],"env":[],"root":"relative"}',
    '{"args":["a"],"env":[],"backend":"wasmtime"}',
  ])('rejects %s', (raw) => {
    expect(() => decodeGuestConfig(raw)).toThrow(/TUGBOAT_GUEST/);
  });
});
