// `containerd-shim-tugboat-v1 delete` answers from sh, without Node
// (bin/containerd-shim-tugboat-v1): containerd runs it for every task of a
// shim that is gone, all at once, each within a 5 s cleanup timeout. Its
// answer must be Node's del(): the same DeleteResponse bytes (but for the
// time), the same stderr, the same side effects (runc state, mounts, the
// derived bundle, the group's socket), each case set up twice and run once
// through Node (TUGBOAT_SHIM_FAST=off) and once through sh; and everything sh
// cannot read exactly must reach Node.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shimDerivedBundleDir } from '../../src/defaults.js';
import { SOCKET_DIR } from '../../src/shim/address.js';
import { decode, DeleteResponseSchema, encode } from '../../src/shim/proto/index.js';
import { REPO } from './helpers.js';

const SHIM = join(REPO, 'bin', 'containerd-shim-tugboat-v1');
const NS = 'shimdel';

let work: string;
let fake: string;
const servers: Server[] = [];
const sockets: string[] = [];
/** The wrapper in a tree whose "Node" only says it was asked. */
const fakeShim = () => join(fake, 'bin', 'containerd-shim-tugboat-v1');

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', rej);
    child.once('close', (code) => res({ code: code ?? -1, stdout: Buffer.concat(out), stderr }));
  });
}

const mountPoints = () =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
const mountedUnder = (dir: string) => mountPoints().filter((p) => p === dir || p.startsWith(`${dir}/`));

let bundles = 0;
/** A bundle as containerd and the shim leave it: config.json, options.json (a private runc root), init.pid. */
function bundle(opts: { options?: string; pid?: string; name?: string } = {}): { dir: string; id: string; root: string } {
  const n = bundles++;
  const dir = join(work, opts.name ?? `b${n}`);
  const root = join(work, `runc${n}`);
  mkdirSync(join(dir, 'rootfs'), { recursive: true });
  writeFileSync(join(dir, 'config.json'), '{"ociVersion":"1.0.2"}');
  writeFileSync(join(dir, 'options.json'), opts.options ?? JSON.stringify({ root }));
  if (opts.pid !== undefined) writeFileSync(join(dir, 'init.pid'), opts.pid);
  return { dir, id: `task-${n}`, root };
}

const flags = (id: string, dir: string) => ['-namespace', NS, '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', id, '-bundle', dir];

function del(shim: string, b: { dir: string; id: string }, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return run(shim, [...flags(b.id, b.dir), 'delete'], { cwd: b.dir, env });
}

/** The answer, checked to be a canonical DeleteResponse stamped now; the time itself left out. */
function answer(r: Run): { code: number; stderr: string; pid: number; exitStatus: number } {
  const m = decode(DeleteResponseSchema, r.stdout);
  expect(Buffer.from(encode(DeleteResponseSchema, m)).toString('hex')).toBe(r.stdout.toString('hex'));
  const ms = Number(m.exitedAt!.seconds) * 1000 + m.exitedAt!.nanos / 1e6;
  expect(Math.abs(Date.now() - ms)).toBeLessThan(60_000);
  return { code: r.code, stderr: r.stderr, pid: m.pid, exitStatus: m.exitStatus };
}

/** Runs one case through Node and through sh, each on a bundle of its own made by `setup`; returns what each saw. */
async function both<T>(setup: () => Promise<{ dir: string; id: string; root: string }>, observe: (b: { dir: string; id: string; root: string }) => T) {
  // Each bundle's own init.pid (a real container's pid differs between the two).
  const ownPid = (b: { dir: string }, r: ReturnType<typeof answer>) => {
    const file = join(b.dir, 'init.pid');
    return existsSync(file) && r.pid !== 0 && r.pid === Number(readFileSync(file, 'utf8').trim()) ? { ...r, pid: 'init.pid' } : r;
  };
  const a = await setup();
  const viaNode = ownPid(a, answer(await del(SHIM, a, { TUGBOAT_SHIM_FAST: 'off' })));
  const nodeSaw = observe(a);
  const b = await setup();
  const viaSh = ownPid(b, answer(await del(fakeShim(), b))); // the wrapper whose Node cannot answer: sh's answer
  const shSaw = observe(b);
  expect(viaSh).toEqual(viaNode);
  expect(shSaw).toEqual(nodeSaw);
  return { viaNode, nodeSaw };
}

function listen(path: string): Promise<Server> {
  return new Promise((res, rej) => {
    const s = createServer((c) => c.destroy());
    s.once('error', rej);
    s.listen(path, () => res(s));
  });
}

/** A socket file nobody listens on: what a SIGKILLed shim leaves. */
function deadSocket(path: string): void {
  try {
    execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`], { stdio: 'ignore' });
  } catch {
    // killed, as meant
  }
  expect(existsSync(path)).toBe(true);
}

function socketFor(name: string): string {
  mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o700 });
  const path = join(SOCKET_DIR, createHash('sha256').update(`shim-delete-test/${process.pid}/${name}`).digest('hex'));
  sockets.push(path);
  return path;
}

/** A fake runc: writes `log` as its log.json line and `err` on stderr, records its argv, exits 1. */
function fakeRunc(name: string, opts: { log?: string; err?: string }): string {
  const path = join(work, name);
  writeFileSync(
    path,
    `#!/bin/sh\nprintf '%s\\n' "$*" >> ${path}.argv\nwhile [ $# -gt 0 ]; do [ "$1" = --log ] && log=$2; shift; done\n` +
      (opts.log !== undefined ? `printf '%s\\n' '${opts.log}' >> "$log"\n` : '') +
      (opts.err !== undefined ? `printf '%s\\n' '${opts.err}' >&2\n` : '') +
      'exit 1\n',
  );
  chmodSync(path, 0o755);
  return path;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tugboat-shim-delete-'));
  fake = join(work, 'fake');
  mkdirSync(join(fake, 'bin'), { recursive: true });
  mkdirSync(join(fake, 'vendor', 'node', 'bin'), { recursive: true });
  copyFileSync(SHIM, join(fake, 'bin', 'containerd-shim-tugboat-v1'));
  writeFileSync(join(fake, 'vendor', 'node', 'bin', 'node'), '#!/bin/sh\nprintf node\n');
  chmodSync(join(fake, 'vendor', 'node', 'bin', 'node'), 0o755);
});

afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  for (const p of sockets) rmSync(p, { force: true });
  if (work) {
    for (const p of mountedUnder(work).sort((a, b) => b.length - a.length)) execFileSync('umount', ['-l', p]);
    for (const root of execFileSync('sh', ['-c', `ls -d ${work}/runc*/${NS} 2>/dev/null || true`], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
      for (const c of (JSON.parse(execFileSync('runc', ['--root', root, 'list', '--format', 'json'], { encoding: 'utf8' }) || 'null') ?? []) as { id: string }[]) {
        execFileSync('runc', ['--root', root, 'delete', '--force', c.id], { stdio: 'ignore' });
      }
    }
    rmSync(work, { recursive: true, force: true });
  }
});

describe('shim delete from sh: the same answer and the same side effects as Node', () => {
  it('no runc state (the daemon already deleted the task): the pid from init.pid, 137', async () => {
    const { viaNode } = await both(
      async () => bundle({ pid: '4321\n' }),
      (b) => readFileSync(join(b.dir, 'init.pid'), 'utf8'),
    );
    expect(viaNode).toEqual({ code: 0, stderr: '', pid: 'init.pid', exitStatus: 137 });
  });

  it('no init.pid, and no options.json (runc under containerd\'s root, where this id has no state)', async () => {
    const { viaNode } = await both(
      async () => {
        const b = bundle();
        rmSync(join(b.dir, 'options.json'));
        return b;
      },
      (b) => existsSync(join(b.dir, 'rootfs')),
    );
    expect(viaNode).toMatchObject({ code: 0, stderr: '', pid: 0, exitStatus: 137 });
  });

  it.each([
    ['{} (every default)', () => '{}'],
    ['a newline after the object', (b: { root: string }) => `${JSON.stringify({ root: b.root, no_pivot_root: false })}\n`],
    ['a key named twice (the last wins)', (b: { root: string }) => `{"root":"/nowhere","root":"${b.root}","systemd_cgroup":true,"systemd_cgroup":false}`],
  ])('options.json read by sh: %s', async (_name, text) => {
    const { viaNode } = await both(
      async () => {
        const b = bundle({ pid: '99' });
        writeFileSync(join(b.dir, 'options.json'), text(b));
        return b;
      },
      (b) => readdirSafe(b.dir),
    );
    expect(viaNode).toEqual({ code: 0, stderr: '', pid: 'init.pid', exitStatus: 137 });
  });

  it('a running busybox under real runc (private root): runc delete --force kills it and removes its state', async () => {
    const { nodeSaw } = await both(
      async () => {
        const b = bundle();
        cpSync('/bin/busybox', join(b.dir, 'rootfs', 'busybox'));
        rmSync(join(b.dir, 'config.json'));
        execFileSync('runc', ['spec'], { cwd: b.dir });
        const spec = JSON.parse(readFileSync(join(b.dir, 'config.json'), 'utf8'));
        spec.process.terminal = false;
        spec.process.args = ['/busybox', 'sleep', '600'];
        writeFileSync(join(b.dir, 'config.json'), JSON.stringify(spec));
        const pidFile = join(b.dir, 'init.pid');
        execFileSync('runc', ['--root', join(b.root, NS), 'create', '--bundle', b.dir, '--pid-file', pidFile, b.id], { stdio: 'ignore' });
        execFileSync('runc', ['--root', join(b.root, NS), 'start', b.id], { stdio: 'ignore' });
        return b;
      },
      (b) => {
        const pid = Number(readFileSync(join(b.dir, 'init.pid'), 'utf8'));
        // Killed: gone, or a zombie until its parent (not runc's) reaps it.
        const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
        return { state: existsSync(join(b.root, NS, b.id)), alive: stat !== '' && !/\) [ZX] /.test(stat), list: execFileSync('runc', ['--root', join(b.root, NS), 'list', '-q'], { encoding: 'utf8' }) };
      },
    );
    expect(nodeSaw).toEqual({ state: false, alive: false, list: '' });
  });

  it.each([
    ['runc\'s error in log.json (quotes escaped)', { log: '{"level":"error","msg":"container \\"x\\" is stuck: a\\\\b","time":"2026-01-01T00:00:00Z"}', err: 'ignored' }],
    ['the last error of several lines, with numbers and nulls', { log: '{"level":"error","msg":"first","time":"t"}\n{"level":"info","msg":"not this","n":1.5e3}\n{"level":"error","msg":"second","x":null}' }],
    ['no log line: runc\'s stderr, trimmed', { err: '  it went wrong  ' }],
    ['no log line, no output', {}],
    ['a log line that is not JSON', { log: 'panic: not json' }],
    ['Go\'s escapes of <, > and &', { log: '{"level":"error","msg":"\\u003cnil\\u003e \\u0026 more \\/ \\t tab","time":"t"}' }],
  ])('a failing runc (%s): Node\'s warning line, and still the answer', async (_name, o) => {
    let n = 0;
    const { viaNode } = await both(
      async () => {
        const runc = fakeRunc(`runc-${bundles}-${n++}`, o);
        const b = bundle();
        writeFileSync(join(b.dir, 'options.json'), JSON.stringify({ binary_name: runc, root: b.root, systemd_cgroup: true }));
        mkdirSync(join(b.root, NS, b.id), { recursive: true });
        return { ...b, runc };
      },
      (b) => readFileSync(`${(b as unknown as { runc: string }).runc}.argv`, 'utf8').replaceAll(b.dir, 'BUNDLE').replaceAll(b.root, 'ROOT').replaceAll(b.id, 'ID'),
    );
    expect(viaNode.stderr).toMatch(/^warning: failed to remove runc container: OCI runtime delete failed: .+\n$/);
  });

  it('a mounted rootfs, with mounts below it and two stacked on it: all unmounted', async () => {
    const { nodeSaw } = await both(
      async () => {
        const b = bundle();
        const rootfs = join(b.dir, 'rootfs');
        execFileSync('mount', ['-t', 'tmpfs', 'lower', rootfs]);
        execFileSync('mount', ['-t', 'tmpfs', 'upper', rootfs]);
        for (const sub of ['proc', 'a/b', 'a']) mkdirSync(join(rootfs, sub), { recursive: true });
        execFileSync('mount', ['-t', 'tmpfs', 'a', join(rootfs, 'a')]);
        mkdirSync(join(rootfs, 'a', 'b'));
        execFileSync('mount', ['-t', 'tmpfs', 'ab', join(rootfs, 'a', 'b')]);
        execFileSync('mount', ['--bind', join(work, 'fake'), join(rootfs, 'proc')]);
        return b;
      },
      (b) => mountedUnder(b.dir),
    );
    expect(nodeSaw).toEqual([]);
  });

  it('a derived bundle dir: removed', async () => {
    const { nodeSaw } = await both(
      async () => {
        const b = bundle();
        mkdirSync(join(shimDerivedBundleDir(b.dir), 'sub'), { recursive: true });
        writeFileSync(join(shimDerivedBundleDir(b.dir), 'config.json'), '{}');
        return b;
      },
      (b) => existsSync(shimDerivedBundleDir(b.dir)),
    );
    expect(nodeSaw).toBe(false);
  });

  it('the group\'s socket nobody listens on (a SIGKILLed shim\'s): removed', async () => {
    let n = 0;
    const { nodeSaw } = await both(
      async () => {
        const b = bundle();
        const sock = socketFor(`dead${n++}`);
        deadSocket(sock);
        writeFileSync(join(b.dir, 'address'), `unix://${sock}`);
        return { ...b, sock };
      },
      (b) => existsSync((b as unknown as { sock: string }).sock),
    );
    expect(nodeSaw).toBe(false);
  });

  it('the group\'s socket a live shim serves other tasks on: kept', async () => {
    let n = 0;
    const { nodeSaw } = await both(
      async () => {
        const b = bundle();
        const sock = socketFor(`live${n++}`);
        servers.push(await listen(sock));
        writeFileSync(join(b.dir, 'address'), `unix://${sock}`);
        return { ...b, sock };
      },
      (b) => existsSync((b as unknown as { sock: string }).sock),
    );
    expect(nodeSaw).toBe(true);
  });

  it('an address whose socket is already gone: nothing to do', async () => {
    await both(
      async () => {
        const b = bundle({ pid: '77' });
        writeFileSync(join(b.dir, 'address'), `unix://${socketFor('gone')}\n`);
        return b;
      },
      (b) => readdirSafe(b.dir),
    );
  });
});

function readdirSafe(dir: string): string[] {
  return execFileSync('ls', ['-A', dir], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
}

describe('shim delete: what sh leaves to Node', () => {
  const toNode: Array<[string, (b: { dir: string; id: string; root: string }) => string[] | void]> = [
    ['escapes in options.json', (b) => void writeFileSync(join(b.dir, 'options.json'), `{"root":"${b.root.replaceAll('/', '\\/')}"}`)],
    ['an unknown key in options.json', (b) => void writeFileSync(join(b.dir, 'options.json'), JSON.stringify({ root: b.root, shim_cgroup: 'x' }))],
    ['systemd_cgroup as a string', (b) => void writeFileSync(join(b.dir, 'options.json'), JSON.stringify({ root: b.root, systemd_cgroup: 'yes' }))],
    ['pretty-printed options.json', (b) => void writeFileSync(join(b.dir, 'options.json'), JSON.stringify({ root: b.root }, null, 2))],
    ['an empty line after options.json', (b) => void writeFileSync(join(b.dir, 'options.json'), `${JSON.stringify({ root: b.root })}\n\n`)],
    ['a trailing comma in options.json', (b) => void writeFileSync(join(b.dir, 'options.json'), `{"root":"${b.root}",}`)],
    ['a relative runc root', (b) => void writeFileSync(join(b.dir, 'options.json'), JSON.stringify({ root: 'runc' }))],
    ['a runc binary not on PATH, for runc state', (b) => {
      writeFileSync(join(b.dir, 'options.json'), JSON.stringify({ root: b.root, binary_name: 'no-such-runc' }));
      mkdirSync(join(b.root, NS, b.id), { recursive: true });
    }],
    ['an id path.join would change', (b) => flags('../x', b.dir)],
    ['a namespace with a space', (b) => ['-namespace', 'a b', '-id', b.id, '-bundle', b.dir]],
    ['a relative bundle', (b) => ['-namespace', NS, '-id', b.id, '-bundle', b.dir.slice(1)]],
    ['a bundle with a trailing slash', (b) => ['-namespace', NS, '-id', b.id, '-bundle', `${b.dir}/`]],
    ['an init.pid that is not a plain number', (b) => void writeFileSync(join(b.dir, 'init.pid'), '0x10')],
    ['an address outside the shims\' socket dir', (b) => void writeFileSync(join(b.dir, 'address'), 'unix:///tmp/x.sock')],
    ['an address that is not a socket', (b) => {
      const p = socketFor('file');
      writeFileSync(p, '');
      writeFileSync(join(b.dir, 'address'), `unix://${p}`);
    }],
    ['a mount point below the rootfs with a space', (b) => {
      mkdirSync(join(b.dir, 'rootfs', 'a b'));
      execFileSync('mount', ['-t', 'tmpfs', 'spaced', join(b.dir, 'rootfs', 'a b')]);
    }],
    ['a failing runc whose log has \\u escapes', (b) => {
      const runc = fakeRunc(`runc-u-${b.id}`, { log: '{"level":"error","msg":"caf\\u00e9"}' });
      writeFileSync(join(b.dir, 'options.json'), JSON.stringify({ binary_name: runc, root: b.root }));
      mkdirSync(join(b.root, NS, b.id), { recursive: true });
    }],
    ['-debug=true', (b) => ['-debug=true', ...flags(b.id, b.dir)]],
    ['an unknown flag', (b) => ['-weird', ...flags(b.id, b.dir)]],
  ];

  it.each(toNode)('%s goes to Node', async (_name, change) => {
    const b = bundle({ pid: '12' });
    const argv = change(b) ?? flags(b.id, b.dir);
    const r = await run(fakeShim(), [...argv, 'delete'], { cwd: b.dir });
    expect(r.stdout.toString()).toBe('node');
  });

  it('a bundle named with a space goes to Node', async () => {
    const b = bundle({ name: 'with space' });
    const r = await run(fakeShim(), [...flags(b.id, b.dir), 'delete'], { cwd: b.dir });
    expect(r.stdout.toString()).toBe('node');
  });
});
