// containerd-shim-tugboat-v1 end to end: a private containerd 1.6 finds the
// shim on its PATH (bin/), and `ctr run --runtime io.containerd.tugboat.v1`
// runs Wasm and Linux images through it. Everything is torn down even when a
// test fails: tasks, containers, shims, mounts.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeleteResponseSchema, OCI_TYPE_URL, Task, decode, packJsonAny } from '../../src/shim/proto/index.js';
import { TtrpcClient, callMethod } from '../../src/shim/ttrpc/index.js';
import { CTR_BIN, startContainerd, type ContainerdHandle } from './daemons/containerd.js';
import { isAlive, listProcesses, mountsUnder, run as runCmd, shimSocketPath, sleep } from './daemons/process.js';
import { FIXTURES, REPO } from './helpers.js';

const RT = 'io.containerd.tugboat.v1';
const BUSYBOX = 'tugboat.local/busybox:latest';
const WASM = (tag: string) => `tugboat.local/wasm:${tag}`;
const SHIM = 'containerd-shim-tugboat-v1';

function shimProcs(c: ContainerdHandle): string[] {
  return listProcesses()
    .filter((p) => p.argv.some((a) => a.endsWith('shim.mjs')) && p.argv.includes(c.address))
    .map((p) => `${p.pid} ${p.argv.join(' ')}`);
}

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))(SHIM, () => {
  let c: ContainerdHandle;
  let tmp: string;

  const savedRoot = process.env.TUGBOAT_ROOT;

  beforeAll(async () => {
    tmp = mkdtempSync('/tmp/tugboat-shim-');
    // The shim inherits containerd's environment: keep the component cache private.
    process.env.TUGBOAT_ROOT = join(tmp, 'root');
    c = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
    const wasmTar = join(tmp, 'wasm.tar');
    execFileSync('tar', ['-C', join(FIXTURES, 'wasm'), '-cf', wasmTar, '.']);
    const w = await c.ctr(['images', 'import', '--all-platforms', '--base-name', 'tugboat.local/wasm', wasmTar]);
    if (w.code !== 0) throw new Error(`import wasm: ${w.stderr}`);
    const b = await c.ctr(['images', 'import', join(FIXTURES, 'busybox.docker.tar')]);
    if (b.code !== 0) throw new Error(`import busybox: ${b.stderr}`);
    const comp = await c.ctr(['images', 'import', '--all-platforms', join(FIXTURES, 'component-hello.docker.tar')]);
    if (comp.code !== 0) throw new Error(`import component: ${comp.stderr}`);
  });

  afterAll(async () => {
    try {
      if (c) {
        const tasks = await c.ctr(['tasks', 'ls', '-q']);
        for (const id of tasks.stdout.split('\n').filter(Boolean)) await c.ctr(['tasks', 'delete', '--force', id]);
        const cs = await c.ctr(['containers', 'ls', '-q']);
        for (const id of cs.stdout.split('\n').filter(Boolean)) await c.ctr(['containers', 'rm', id]);
        await c.stop();
      }
    } finally {
      if (savedRoot === undefined) delete process.env.TUGBOAT_ROOT;
      else process.env.TUGBOAT_ROOT = savedRoot;
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  });

  const run = (id: string, image: string, args: string[] = [], opts: string[] = []) =>
    c.ctr(['run', '--rm', '--runtime', RT, ...opts, image, id, ...args]);

  /** Polls `ctr task ls` until `id` has `status` (bounded by attempts, not time). */
  async function waitStatus(id: string, status: string): Promise<void> {
    for (let i = 0; i < 300; i++) {
      const ls = await c.ctr(['tasks', 'ls']);
      if (new RegExp(`^${id}\\s+\\d+\\s+${status}\\b`, 'm').test(ls.stdout)) return;
      await sleep(100);
    }
    throw new Error(`task ${id} never reached ${status}`);
  }

  it('runs a Wasm image: guest stdout and stderr, exit 0', async () => {
    const r = await run('w-hello', WASM('hello'), ['/hello.wasm', 'one', 'two'], ['--platform', 'wasi/wasm']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^hello from wasm\nargs: \S*hello\.wasm one two\n/);
    expect(r.stderr).toBe('stderr: hello\n');
  });

  it('runs a Wasm component image (transpiled once into a private cache)', async () => {
    const r = await run('w-comp', 'tugboat.local/component-hello:latest', [], ['--platform', 'wasi/wasm']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^hello from wasm\n/);
    expect(existsSync(join(tmp, 'root', 'components'))).toBe(true);
  });

  it('reports the guest exit status (3) and a trap (134)', async () => {
    const three = await run('w-exit3', WASM('exitcode'), ['/exitcode.wasm', '3'], ['--platform', 'wasi/wasm']);
    expect(three.code, three.stderr).toBe(3);
    const trap = await run('w-trap', WASM('exitcode'), ['/exitcode.wasm', 'trap'], ['--platform', 'wasi/wasm']);
    expect(trap.stdout).toContain('about to trap');
    expect(trap.code, trap.stderr).toBe(134);
    expect(trap.stderr).toContain('wasm trap');
  });

  it('honours io.tugboat.wasm.preopens from ctr --annotation (read-only by bind mount) and refuses a malformed one', async () => {
    const vol = join(tmp, 'pre-vol');
    mkdirSync(vol);
    writeFileSync(join(vol, 'in.txt'), 'preopened\n');
    const opts = ['--platform', 'wasi/wasm', '--mount', `type=bind,src=${vol},dst=/mnt/in,options=rbind:rw`];
    const r = await run('w-pre', WASM('fileio'), ['/fileio.wasm', 'read', '/in/in.txt'], [...opts, '--annotation', 'io.tugboat.wasm.preopens=/in=/mnt/in:ro']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('preopened\n');
    const w = await run('w-pre-ro', WASM('fileio'), ['/fileio.wasm', 'write', '/in/no.txt', 'x'], [...opts, '--annotation', 'io.tugboat.wasm.preopens=/in=/mnt/in:ro']);
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/(Read-only|read-only|EROFS|Capabilities insufficient)/i);
    expect(existsSync(join(vol, 'no.txt'))).toBe(false);
    const rw = await run('w-pre-rw', WASM('fileio'), ['/fileio.wasm', 'write', '/out/yes.txt', 'y'], [...opts, '--annotation', 'io.tugboat.wasm.preopens=/out=/mnt/in']);
    expect(rw.code, rw.stderr).toBe(0);
    expect(readFileSync(join(vol, 'yes.txt'), 'utf8')).toBe('y');
    // Bad syntax: containerd gets INVALID_ARGUMENT at Create, and ctr shows the one line.
    const bad = await run('w-pre-bad', WASM('fileio'), ['/fileio.wasm', 'ls', '/'], ['--platform', 'wasi/wasm', '--annotation', 'io.tugboat.wasm.preopens=in=/x']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/guest path "in" is not absolute.*invalid argument/);
    expect((await c.ctr(['tasks', 'ls', '-q'])).stdout).not.toContain('w-pre');
  });

  it('runs a core module on node:wasi when the container asks (io.tugboat.wasi=uvwasi); refuses an unknown backend', async () => {
    const r = await run('w-uvwasi', WASM('hello'), ['/hello.wasm', 'x'], ['--platform', 'wasi/wasm', '--annotation', 'io.tugboat.wasi=uvwasi']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^hello from wasm\nargs: \S*hello\.wasm x\n/);
    const bad = await run('w-badbackend', WASM('hello'), ['/hello.wasm'], ['--platform', 'wasi/wasm', '--annotation', 'io.tugboat.wasi=wasmtime']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown WASI backend/);
  });

  it('runs a Linux image through the same shim, with real pipes as stdio', async () => {
    const r = await run('l-echo', BUSYBOX, ['sh', '-c', 'echo hi; echo via-dev-stdout > /dev/stdout; echo err >&2; exit 7']);
    expect(r.stdout).toBe('hi\nvia-dev-stdout\n');
    expect(r.stderr).toBe('err\n');
    expect(r.code).toBe(7);
  });

  it('passes stdin through', async () => {
    // Like containerd-shim-runc-v2, the shim keeps a spare stdin writer until
    // CloseIO, and `ctr run` never sends CloseIO: read a line, not to EOF.
    const r = await c.ctr(['run', '--rm', '--runtime', RT, BUSYBOX, 'l-read', 'sh', '-c', 'read line; echo "got $line"'], { input: 'from stdin\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('got from stdin\n');
  });

  it('reports a missing executable at create, as runc does, and cleans up', async () => {
    const r = await run('bad-exe', BUSYBOX, ['/no/such/binary']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/OCI runtime create failed: .*(no such file or directory|executable file not found)/);
  });

  it('answers NOT_FOUND when killing a task that already exited', async () => {
    try {
      const d = await c.ctr(['run', '-d', '--runtime', RT, BUSYBOX, 'k-done', 'true']);
      expect(d.code, d.stderr).toBe(0);
      await waitStatus('k-done', 'STOPPED');
      const k = await c.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'k-done']);
      expect(k.code).not.toBe(0);
      expect(k.stderr).toMatch(/process already finished: not found/);
    } finally {
      await c.ctr(['tasks', 'delete', 'k-done']);
      await c.ctr(['containers', 'rm', 'k-done']);
    }
  });

  /** `ctr run --rm` in the background, with its stdout readable while it runs. */
  function runInBackground(id: string, image: string, args: string[], opts: string[] = []) {
    const child = spawn(CTR_BIN, ['--address', c.address, 'run', '--rm', '--runtime', RT, ...opts, image, id, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.resume();
    const done = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? -1)));
    return { output: () => stdout, done, kill: () => child.kill('SIGKILL') };
  }

  it('kill -s SIGTERM ends a Wasm task with 143, SIGKILL a Linux task with 137', async () => {
    const wasm = runInBackground('w-sleep', WASM('exitcode'), ['/exitcode.wasm', 'sleep', '1000'], ['--platform', 'wasi/wasm']);
    const linux = runInBackground('l-sleep', BUSYBOX, ['sh', '-c', 'echo ready; exec sleep 1000']);
    try {
      // Signal once the guests run (the host forwards signals once it is up).
      for (let i = 0; i < 300 && !(wasm.output().includes('sleeping') && linux.output().includes('ready')); i++) await sleep(50);
      const k1 = await c.ctr(['tasks', 'kill', '-s', 'SIGTERM', 'w-sleep']);
      expect(k1.code, k1.stderr).toBe(0);
      const k2 = await c.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'l-sleep']);
      expect(k2.code, k2.stderr).toBe(0);
      expect(await wasm.done).toBe(143);
      expect(await linux.done).toBe(137);
    } finally {
      wasm.kill();
      linux.kill();
    }
  });

  it('publishes TaskCreate, TaskStart, TaskExit, TaskDelete in order', async () => {
    const events = spawn(CTR_BIN, ['--address', c.address, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    events.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const topicsOf = (id: string) =>
      out
        .split('\n')
        .filter((l) => l.includes(`"${id}"`) && l.includes('/tasks/'))
        .map((l) => /\/tasks\/[a-z-]+/.exec(l)?.[0]);
    let id: string | undefined;
    try {
      // Run until one whole lifecycle was seen (ctr events may subscribe late).
      for (let i = 0; i < 50 && id === undefined; i++) {
        const r = await run(`ev-${i}`, BUSYBOX, ['true']);
        expect(r.code, r.stderr).toBe(0);
        for (let j = 0; j < 20 && !topicsOf(`ev-${i}`).includes('/tasks/delete'); j++) await sleep(50);
        if (topicsOf(`ev-${i}`)[0] === '/tasks/create') id = `ev-${i}`;
      }
    } finally {
      events.kill('SIGKILL');
    }
    expect(id).toBeDefined();
    const topics = topicsOf(id!);
    expect(topics).toEqual(['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
  });

  it('publishes TaskOOM before TaskExit when the memory limit kills the task (137)', async () => {
    const events = spawn(CTR_BIN, ['--address', c.address, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    events.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const topicsOf = (id: string) =>
      out
        .split('\n')
        .filter((l) => l.includes(`"${id}"`) && l.includes('/tasks/'))
        .map((l) => /\/tasks\/[a-z-]+/.exec(l)?.[0]);
    let id: string | undefined;
    try {
      for (let i = 0; i < 20 && id === undefined; i++) {
        const r = await run(`oom-${i}`, WASM('exitcode'), ['/exitcode.wasm', 'alloc', '512'], ['--platform', 'wasi/wasm', '--memory-limit', String(64 << 20)]);
        expect(r.code).toBe(137);
        for (let j = 0; j < 20 && !topicsOf(`oom-${i}`).includes('/tasks/delete'); j++) await sleep(50);
        if (topicsOf(`oom-${i}`)[0] === '/tasks/create') id = `oom-${i}`;
      }
    } finally {
      events.kill('SIGKILL');
    }
    expect(id).toBeDefined();
    expect(topicsOf(id!)).toEqual(['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete']);
  });

  it('execs into Linux and Wasm tasks; ps, pause/resume, metrics', async () => {
    try {
      const b = await c.ctr(['run', '-d', '--runtime', RT, BUSYBOX, 'x-linux', 'sleep', '1000']);
      expect(b.code, b.stderr).toBe(0);
      const e = await c.ctr(['tasks', 'exec', '--exec-id', 'e1', 'x-linux', 'sh', '-c', 'echo exec-out; exit 5']);
      expect(e.stdout).toBe('exec-out\n');
      expect(e.code).toBe(5);
      const dup = await c.ctr(['tasks', 'ps', 'x-linux']);
      expect(dup.code, dup.stderr).toBe(0);
      expect(dup.stdout).toMatch(/^PID\s+INFO\n\d+\s+-\n$/);
      expect((await c.ctr(['tasks', 'pause', 'x-linux'])).code).toBe(0);
      await waitStatus('x-linux', 'PAUSED');
      expect((await c.ctr(['tasks', 'resume', 'x-linux'])).code).toBe(0);
      await waitStatus('x-linux', 'RUNNING');
      const m = await c.ctr(['tasks', 'metrics', 'x-linux']);
      expect(m.code, m.stderr).toBe(0);
      expect(m.stdout).toMatch(/pids\.current\s+1\b/);

      const w = await c.ctr(['run', '-d', '--runtime', RT, '--platform', 'wasi/wasm', WASM('exitcode'), 'x-wasm', '/exitcode.wasm', 'sleep', '1000']);
      expect(w.code, w.stderr).toBe(0);
      const we = await c.ctr(['tasks', 'exec', '--exec-id', 'e1', 'x-wasm', '/exitcode.wasm', '4']);
      expect(we.code, we.stderr).toBe(4);
    } finally {
      for (const id of ['x-linux', 'x-wasm']) {
        await c.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
        await waitStatus(id, 'STOPPED').catch(() => undefined);
        await c.ctr(['tasks', 'delete', id]);
        await c.ctr(['containers', 'rm', id]);
      }
    }
  });

  it('Update applies LinuxResources through runc (ctr 1.6 has no update command: called over ttrpc)', async () => {
    try {
      const d = await c.ctr(['run', '-d', '--runtime', RT, BUSYBOX, 'u-1', 'sleep', '1000']);
      expect(d.code, d.stderr).toBe(0);
      const address = readFileSync(join(c.state, 'io.containerd.runtime.v2.task', 'default', 'u-1', 'address'), 'utf8');
      const client = await TtrpcClient.connect(address);
      try {
        await callMethod(client, Task.method.update, { id: 'u-1', resources: packJsonAny(OCI_TYPE_URL.LinuxResources, { memory: { limit: 48 << 20 } }) });
        await expect(callMethod(client, Task.method.update, { id: 'nope', resources: packJsonAny(OCI_TYPE_URL.LinuxResources, {}) })).rejects.toMatchObject({
          message: 'container not created',
        });
      } finally {
        client.close();
      }
      const m = await c.ctr(['tasks', 'metrics', 'u-1']);
      expect(m.stdout).toMatch(new RegExp(`memory\\.limit_in_bytes\\s+${48 << 20}\\b`));
    } finally {
      await c.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'u-1']);
      await waitStatus('u-1', 'STOPPED').catch(() => undefined);
      await c.ctr(['tasks', 'delete', 'u-1']);
      await c.ctr(['containers', 'rm', 'u-1']);
    }
  });

  it('gives `ctr run -t` and `ctr task exec -t` a terminal (console socket)', async () => {
    // ctr needs a terminal of its own: script(1) provides one.
    const ctr = `${CTR_BIN} --address ${c.address}`;
    const r = await runCmd('script', ['-qec', `${ctr} run --rm -t --runtime ${RT} ${BUSYBOX} tty-1 sh -c 'tty; echo exit-now; exit 3'`, '/dev/null']);
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r?\r\n/);
    expect(r.stdout).toContain('exit-now');
    try {
      const d = await c.ctr(['run', '-d', '--runtime', RT, BUSYBOX, 'tty-2', 'sleep', '1000']);
      expect(d.code, d.stderr).toBe(0);
      const e = await runCmd('script', ['-qec', `${ctr} tasks exec -t --exec-id t1 tty-2 sh -c 'tty; exit 4'`, '/dev/null']);
      expect(e.stdout).toMatch(/\/dev\/pts\/\d+/);
    } finally {
      await c.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'tty-2']);
      await waitStatus('tty-2', 'STOPPED').catch(() => undefined);
      await c.ctr(['tasks', 'delete', 'tty-2']);
      await c.ctr(['containers', 'rm', 'tty-2']);
    }
  });

  it('serves grouped containers from one shim (io.containerd.runc.v2.group)', async () => {
    const ids = ['g-1', 'g-2'];
    try {
      for (const id of ids) {
        const r = await c.ctr(['run', '-d', '--runtime', RT, '--annotation', 'io.containerd.runc.v2.group=grp', BUSYBOX, id, 'sleep', '1000']);
        expect(r.code, r.stderr).toBe(0);
      }
      const shims = shimProcs(c);
      expect(shims).toHaveLength(1);
      const addr = ids.map((id) => readFileSync(join(c.state, 'io.containerd.runtime.v2.task', 'default', id, 'address'), 'utf8'));
      expect(addr[0]).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
      expect(addr[1]).toBe(addr[0]);
      expect(statSync(addr[0]!.slice('unix://'.length)).mode & 0o777).toBe(0o600);
    } finally {
      for (const id of ids) {
        await c.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
        await waitStatus(id, 'STOPPED').catch(() => undefined);
        await c.ctr(['tasks', 'delete', id]);
        await c.ctr(['containers', 'rm', id]);
      }
    }
  });

  it('after the shim dies, containerd runs `delete`: task killed, rootfs unmounted, socket removed', async () => {
    const r = await c.ctr(['run', '-d', '--runtime', RT, '--platform', 'wasi/wasm', WASM('exitcode'), 'crash-1', '/exitcode.wasm', 'sleep', '1000']);
    expect(r.code, r.stderr).toBe(0);
    try {
      const bundle = join(c.state, 'io.containerd.runtime.v2.task', 'default', 'crash-1');
      const sock = readFileSync(join(bundle, 'address'), 'utf8').slice('unix://'.length);
      const shim = listProcesses().find((p) => p.argv.some((a) => a.endsWith('shim.mjs')) && p.argv.includes('crash-1') && p.argv.includes(c.address));
      expect(shim).toBeDefined();
      process.kill(shim!.pid, 'SIGKILL');
      // containerd: connection lost → `shim delete` → bundle removed.
      for (let i = 0; i < 100 && existsSync(bundle); i++) await sleep(100);
      expect(existsSync(bundle)).toBe(false);
      expect((await c.ctr(['tasks', 'ls', '-q'])).stdout).not.toContain('crash-1');
      expect(mountsUnder(bundle)).toEqual([]);
      expect(existsSync(sock)).toBe(false);
      expect(existsSync('/run/containerd/runc/default/crash-1')).toBe(false); // runc delete --force
    } finally {
      await c.ctr(['tasks', 'delete', '--force', 'crash-1']);
      await c.ctr(['containers', 'rm', 'crash-1']);
    }
  });

  it('`delete` prints a binary DeleteResponse (137) and is idempotent', async () => {
    const bundle = mkdtempSync(join(tmp, 'bundle-'));
    for (let i = 0; i < 2; i++) {
      const out = execFileSync(join(REPO, 'bin', SHIM), ['-namespace', 'default', '-address', c.address, '-publish-binary', '/usr/bin/containerd', '-id', 'never-created', '-bundle', bundle, 'delete'], {
        cwd: bundle,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      const resp = decode(DeleteResponseSchema, out);
      expect(resp.exitStatus).toBe(137);
      expect(resp.pid).toBe(0);
      expect(resp.exitedAt).toBeDefined();
    }
  });

  it('leaves no shim, socket or mount behind after --rm runs', async () => {
    // Shutdown is asynchronous to ctr's exit: give the shims a bounded number of polls.
    for (let i = 0; i < 100 && shimProcs(c).length > 0; i++) await sleep(100);
    expect(shimProcs(c)).toEqual([]);
    expect(mountsUnder(c.state)).toEqual([]);
    for (const id of ['w-hello', 'l-echo', 'bad-exe', 'k-done', 'x-linux', 'tty-2', 'grp']) {
      expect(existsSync(shimSocketPath(c.address, 'default', id)), id).toBe(false);
    }
    const cs = await c.ctr(['containers', 'ls', '-q']);
    expect(cs.stdout.trim()).toBe('');
  });
});

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))(`${SHIM} start`, () => {
  // No containerd: `start` only needs a bundle with a config.json, and the
  // daemon answers Connect/Shutdown without any container.
  const fakeAddress = `/tmp/tugboat-shim-start-${process.pid}.sock`;
  let tmp: string;
  const pids = new Set<number>();

  beforeAll(() => {
    tmp = mkdtempSync('/tmp/tugboat-shim-start-');
  });
  afterAll(() => {
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(shimSocketPath(fakeAddress, 'ns', 'grp'), { force: true });
    rmSync(tmp, { recursive: true, force: true });
  });

  function bundle(name: string): string {
    const dir = join(tmp, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations: { 'io.containerd.runc.v2.group': 'grp' } }));
    return dir;
  }
  function start(id: string, cwd: string): string {
    return execFileSync(join(REPO, 'bin', SHIM), ['-namespace', 'ns', '-address', fakeAddress, '-publish-binary', '/usr/bin/containerd', '-id', id, 'start'], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    });
  }
  const daemons = () =>
    listProcesses()
      .filter((p) => p.argv.some((a) => a.endsWith('shim.mjs')) && p.argv.includes(fakeAddress))
      .map((p) => p.pid);

  it('prints only the address, writes <bundle>/address, serves a 0600 socket, reuses a live shim, exits on Shutdown', async () => {
    const b1 = bundle('b1');
    const out = start('a', b1);
    const path = shimSocketPath(fakeAddress, 'ns', 'grp');
    expect(out).toBe(`unix://${path}`);
    expect(readFileSync(join(b1, 'address'), 'utf8')).toBe(out);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    for (const pid of daemons()) pids.add(pid);
    expect(daemons()).toHaveLength(1);

    const b2 = bundle('b2');
    expect(start('b', b2)).toBe(out);
    expect(readFileSync(join(b2, 'address'), 'utf8')).toBe(out);
    expect(daemons()).toHaveLength(1);

    const client = await TtrpcClient.connect(out);
    try {
      const conn = await callMethod(client, Task.method.connect, { id: 'a' });
      expect(conn.shimPid).toBe(daemons()[0]);
      expect(conn.taskPid).toBe(0);
      await callMethod(client, Task.method.shutdown, { id: 'a' }).catch(() => undefined);
    } finally {
      client.close();
    }
    for (let i = 0; i < 100 && (daemons().length > 0 || existsSync(path)); i++) await sleep(50);
    expect(daemons()).toEqual([]);
    expect(existsSync(path)).toBe(false);
  });

  it('replaces a stale socket whose shim died', async () => {
    const out = start('c', bundle('b3'));
    const [pid] = daemons();
    expect(pid).toBeDefined();
    pids.add(pid!);
    process.kill(pid!, 'SIGKILL');
    for (let i = 0; i < 100 && isAlive(pid!); i++) await sleep(20);
    const path = out.slice('unix://'.length);
    expect(existsSync(path)).toBe(true); // left behind by the killed shim
    expect(start('d', bundle('b4'))).toBe(out);
    const fresh = daemons();
    expect(fresh).toHaveLength(1);
    expect(fresh[0]).not.toBe(pid);
    for (const p of fresh) pids.add(p);
    const client = await TtrpcClient.connect(out);
    try {
      await callMethod(client, Task.method.shutdown, { id: 'd' }).catch(() => undefined);
    } finally {
      client.close();
    }
  });
});
