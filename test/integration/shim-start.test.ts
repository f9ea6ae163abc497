// `containerd-shim-tugboat-v1 start` answers from sh, without Node, when the
// task's group already has a live shim (bin/containerd-shim-tugboat-v1). Its
// answer must be Node's exactly: the same printed address, the same
// `address` file, the same status, for every way containerd and CRI write the
// grouping annotations and the flags; and everything it cannot read exactly
// must reach Node.
import { createHash } from 'node:crypto';
import { copyFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { socketAddress, socketPath, SOCKET_DIR } from '../../src/shim/address.js';
import { exec, REPO } from './helpers.js';

const SHIM = join(REPO, 'bin', 'containerd-shim-tugboat-v1');
const OPTIONS = 'options-any-bytes';

let work: string;
/** A containerd address of this test's own, so the sockets it makes are nobody else's. */
let containerd: string;
const servers: Server[] = [];

function listen(path: string): Promise<Server> {
  return new Promise((res, rej) => {
    const s = createServer((c) => c.destroy());
    s.once('error', rej);
    s.listen(path, () => res(s));
  });
}

/** A live "shim" of group `group` in namespace `ns`: a listening socket where Node's start() looks. */
async function liveGroup(ns: string, group: string): Promise<string> {
  const address = socketAddress(containerd, ns, group);
  mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o700 });
  servers.push(await listen(socketPath(address)));
  return address;
}

let bundles = 0;
function bundle(config: string): string {
  const dir = join(work, `b${bundles++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), config);
  return dir;
}

const spec = (annotations: Record<string, string>, pretty = false) =>
  JSON.stringify({ ociVersion: '1.0.2', process: { args: ['/hello.wasm'], env: ['PATH=/bin'], cwd: '/' }, root: { path: 'rootfs' }, annotations }, null, pretty ? 2 : undefined);

interface Answer {
  code: number;
  stdout: string;
  address: string | undefined;
}

async function start(shim: string, dir: string, flags: string[], env: NodeJS.ProcessEnv = {}): Promise<Answer> {
  rmSync(join(dir, 'address'), { force: true });
  const r = await exec(shim, [...flags, 'start'], { cwd: dir, input: OPTIONS, env });
  const file = join(dir, 'address');
  return { code: r.code, stdout: r.stdout, address: existsSync(file) ? readFileSync(file, 'utf8') : undefined };
}

const flagsFor = (ns: string, id: string) => ['-namespace', ns, '-address', containerd, '-publish-binary', '/usr/bin/containerd', '-id', id];

let fake: string;
/** The wrapper in a tree whose "Node" only says it was asked (a real one would spawn a shim): "node" on stdout. */
const fakeShim = () => join(fake, 'bin', 'containerd-shim-tugboat-v1');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tugboat-shim-start-'));
  containerd = join(work, 'containerd.sock');
  fake = join(work, 'fake');
  mkdirSync(join(fake, 'bin'), { recursive: true });
  mkdirSync(join(fake, 'vendor', 'node', 'bin'), { recursive: true });
  copyFileSync(SHIM, join(fake, 'bin', 'containerd-shim-tugboat-v1'));
  writeFileSync(join(fake, 'vendor', 'node', 'bin', 'node'), '#!/bin/sh\ncat >/dev/null\nprintf node\n');
  chmodSync(join(fake, 'vendor', 'node', 'bin', 'node'), 0o755);
});
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  rmSync(work, { recursive: true, force: true });
});

describe('shim start of a task whose group has a live shim', () => {
  const cases: Array<[string, string, Record<string, string>, boolean, string[]?]> = [
    ['a ctr group (compact JSON)', 'default', { 'io.containerd.runc.v2.group': 'g1' }, false],
    ['a CRI pod (sandbox id)', 'k8s.io', { 'io.kubernetes.cri.sandbox-id': 'a'.repeat(64), 'io.kubernetes.cri.container-type': 'container' }, false],
    ['both keys: the ctr group wins', 'default', { 'io.kubernetes.cri.sandbox-id': 'sb2', 'io.containerd.runc.v2.group': 'g2' }, false],
    ['an empty group is skipped for the sandbox id', 'default', { 'io.containerd.runc.v2.group': '', 'io.kubernetes.cri.sandbox-id': 'sb3' }, false],
    ['pretty-printed JSON', 'default', { 'io.containerd.runc.v2.group': 'g4' }, true],
    ['flags as --x=v', 'ns-5', { 'io.containerd.runc.v2.group': 'g5' }, false, ['--namespace=ns-5', `--address=${'CONTAINERD'}`, '--id=c', '-debug']],
  ];

  it.each(cases)('%s: the same answer as Node, from sh', async (_name, ns, annotations, pretty, flags) => {
    const group = annotations['io.containerd.runc.v2.group'] || annotations['io.kubernetes.cri.sandbox-id']!;
    const address = await liveGroup(ns, group);
    const dir = bundle(spec(annotations, pretty));
    const argv = flags ? flags.map((f) => f.replace('CONTAINERD', containerd)) : flagsFor(ns, `task-${bundles}`);
    const viaNode = await start(SHIM, dir, argv, { TUGBOAT_SHIM_FAST: 'off' });
    const viaSh = await start(SHIM, dir, argv);
    expect(viaNode).toEqual({ code: 0, stdout: address, address });
    expect(viaSh).toEqual(viaNode);
    // And it was sh's answer: the same wrapper whose Node cannot answer.
    expect(await start(fakeShim(), dir, argv)).toEqual(viaNode);
  });
});

describe('shim start: what sh leaves to Node', () => {

  beforeAll(async () => {
    // Every case below would be answered from sh for this live group, but for what it tests.
    await liveGroup('default', 'control');
  });

  const toNode: Array<[string, Record<string, string> | string, string[]?]> = [
    ['an ungrouped task (it needs a shim of its own)', {}],
    ['a group with no live shim', { 'io.containerd.runc.v2.group': 'nobody-here' }],
    ['escapes in the JSON', `{"annotations":{"io.containerd.runc.v2.group":"control"},"process":{"args":["a\\"b"]}}`],
    ['a key named twice', `{"annotations":{"io.containerd.runc.v2.group":"control","io.containerd.runc.v2.group":"x"}}`],
    ['the key as a value', `{"process":{"args":["io.containerd.runc.v2.group"]},"annotations":{"io.containerd.runc.v2.group":"control"}}`],
    ['a group path.join would change', { 'io.containerd.runc.v2.group': '../control' }],
    ['a group with characters sh does not quote', { 'io.containerd.runc.v2.group': 'con trol' }],
    ['no config.json', ''],
    // (A live socket waits at the hash of the plain concatenation: only the check keeps sh from answering with it.)
    ['a relative containerd address', { 'io.containerd.runc.v2.group': 'control' }, ['-namespace', 'default', '-address', 'NAIVE:run/containerd.sock', 'start']],
    ['an address path.join would clean (double slash)', { 'io.containerd.runc.v2.group': 'control' }, ['-namespace', 'default', '-address', 'NAIVE:/run//containerd.sock', 'start']],
    ['an address path.join would clean (trailing slash)', { 'io.containerd.runc.v2.group': 'control' }, ['-namespace', 'default', '-address', 'NAIVE:/run/containerd.sock/', 'start']],
    ['an address path.join would clean (a dot part)', { 'io.containerd.runc.v2.group': 'control' }, ['-namespace', 'default', '-address', 'NAIVE:/run/./containerd.sock', 'start']],
    ['an unknown flag', { 'io.containerd.runc.v2.group': 'control' }, ['-namespace', 'default', '-weird', 'start']],
    ['the version flag', { 'io.containerd.runc.v2.group': 'control' }, ['-v']],
    ['an unknown action', { 'io.containerd.runc.v2.group': 'control' }, ['-namespace', 'default', '-address', '/run/containerd.sock', 'stop']],
    ['the daemon (no action)', { 'io.containerd.runc.v2.group': 'control' }, ['-namespace', 'default', '-address', '/run/containerd.sock']],
  ];

  it.each(toNode)('%s goes to Node', async (_name, config, argv) => {
    const dir = bundle(typeof config === 'string' ? config : spec(config));
    if (config === '') rmSync(join(dir, 'config.json'));
    const full = (argv ?? [...flagsFor('default', 'c'), 'start']).map((a) => a.replace(/^NAIVE:/, ''));
    const naive = argv?.find((a) => a.startsWith('NAIVE:'));
    if (naive) servers.push(await listen(join(SOCKET_DIR, createHash('sha256').update(`${naive.slice('NAIVE:'.length)}/default/control`).digest('hex'))));
    const r = await exec(fakeShim(), full, { cwd: dir, input: OPTIONS });
    expect(r.stdout).toBe('node');
    expect(existsSync(join(dir, 'address'))).toBe(false);
  });

  it('a socket path nobody listens on (a killed shim leaves its file) goes to Node', async () => {
    const path = socketPath(socketAddress(containerd, 'default', 'dead'));
    writeFileSync(path, '');
    try {
      const dir = bundle(spec({ 'io.containerd.runc.v2.group': 'dead' }));
      const r = await exec(fakeShim(), [...flagsFor('default', 'c'), 'start'], { cwd: dir, input: OPTIONS });
      expect(r.stdout).toBe('node');
    } finally {
      rmSync(path, { force: true });
    }
  });
});
