// The one module for defaults and environment variables.
import { isAbsolute, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { componentCacheDir, dataRoot, kitDir, ociDerivedBundleDir, ociRuncContainerDir, runcBinary, runcRootKey, shimDerivedBundleDir, stateDir, ttrpcAddress, yieldInterval } from '../../src/defaults.js';
import { UsageError } from '../../src/errors.js';

describe('defaults', () => {
  it('uses the built-in places when nothing is set', () => {
    expect(dataRoot(undefined, {})).toBe('/var/lib/tugboat');
    expect(stateDir({})).toBe('/run/tugboat');
    expect(runcBinary(undefined, {})).toBe('runc');
    expect(componentCacheDir('/r')).toBe('/r/components');
    expect(ttrpcAddress('/run/containerd/containerd.sock', {})).toBe('/run/containerd/containerd.sock.ttrpc');
    // The checkout's own kit, wherever the code runs from.
    expect(kitDir(undefined, {})).toMatch(/\/build\/kit$/);
  });

  it('lets the environment, then an explicit flag, move them', () => {
    const env = { TUGBOAT_ROOT: '/data/tb', TUGBOAT_STATE: '/st', TUGBOAT_RUNC: '/opt/runc', TUGBOAT_KIT: '/opt/kit', TTRPC_ADDRESS: '/x.ttrpc' };
    expect(dataRoot(undefined, env)).toBe('/data/tb');
    expect(dataRoot('/other', env)).toBe('/other');
    expect(stateDir(env)).toBe('/st');
    expect(runcBinary(undefined, env)).toBe('/opt/runc');
    expect(runcBinary('/mine', env)).toBe('/mine');
    expect(kitDir(undefined, env)).toBe('/opt/kit');
    expect(kitDir('/k', env)).toBe('/k');
    expect(ttrpcAddress('/a', env)).toBe('/x.ttrpc');
    // An empty variable is no setting.
    expect(dataRoot(undefined, { TUGBOAT_ROOT: '' })).toBe('/var/lib/tugboat');
  });

  it('reads the yield interval of shared hosts (0 for none), refusing anything but a count', () => {
    expect(yieldInterval({})).toBeUndefined();
    expect(yieldInterval({ TUGBOAT_YIELD_INTERVAL: '0' })).toBe(0);
    expect(yieldInterval({ TUGBOAT_YIELD_INTERVAL: '50000' })).toBe(50_000);
    for (const bad of ['-1', '1e4', 'ten', '1234567890', ' 5']) expect(() => yieldInterval({ TUGBOAT_YIELD_INTERVAL: bad })).toThrow(UsageError);
  });

  it('resolves a relative kit or root once, against the working directory', () => {
    // runc reads bind-mount sources from another directory: "build/kit" must not reach it as such.
    expect(kitDir('rel/kit', {})).toBe(resolve('rel/kit'));
    expect(kitDir(undefined, { TUGBOAT_KIT: './kit' })).toBe(resolve('kit'));
    expect(isAbsolute(dataRoot('some/root', {}))).toBe(true);
  });

  it('keys the OCI CLI derived bundles by runc root and id (bin/tugboat derives the same in sh)', () => {
    expect(ociDerivedBundleDir('/var/run/docker/runtime-runc/moby', 'abc', { TUGBOAT_STATE: '/st' })).toBe('/st/bundles/%var%run%docker%runtime-runc%moby/abc');
    expect(ociDerivedBundleDir(undefined, 'abc', { TUGBOAT_STATE: '/st' })).toBe('/st/bundles/%run%runc/abc');
    expect(shimDerivedBundleDir('/b')).toBe(join('/b', 'tugboat-wasm'));
  });

  it('issue 11 item 3: derives the key from the root as runc resolves it, one key per root', () => {
    const env = { TUGBOAT_STATE: '/st' };
    // Relative roots are runc's too (filepath.Abs): `..` is a directory, never a step out of bundles/.
    expect(ociDerivedBundleDir('..', 'bundles', env)).toBe(join('/st/bundles', resolve('..').replaceAll('/', '%'), 'bundles'));
    expect(ociDerivedBundleDir('/a/../b//c/', 'x', env)).toBe('/st/bundles/%b%c/x');
    // "/a%b" and "/a/b" are two roots: two keys.
    expect(ociDerivedBundleDir('/a%b', 'x', env)).toBe('/st/bundles/%a%25b/x');
    expect(ociDerivedBundleDir('/a/b', 'x', env)).toBe('/st/bundles/%a%b/x');
    expect(runcRootKey('/run/runc')).toBe('%run%runc');
  });

  it.each([
    ['a root inside the state dir', '/st/bundles', 'x', /--root \/st\/bundles: runc's state cannot live inside Tugboat's state dir \/st/],
    ['the state dir itself', '/st', 'x', /cannot live inside Tugboat's state dir/],
    ['a root whose container dir is the state dir', '/', 'st', /names \/st, which holds Tugboat's \/st; refusing/],
    ['a root whose container dir holds the data root', '/var', 'lib', /names \/var\/lib, which holds Tugboat's \/var\/lib\/tugboat/],
    ['an id with a slash', '/run/runc', 'a/b', /invalid container id format/],
    ['an id of ..', '/run/runc', '..', /invalid container id format/],
    ['a root with a newline', '/run/runc\n', 'x', /control characters/],
  ])('issue 11 item 3: refuses %s (status 2)', (_what, root, id, message) => {
    expect(() => ociDerivedBundleDir(root, id, { TUGBOAT_STATE: '/st' })).toThrow(message);
    try {
      ociDerivedBundleDir(root, id, { TUGBOAT_STATE: '/st' });
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
    }
    expect(() => ociRuncContainerDir('/run/runc', 'ok', { TUGBOAT_STATE: '/st' })).not.toThrow();
  });
});
