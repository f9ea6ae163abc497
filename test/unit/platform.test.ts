import { describe, expect, it } from 'vitest';
import { NotFoundError, UsageError } from '../../src/errors.js';
import {
  formatPlatform,
  hostPlatform,
  isWasmPlatform,
  parsePlatform,
  platformMatches,
  selectManifest,
} from '../../src/oci/platform.js';
import type { Descriptor, Platform } from '../../src/oci/types.js';

const d = (n: number, platform?: Platform, annotations?: Record<string, string>): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: 'sha256:' + String(n).repeat(64).slice(0, 64),
  size: 100,
  ...(platform ? { platform } : {}),
  ...(annotations ? { annotations } : {}),
});

const host = hostPlatform();
const other: Platform = host.architecture === 'amd64' ? { os: 'linux', architecture: 'arm64' } : { os: 'linux', architecture: 'amd64' };

describe('parsePlatform / formatPlatform', () => {
  it('parses os/arch and os/arch/variant', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(parsePlatform('wasi/wasm')).toEqual({ os: 'wasi', architecture: 'wasm' });
    expect(parsePlatform('Linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
  });

  it('round-trips through formatPlatform', () => {
    for (const s of ['linux/amd64', 'linux/arm/v7', 'wasip2/wasm']) expect(formatPlatform(parsePlatform(s))).toBe(s);
  });

  it.each(['linux', 'linux/', '/amd64', 'a/b/c/d', 'linux/amd 64', '', 'linux/../x'])('rejects %j with UsageError', (s) => {
    expect(() => parsePlatform(s)).toThrow(UsageError);
    expect(() => parsePlatform(s)).toThrow(/invalid platform/);
  });
});

describe('hostPlatform / isWasmPlatform', () => {
  it('maps process.arch to a Go arch', () => {
    expect(host.os).toBe('linux');
    expect(host.architecture).toBe(process.arch === 'x64' ? 'amd64' : process.arch);
  });

  it('knows Wasm platforms', () => {
    for (const s of ['wasi/wasm', 'wasip1/wasm', 'wasip2/wasm', 'wasi/wasm32', 'linux/wasm']) expect(isWasmPlatform(parsePlatform(s))).toBe(true);
    expect(isWasmPlatform(parsePlatform('linux/amd64'))).toBe(false);
  });
});

describe('platformMatches', () => {
  const m = (a: string, b: string): boolean => platformMatches(parsePlatform(a), parsePlatform(b));
  it('matches equal os and arch', () => {
    expect(m('linux/amd64', 'linux/amd64')).toBe(true);
    expect(m('linux/amd64', 'linux/arm64')).toBe(false);
    expect(m('windows/amd64', 'linux/amd64')).toBe(false);
  });
  it('treats all WASI oses and wasm/wasm32 as one', () => {
    expect(m('wasip1/wasm', 'wasi/wasm')).toBe(true);
    expect(m('wasi/wasm32', 'wasip2/wasm')).toBe(true);
  });
  it('compares variants only when both are set, arm64 defaulting to v8', () => {
    expect(m('linux/arm/v7', 'linux/arm')).toBe(true);
    expect(m('linux/arm/v6', 'linux/arm/v7')).toBe(false);
    expect(m('linux/arm64', 'linux/arm64/v8')).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64', variant: 'v9' })).toBe(false);
  });
});

describe('selectManifest', () => {
  const linuxHost = d(1, host);
  const linuxOther = d(2, other);
  const wasm = d(3, { os: 'wasi', architecture: 'wasm' });
  const attest = d(4, { os: 'unknown', architecture: 'unknown' }, { 'vnd.docker.reference.type': 'attestation-manifest' });

  it('is Wasm-first without an explicit platform', () => {
    expect(selectManifest([linuxHost, linuxOther, wasm], undefined, 'img')).toBe(wasm);
  });

  it('falls back to the host platform', () => {
    expect(selectManifest([linuxOther, linuxHost], undefined, 'img')).toBe(linuxHost);
  });

  it('honours an explicit platform', () => {
    expect(selectManifest([wasm, linuxHost, linuxOther], other, 'img')).toBe(linuxOther);
    expect(selectManifest([linuxHost, wasm], parsePlatform('wasip1/wasm'), 'img')).toBe(wasm);
  });

  it('prefers the exact variant', () => {
    const v6 = d(5, { os: 'linux', architecture: 'arm', variant: 'v6' });
    const v7 = d(6, { os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(selectManifest([v6, v7], parsePlatform('linux/arm/v7'), 'img')).toBe(v7);
  });

  it('skips attestation manifests', () => {
    const unknownOnly = d(7, { os: 'unknown', architecture: 'unknown' });
    expect(selectManifest([attest, unknownOnly, linuxHost], undefined, 'img')).toBe(linuxHost);
    expect(() => selectManifest([attest], undefined, 'img')).toThrow(NotFoundError);
  });

  it('lists what is available when nothing matches', () => {
    const call = (): Descriptor => selectManifest([linuxHost, wasm, attest], parsePlatform('linux/s390x'), 'oci:/x');
    expect(call).toThrow(NotFoundError);
    expect(call).toThrow(`no manifest for linux/s390x in oci:/x; available: ${formatPlatform(host)}, wasi/wasm`);
    expect(() => selectManifest([linuxOther], undefined, 'oci:/x')).toThrow(
      `no manifest for ${formatPlatform(host)} in oci:/x; available: ${formatPlatform(other)}`,
    );
  });
});
