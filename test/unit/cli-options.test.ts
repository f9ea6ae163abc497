import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { parseContainerName, parseEnvArg, parseEnvFile, parseLayerLimits, parseMemory, parseNetwork, parseVolume } from '../../src/cli/options.js';
import { parseFileMapping } from '../../src/cli/image-commands.js';

describe('--layer-limits', () => {
  it('reads any subset of entries, size and ratio', () => {
    expect(parseLayerLimits('entries=1000,size=2g,ratio=50')).toEqual({ maxEntries: 1000, maxBytes: 2 * 1024 ** 3, maxRatio: 50 });
    expect(parseLayerLimits('ratio=500')).toEqual({ maxRatio: 500 });
  });
  it.each(['entries=0', 'ratio=-1', 'ratio=1.5', 'size=lots', 'depth=3', 'entries', ''])('refuses %j', (v) => expect(() => parseLayerLimits(v)).toThrow(UsageError));
});

describe('run option parsing', () => {
  it.each([
    ['64m', 64 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1.5G', 1.5 * 1024 ** 3],
    ['8388608', 8388608],
    ['512MiB', 512 * 1024 ** 2],
  ])('memory %s', (v, bytes) => expect(parseMemory(v)).toBe(bytes));
  it.each(['', 'lots', '-1m', '1x', '1m2'])('rejects memory %j', (v) => expect(() => parseMemory(v)).toThrow(UsageError));
  it('rejects memory below the minimum', () => expect(() => parseMemory('1m')).toThrow(/minimum/));

  it('parses volumes', () => {
    const d = mkdtempSync(join(tmpdir(), 'vol-'));
    try {
      expect(parseVolume(`${d}:/data`)).toEqual({ source: d, destination: '/data', readonly: false });
      expect(parseVolume(`${d}:/data:ro`).readonly).toBe(true);
      expect(() => parseVolume(`${d}:data`)).toThrow(/must be absolute/);
      expect(() => parseVolume(`${d}:/data:rx`)).toThrow(/unknown mode/);
      expect(() => parseVolume('/no/such/dir:/d')).toThrow(/does not exist/);
      expect(() => parseVolume('justone')).toThrow(/HOST:CONTAINER/);
    } finally {
      rmSync(d, { recursive: true });
    }
  });

  it('parses env args and files', () => {
    expect(parseEnvArg('A=b=c')).toBe('A=b=c');
    expect(parseEnvArg('HOME_X', { HOME_X: 'v' })).toBe('HOME_X=v');
    expect(parseEnvArg('UNSET_X', {})).toBeUndefined();
    expect(() => parseEnvArg('1BAD=x')).toThrow(/invalid variable name/);
    const d = mkdtempSync(join(tmpdir(), 'env-'));
    try {
      const f = join(d, 'e');
      writeFileSync(f, '# c\n\nA=1\n  B=two words\nC\n');
      expect(parseEnvFile(f, { C: 'from-host' })).toEqual(['A=1', 'B=two words', 'C=from-host']);
      writeFileSync(f, 'OK=1\nbad name=2\n');
      expect(() => parseEnvFile(f)).toThrow(/:2: invalid variable name/);
      expect(() => parseEnvFile(join(d, 'missing'))).toThrow(/cannot read/);
    } finally {
      rmSync(d, { recursive: true });
    }
  });

  it('parses network modes and names', () => {
    expect(parseNetwork('none')).toBe('none');
    expect(parseNetwork('host')).toBe('host');
    expect(() => parseNetwork('bridge')).toThrow(/unsupported mode/);
    expect(parseContainerName('web-1.a_b')).toBe('web-1.a_b');
    for (const bad of ['', '../x', 'a/b', '-x', 'x'.repeat(200)]) expect(() => parseContainerName(bad)).toThrow(UsageError);
  });

  it('parses --file mappings', () => {
    expect(parseFileMapping('/a/b:/c')).toEqual({ hostPath: '/a/b', containerPath: '/c' });
    expect(() => parseFileMapping('/a/b:c')).toThrow(/absolute/);
    expect(() => parseFileMapping('nocolon')).toThrow(/HOST:CONTAINER/);
  });
});
