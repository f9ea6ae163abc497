// TaskManager against a fake runc (a shell script that records its argv):
// the runc command lines are go-runc's, events come in containerd's order,
// runc's error texts map to the error kinds (and so the status codes)
// containerd expects, and every process follows its state machine, one call
// at a time.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DescMessage } from '@bufbuild/protobuf';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { setLogLevel } from '../../src/log.js';
import { Status } from '../../src/shim/proto/index.js';
import { Reaper } from '../../src/linux-runtime/reaper.js';
import type { WaitResult } from '../../src/linux-runtime/sys.js';
import { TaskManager } from '../../src/shim/task-manager.js';

const FAKE_PID = 999_999_1; // never a real process: the reaper is fake too
const EXEC_PID = FAKE_PID + 1;

let dir: string;
let bundle: string;
let argvLog: string;
let events: { type: string; event: Record<string, unknown> }[];
let exited: Map<number, number>;
let reaper: Reaper;

function fakeRunc(behaviour: string): string {
  const path = join(dir, 'runc');
  writeFileSync(
    path,
    `#!/bin/sh
echo "$*" >> ${argvLog}
log=""; pidfile=""; prev=""
for a in "$@"; do
  case "$prev" in --log) log="$a" ;; --pid-file) pidfile="$a" ;; esac
  prev="$a"
done
${behaviour}
pid=${FAKE_PID}
case "$*" in *" exec "*) pid=${EXEC_PID} ;; esac
[ -n "$pidfile" ] && printf $pid > "$pidfile"
exit 0
`,
  );
  chmodSync(path, 0o755);
  return path;
}

function manager(runc: string): TaskManager {
  return new TaskManager({
    namespace: 'testns',
    runcBinary: runc,
    reaper,
    events: { publish: (schema: DescMessage, event: unknown) => void events.push({ type: schema.typeName, event: event as Record<string, unknown> }) },
  });
}

beforeEach(async () => {
  setLogLevel('silent');
  dir = await mkdtemp(join(tmpdir(), 'tugboat-tm-'));
  bundle = join(dir, 'bundle');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  writeFileSync(
    join(bundle, 'config.json'),
    JSON.stringify({ ociVersion: '1.0.2', root: { path: 'rootfs' }, process: { args: ['/bin/sh'], cwd: '/', user: { uid: 0, gid: 0 } }, linux: { namespaces: [{ type: 'pid' }] } }),
  );
  argvLog = join(dir, 'argv.log');
  events = [];
  exited = new Map();
  reaper = new Reaper((pid): WaitResult => {
    const s = exited.get(pid);
    return s === undefined ? { state: 'running' } : { state: 'exited', status: s };
  }, 60_000);
});
afterEach(async () => {
  reaper.stop();
  await rm(dir, { recursive: true, force: true });
});

const req = (over: Record<string, unknown> = {}) =>
  ({ id: 'c1', bundle, rootfs: [], terminal: false, stdin: '', stdout: '', stderr: '', checkpoint: '', parentCheckpoint: '', ...over }) as never;

describe('TaskManager', () => {
  it('drives runc as go-runc does and publishes Create → Start → Exit → Delete', async () => {
    const m = manager(fakeRunc(''));
    expect(await m.create(req())).toEqual({ pid: FAKE_PID });
    expect(m.state('c1', '')).toMatchObject({ id: 'c1', pid: FAKE_PID, status: Status.CREATED });
    expect(await m.start('c1', '')).toEqual({ pid: FAKE_PID });
    expect(m.state('c1', '').status).toBe(Status.RUNNING);

    const waiting = m.wait('c1', '');
    exited.set(FAKE_PID, 143);
    reaper.poll();
    const w = await waiting;
    expect(w.exitStatus).toBe(143);
    expect(w.exitedAt).toBeDefined();
    await expect(m.kill('c1', '', 15, false)).rejects.toMatchObject({ kind: 'NotFound', message: 'process already finished' });
    expect(await m.delete('c1', '')).toMatchObject({ pid: FAKE_PID, exitStatus: 143 });
    expect(() => m.state('c1', '')).toThrow('container not created');

    const g = `--root /run/containerd/runc/testns --log ${bundle}/log.json --log-format json`;
    expect(readFileSync(argvLog, 'utf8').trim().split('\n')).toEqual([
      `${g} create --bundle ${bundle} --pid-file ${bundle}/init.pid c1`,
      `${g} start c1`,
      `${g} delete c1`,
    ]);
    expect(events.map((e) => e.type)).toEqual([
      'containerd.events.TaskCreate',
      'containerd.events.TaskStart',
      'containerd.events.TaskExit',
      'containerd.events.TaskDelete',
    ]);
    expect(events[2]!.event).toMatchObject({ containerId: 'c1', id: 'c1', pid: FAKE_PID, exitStatus: 143 });
    expect(JSON.parse(readFileSync(join(bundle, 'options.json'), 'utf8'))).toEqual({});
  });

  it('uses Options.root, binary_name and systemd_cgroup from the create request', async () => {
    const runc = fakeRunc('');
    const { packAny, runcOptions } = await import('../../src/shim/proto/index.js');
    const m = manager('runc-not-used');
    await m.create(req({ options: packAny(runcOptions.OptionsSchema, { binaryName: runc, root: '/run/other', systemdCgroup: true, noPivotRoot: true }) }));
    expect(readFileSync(argvLog, 'utf8').trim()).toBe(
      `--root /run/other/testns --log ${bundle}/log.json --log-format json --systemd-cgroup create --bundle ${bundle} --pid-file ${bundle}/init.pid --no-pivot c1`,
    );
    expect(JSON.parse(readFileSync(join(bundle, 'options.json'), 'utf8'))).toEqual({ binary_name: runc, root: '/run/other', systemd_cgroup: true, no_pivot_root: true });
  });

  it('reports runc create failures with the last error line of log.json', async () => {
    const m = manager(
      fakeRunc(`case "$*" in *" create "*) echo '{"level":"error","msg":"exec: \\"nope\\": executable file not found in $PATH","time":"t"}' >> "$log"; exit 1 ;; esac`),
    );
    await expect(m.create(req())).rejects.toMatchObject({
      kind: 'Internal',
      message: 'OCI runtime create failed: exec: "nope": executable file not found in $PATH',
    });
    expect(m.count()).toBe(0);
    expect(events).toEqual([]);
  });

  it('maps "container not running" from runc kill to NOT_FOUND, and checks exec ids', async () => {
    const m = manager(fakeRunc(`case "$*" in *" kill "*) echo '{"level":"error","msg":"container not running","time":"t"}' >> "$log"; exit 1 ;; esac`));
    await m.create(req());
    await m.start('c1', '');
    await expect(m.kill('c1', '', 9, false)).rejects.toMatchObject({ kind: 'NotFound', message: 'process already finished' });
    await expect(m.kill('c1', 'nope', 9, false)).rejects.toMatchObject({ kind: 'NotFound', message: 'process does not exist nope' });
    await expect(m.delete('c1', '')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot delete a running process' });
    await expect(m.create(req())).rejects.toMatchObject({ kind: 'AlreadyExists' });
  });

  it('adds an exec (TaskExecAdded) that cannot be killed before it starts', async () => {
    const { OCI_TYPE_URL, packJsonAny } = await import('../../src/shim/proto/index.js');
    const m = manager(fakeRunc(''));
    await m.create(req());
    await m.start('c1', '');
    const spec = packJsonAny(OCI_TYPE_URL.Process, { args: ['/bin/true'], cwd: '/', user: { uid: 0, gid: 0 } });
    await m.exec({ id: 'c1', execId: 'e1', terminal: false, stdin: '', stdout: '', stderr: '', spec });
    await expect(m.exec({ id: 'c1', execId: 'e1', terminal: false, stdin: '', stdout: '', stderr: '', spec })).rejects.toMatchObject({ kind: 'AlreadyExists' });
    await expect(m.kill('c1', 'e1', 9, false)).rejects.toMatchObject({ kind: 'FailedPrecondition' });
    expect(m.state('c1', 'e1')).toMatchObject({ id: 'e1', pid: 0, status: Status.CREATED });
    expect(events.map((e) => e.type)).toContain('containerd.events.TaskExecAdded');
  });

  const execReq = async (execId: string) => {
    const { OCI_TYPE_URL, packJsonAny } = await import('../../src/shim/proto/index.js');
    const spec = packJsonAny(OCI_TYPE_URL.Process, { args: ['/bin/true'], cwd: '/', user: { uid: 0, gid: 0 } });
    return { id: 'c1', execId, terminal: false, stdin: '', stdout: '', stderr: '', spec };
  };

  it('refuses illegal transitions with FailedPrecondition (and a deleted process is NotFound)', async () => {
    const m = manager(fakeRunc(''));
    await m.create(req());
    await expect(m.pause('c1')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot pause a created process' });
    await expect(m.resume('c1')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot resume a created process' });
    await m.start('c1', '');
    await expect(m.start('c1', '')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot start a running process' });
    await expect(m.resume('c1')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot resume a running process' });
    await m.pause('c1');
    expect(m.state('c1', '').status).toBe(Status.PAUSED);
    await expect(m.pause('c1')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot pause a paused process' });
    await expect(m.delete('c1', '')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot delete a paused process' });
    await m.resume('c1');
    expect(m.state('c1', '').status).toBe(Status.RUNNING);

    await m.exec(await execReq('e1'));
    await expect(m.pause('c1')).resolves.toBeUndefined();
    await m.resume('c1');
    await m.start('c1', 'e1');
    await expect(m.start('c1', 'e1')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot start a running process' });
    exited.set(EXEC_PID, 0);
    reaper.poll();
    await m.wait('c1', 'e1');
    await expect(m.start('c1', 'e1')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot start a stopped process' });
    await expect(m.kill('c1', 'e1', 9, false)).rejects.toMatchObject({ kind: 'NotFound', message: 'process already finished' });
    expect(await m.delete('c1', 'e1')).toMatchObject({ pid: EXEC_PID, exitStatus: 0 });
    await expect(m.start('c1', 'e1')).rejects.toMatchObject({ kind: 'NotFound', message: 'process does not exist e1' });

    exited.set(FAKE_PID, 0);
    reaper.poll();
    await m.wait('c1', '');
    await expect(m.pause('c1')).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot pause a stopped process' });
    await expect(m.exec(await execReq('e2'))).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'container is stopped' });
    await m.delete('c1', '');
    await expect(m.start('c1', '')).rejects.toMatchObject({ kind: 'NotFound', message: 'container not created' });
  });

  it('serializes Delete(exec) behind a Start in flight: no "deleted" process that then starts (regression)', async () => {
    // runc exec takes a while; Delete arrives while Start waits for it.
    const m = manager(fakeRunc(`case "$*" in *" exec "*) sleep 0.3 ;; esac`));
    await m.create(req());
    await m.start('c1', '');
    await m.exec(await execReq('e1'));
    const starting = m.start('c1', 'e1');
    await new Promise((r) => setTimeout(r, 50)); // Start is in runc exec now
    const deleting = m.delete('c1', 'e1');
    await expect(starting).resolves.toEqual({ pid: EXEC_PID });
    // containerd holds the process lock across both calls: Delete sees a running process.
    await expect(deleting).rejects.toMatchObject({ kind: 'FailedPrecondition', message: 'cannot delete a running process' });
    expect(m.state('c1', 'e1')).toMatchObject({ pid: EXEC_PID, status: Status.RUNNING });
    expect(events.map((e) => e.type)).toEqual([
      'containerd.events.TaskCreate',
      'containerd.events.TaskStart',
      'containerd.events.TaskExecAdded',
      'containerd.events.TaskExecStarted',
    ]);
  });

  it('publishes TaskExit after TaskExecStarted even when the process ends while Start is still running', async () => {
    const m = manager(fakeRunc(`case "$*" in *" exec "*) sleep 0.2 ;; esac`));
    await m.create(req());
    await m.start('c1', '');
    await m.exec(await execReq('e1'));
    exited.set(EXEC_PID, 7); // reaped at the first poll, before Start has finished its bookkeeping
    const started = m.start('c1', 'e1');
    expect((await m.wait('c1', 'e1')).exitStatus).toBe(7);
    await started;
    const types = events.map((e) => e.type);
    expect(types.indexOf('containerd.events.TaskExecStarted')).toBeLessThan(types.indexOf('containerd.events.TaskExit'));
    expect(m.state('c1', 'e1').status).toBe(Status.STOPPED);
  });

  it('deletes a created container: its init is killed and its exit recorded before TaskDelete', async () => {
    const m = manager(fakeRunc(`case "$*" in *" delete --force "*) echo killed >> ${dir}/killed ;; esac`));
    await m.create(req());
    const deleting = m.delete('c1', '');
    await new Promise((r) => setTimeout(r, 50));
    exited.set(FAKE_PID, 137);
    reaper.poll();
    expect(await deleting).toMatchObject({ pid: FAKE_PID, exitStatus: 137 });
    expect(readFileSync(join(dir, 'killed'), 'utf8')).toBe('killed\n');
    expect(events.map((e) => e.type)).toEqual(['containerd.events.TaskCreate', 'containerd.events.TaskExit', 'containerd.events.TaskDelete']);
    // The exit handler that was queued behind Delete publishes nothing more.
    await new Promise((r) => setTimeout(r, 20));
    expect(events).toHaveLength(3);
  });
});

