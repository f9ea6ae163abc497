import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { checkContainerId, flagValue, hasFlag, isOciInvocation, parseGlobals, parseOciCommand, runcArgv } from '../../src/cli/oci/argv.js';

// go-runc's order: globals, command, command flags, id.
const CREATE = ['--root', '/run/containerd/runc/default', '--log', '/b/log.json', '--log-format', 'json', '--systemd-cgroup', 'create', '--bundle', '/b', '--pid-file', '/b/init.pid', '--console-socket', '/tmp/pty.sock', 'c1'];

describe('runc argv parsing', () => {
  it('splits globals from the command in go-runc order', () => {
    const g = parseGlobals(CREATE);
    expect(CREATE[g.commandIndex]).toBe('create');
    expect(flagValue(g.flags, 'root')).toBe('/run/containerd/runc/default');
    expect(hasFlag(g.flags, 'systemd-cgroup')).toBe(true);
  });

  it('accepts --flag=value, single dashes and Docker runtimeArgs before the globals', () => {
    const p = parseOciCommand(['-debug', '--root=/r', 'create', '-bundle=/b', '-pid-file', '/p', 'id']);
    expect(flagValue(p.globals, 'root')).toBe('/r');
    expect(flagValue(p.flags, 'bundle', 'b')).toBe('/b');
    expect(p.positionals).toEqual(['id']);
  });

  it('reads create flags and the id', () => {
    const p = parseOciCommand(CREATE);
    expect(p.command).toBe('create');
    expect(flagValue(p.flags, 'bundle', 'b')).toBe('/b');
    expect(flagValue(p.flags, 'console-socket')).toBe('/tmp/pty.sock');
    expect(p.positionals).toEqual(['c1']);
  });

  it('stops exec flags at the id: the rest is the command to run', () => {
    const p = parseOciCommand(['exec', '-e', 'A=1', '--tty', 'c1', '/bin/sh', '-c', 'echo -e x']);
    expect(flagValue(p.flags, 'env', 'e')).toBe('A=1');
    expect(hasFlag(p.flags, 'tty', 't')).toBe(true);
    expect(p.positionals).toEqual(['c1', '/bin/sh', '-c', 'echo -e x']);
  });

  it('rejects unknown and incomplete flags the way runc words it', () => {
    expect(() => parseOciCommand(['create', '--bogus', 'x'])).toThrow(/flag provided but not defined: -bogus/);
    expect(() => parseOciCommand(['create', '--bundle'])).toThrow(/flag needs an argument: -bundle/);
    expect(() => parseOciCommand(['--nope', 'create', 'x'])).toThrow(UsageError);
  });

  it('forwards commands it does not interpret whole', () => {
    const p = parseOciCommand(['--root', '/r', 'update', '--memory', '1m', 'c1']);
    expect(p.flags).toEqual([]);
    expect(p.positionals).toEqual(['--memory', '1m', 'c1']);
    expect(runcArgv(p)).toEqual(['--root', '/r', 'update', '--memory', '1m', 'c1']);
  });

  it('replaces one flag value and drops Tugboat-only globals for runc', () => {
    const p = parseOciCommand(['--kit', '/k', ...CREATE]);
    const argv = runcArgv(p, { names: ['bundle', 'b'], value: '/derived' });
    expect(argv).not.toContain('--kit');
    expect(argv).not.toContain('/k');
    expect(argv.slice(argv.indexOf('create'))).toEqual(['create', '--bundle', '/derived', '--pid-file', '/b/init.pid', '--console-socket', '/tmp/pty.sock', 'c1']);
  });

  it('tells runc invocations from Tugboat commands', () => {
    expect(isOciInvocation(CREATE)).toBe(true);
    expect(isOciInvocation(['--root', '/r', 'ps', '--format', 'json', 'c1'])).toBe(true);
    expect(isOciInvocation(['ps', '--format', 'json'])).toBe(false); // tugboat's own container list
    expect(isOciInvocation(['run', '--rm', 'img'])).toBe(false);
    expect(isOciInvocation(['image', 'ls'])).toBe(false);
    // Unknown global flags before a runc command stay runc's (and get runc's error).
    expect(isOciInvocation(['--bogus', 'create', '--bundle', '/b', 'c1'])).toBe(true);
    expect(isOciInvocation(['-x', 'delete', 'c1'])).toBe(true);
    expect(isOciInvocation(['--bogus', 'ps', 'c1'])).toBe(true);
    expect(isOciInvocation(['--bogus', 'ps'])).toBe(false);
    expect(isOciInvocation(['--bogus', 'run', 'img'])).toBe(false);
    expect(isOciInvocation(['--bogus', '--root', '/r', '--log=/l', 'start', 'c1'])).toBe(true);
    expect(isOciInvocation(['--root', '/r', '--bogus', 'image', 'ls'])).toBe(false);
  });
});

describe('container ids', () => {
  it('validates ids like runc and refuses traversal', () => {
    expect(checkContainerId('a-b_c.d+e', 'create')).toBe('a-b_c.d+e');
    for (const bad of ['', '..', '.', '../x', 'a/b', 'a b']) expect(() => checkContainerId(bad, 'create')).toThrow(UsageError);
    expect(() => checkContainerId(undefined, 'create')).toThrow(/cannot be empty/);
  });
});
