// The shim's command line (Go flag semantics), its socket address and grouping
// key, and the wait-status decoding the reaper uses.
import { describe, expect, it } from 'vitest';
import { groupingKey, socketAddress } from '../../src/shim/address.js';
import { parseShimFlags } from '../../src/shim/flags.js';
import { mountArgv } from '../../src/shim/rootfs.js';
import { lastRuntimeError } from '../../src/linux-runtime/runc.js';
import { decodeWaitStatus } from '../../src/linux-runtime/sys.js';

describe('parseShimFlags', () => {
  it('parses containerd 1.6 start and delete invocations', () => {
    const start = parseShimFlags(['-namespace', 'default', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 't1', '-debug', 'start']);
    expect(start).toMatchObject({ namespace: 'default', address: '/run/containerd/containerd.sock', publishBinary: '/usr/bin/containerd', id: 't1', debug: true, action: 'start' });
    const del = parseShimFlags(['-namespace', 'k8s.io', '-address', '/a', '-publish-binary', '/b', '-id', 'x', '-bundle', '/run/b/x', 'delete']);
    expect(del).toMatchObject({ namespace: 'k8s.io', bundle: '/run/b/x', action: 'delete', debug: false });
  });

  it('accepts -x=v, --x v, --x=v and -bool=false, stops at the first positional or --', () => {
    expect(parseShimFlags(['--namespace=ns', '--id', 'a', '-debug=false', '-socket=/s'])).toMatchObject({ namespace: 'ns', id: 'a', debug: false, socket: '/s', action: '' });
    expect(parseShimFlags(['-namespace', 'ns', 'start', '-id', 'ignored']).id).toBe('');
    expect(parseShimFlags(['-namespace', 'ns', '--', '-start']).action).toBe('-start');
    expect(parseShimFlags(['-v']).version).toBe(true);
    expect(parseShimFlags([]).publishBinary).toBe('containerd');
  });

  it('rejects unknown flags, missing values and bad booleans', () => {
    expect(() => parseShimFlags(['-bogus', 'x'])).toThrow(/flag provided but not defined: -bogus/);
    expect(() => parseShimFlags(['-id'])).toThrow(/flag needs an argument: -id/);
    expect(() => parseShimFlags(['-debug=maybe'])).toThrow(/invalid boolean value/);
    expect(() => parseShimFlags(['---id', 'x'])).toThrow(/bad flag syntax/);
  });
});

describe('shim address', () => {
  it('matches the runc shim worked example (protocols.md §1.3)', () => {
    expect(socketAddress('/run/containerd/containerd.sock', 'default', 'demo')).toBe(
      'unix:///run/containerd/s/12117510a54ae87cb9f59e68c4b6897783ff70cec968b5b5967a0a0cd503057e',
    );
  });

  it('groups by io.containerd.runc.v2.group, then the CRI sandbox id, else the task id', () => {
    expect(groupingKey('t', { 'io.containerd.runc.v2.group': 'g', 'io.kubernetes.cri.sandbox-id': 's' })).toBe('g');
    expect(groupingKey('t', { 'io.kubernetes.cri.sandbox-id': 's' })).toBe('s');
    expect(groupingKey('t', {})).toBe('t');
    expect(groupingKey('t', undefined)).toBe('t');
  });
});

describe('wait status', () => {
  it('is the exit code, or 128 + the signal', () => {
    expect(decodeWaitStatus(3 << 8)).toBe(3);
    expect(decodeWaitStatus(0)).toBe(0);
    expect(decodeWaitStatus(9)).toBe(137);
    expect(decodeWaitStatus(15)).toBe(143);
    expect(decodeWaitStatus(6 | 0x80)).toBe(134); // core dumped
  });
});

describe('rootfs mounts and runc errors', () => {
  it('spells overlay and bind mounts for mount(8)', () => {
    expect(mountArgv({ type: 'overlay', source: 'overlay', options: ['workdir=/w', 'upperdir=/u', 'lowerdir=/l1:/l2'] }, '/b/rootfs')).toEqual([
      '-t',
      'overlay',
      '-o',
      'workdir=/w,upperdir=/u,lowerdir=/l1:/l2',
      'overlay',
      '/b/rootfs',
    ]);
    expect(mountArgv({ type: 'bind', source: '/snap/1/fs', options: ['ro', 'rbind'] }, '/b/rootfs')).toEqual(['-o', 'ro,rbind', '/snap/1/fs', '/b/rootfs']);
    expect(mountArgv({ type: 'bind', source: '/s', options: [] }, '/t')).toEqual(['-o', 'rbind', '/s', '/t']);
  });

  it('takes the last error line of log.json, as containerd does', () => {
    const log = [
      '{"level":"info","msg":"x","time":"t"}',
      '{"level":"error","msg":"first","time":"t"}',
      '{"level":"error","msg":"exec: \\"nope\\": executable file not found in $PATH","time":"t"}',
      '',
    ].join('\n');
    expect(lastRuntimeError(log)).toBe('exec: "nope": executable file not found in $PATH');
    expect(lastRuntimeError('not json')).toBe('unable to retrieve OCI runtime error');
    expect(lastRuntimeError('')).toBe('');
  });
});
