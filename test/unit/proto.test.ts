// Message codecs against the byte vectors produced by the real Go libraries
// (protocols.md §10), plus the Go-compat rules around zero timestamps.
import { spawnSync } from 'node:child_process';
import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import {
  AnySchema,
  ConnectRequestSchema,
  ConnectResponseSchema,
  CreateTaskRequestSchema,
  DeleteResponseSchema,
  EmptySchema,
  ForwardRequestSchema,
  GO_ZERO_TIME_SECONDS,
  OCI_TYPE_URL,
  PidsResponseSchema,
  StateResponseSchema,
  StatsResponseSchema,
  Status,
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
  TimestampSchema,
  UpdateTaskRequestSchema,
  WaitResponseSchema,
  anyIs,
  cgroupsV1,
  cgroupsV2,
  decode,
  encode,
  eventTopic,
  goZeroTimestamp,
  isUnsetTime,
  packAny,
  packJsonAny,
  runcOptions,
  runtimeOptions,
  timestampFromDate,
  timestampFromMs,
  timestampNow,
  timestampToDate,
  timestampToMs,
  unpackAny,
  unpackJsonAny,
} from '../../src/shim/proto/index.js';
import { nowMs, secondsAndNanos } from '../../src/shim/proto/clock.js';
import { encodeDeleteResponse } from '../../src/shim/proto/delete-response.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
/** 2023-01-02T03:04:05.000006Z, the time used by every §10 vector. */
const T = { seconds: 1672628645n, nanos: 6000 };

describe('§10 vectors', () => {
  it('DeleteResponse{pid:1234, exit_status:137, exited_at:T}', () => {
    const bytes = hex('08d209 108901 1a09 08a593c99d06 10f02e');
    expect(toHex(encode(DeleteResponseSchema, { pid: 1234, exitStatus: 137, exitedAt: T }))).toBe(toHex(bytes));
    const m = decode(DeleteResponseSchema, bytes);
    expect(m.pid).toBe(1234);
    expect(m.exitStatus).toBe(137);
    expect(m.exitedAt).toMatchObject(T);
    expect(timestampToDate(m.exitedAt)?.toISOString()).toBe('2023-01-02T03:04:05.000Z');
  });

  it('DeleteResponse{}: Go zero time is emitted, and decodes as unset', () => {
    const bytes = hex('1a0b 088092b8c398feffffff01');
    expect(toHex(encode(DeleteResponseSchema, {}))).toBe(toHex(bytes));
    const m = decode(DeleteResponseSchema, bytes);
    expect(m.exitedAt).toBeUndefined();
    expect(m.pid).toBe(0);
    expect(toHex(encode(DeleteResponseSchema, m))).toBe(toHex(bytes));
  });

  it('ConnectRequest{id:"demo"}', () => {
    const bytes = hex('0a0464656d6f');
    expect(toHex(encode(ConnectRequestSchema, { id: 'demo' }))).toBe(toHex(bytes));
    expect(decode(ConnectRequestSchema, bytes).id).toBe('demo');
  });

  it('StateResponse{id:"demo", pid:42, status:RUNNING} with the zero exited_at', () => {
    const bytes = hex('0a0464656d6f 182a 2002 520b088092b8c398feffffff01');
    expect(toHex(encode(StateResponseSchema, { id: 'demo', pid: 42, status: Status.RUNNING }))).toBe(toHex(bytes));
    const m = decode(StateResponseSchema, bytes);
    expect(m).toMatchObject({ id: 'demo', pid: 42, status: Status.RUNNING, exitStatus: 0, execId: '' });
    expect(m.exitedAt).toBeUndefined();
    expect(toHex(encode(StateResponseSchema, m))).toBe(toHex(bytes));
  });

  it('google.protobuf.Empty is zero bytes', () => {
    expect(encode(EmptySchema, {}).length).toBe(0);
    expect(decode(EmptySchema, new Uint8Array())).toBeDefined();
  });

  it('TaskExit type URL has no type.googleapis.com/ prefix', () => {
    expect(TaskExitSchema.typeName).toBe('containerd.events.TaskExit');
    expect(packAny(TaskExitSchema, {}).typeUrl).toBe('containerd.events.TaskExit');
  });

  it('ForwardRequest{envelope{T, "default", "/tasks/exit", Any(TaskExit)}}', () => {
    const bytes = hex(
      '0a5b 0a0908a593c99d0610f02e 120764656661756c74 1a0b2f7461736b732f65786974 2238 ' +
        '0a1a636f6e7461696e6572642e6576656e74732e5461736b45786974 121a 0a0464656d6f 120464656d6f 18e121 2a0908a593c99d0610f02e',
    );
    const event = packAny(TaskExitSchema, { containerId: 'demo', id: 'demo', pid: 4321, exitStatus: 0, exitedAt: T });
    const enc = encode(ForwardRequestSchema, { envelope: { timestamp: T, namespace: 'default', topic: eventTopic(TaskExitSchema), event } });
    expect(toHex(enc)).toBe(toHex(bytes));

    const m = decode(ForwardRequestSchema, bytes);
    expect(m.envelope).toMatchObject({ namespace: 'default', topic: '/tasks/exit', timestamp: T });
    expect(anyIs(m.envelope?.event, TaskExitSchema)).toBe(true);
    const exit = unpackAny(m.envelope?.event, TaskExitSchema);
    expect(exit).toMatchObject({ containerId: 'demo', id: 'demo', pid: 4321, exitStatus: 0, exitedAt: T });
    expect(unpackAny(m.envelope?.event, TaskStartSchema)).toBeUndefined();
  });

  it('start stdin: Any(containerd.runc.v1.Options)', () => {
    const bytes = hex(
      '0a1a636f6e7461696e6572642e72756e632e76312e4f7074696f6e73 1235 32132f7573722f6c6f63616c2f62696e2f6d797274 ' +
        '3a1c2f7661722f72756e2f646f636b65722f72756e74696d652d72756e63 4801',
    );
    const opts = { binaryName: '/usr/local/bin/myrt', root: '/var/run/docker/runtime-runc', systemdCgroup: true };
    expect(toHex(encode(AnySchema, packAny(runcOptions.OptionsSchema, opts)))).toBe(toHex(bytes));
    const any = decode(AnySchema, bytes);
    expect(any.typeUrl).toBe('containerd.runc.v1.Options');
    expect(unpackAny(any, runcOptions.OptionsSchema)).toMatchObject({ ...opts, noPivotRoot: false, ioUid: 0 });
  });
});

describe('timestamps', () => {
  it('treats Go zero time as unset and keeps real times', () => {
    expect(goZeroTimestamp().seconds).toBe(GO_ZERO_TIME_SECONDS);
    expect(isUnsetTime(undefined)).toBe(true);
    expect(isUnsetTime(goZeroTimestamp())).toBe(true);
    expect(isUnsetTime(timestampFromMs(0))).toBe(false); // the Unix epoch is a time
    expect(timestampToMs(goZeroTimestamp())).toBeUndefined();
    expect(timestampToDate(undefined)).toBeUndefined();
  });

  it('converts ms (with sub-ms fractions) and Dates', () => {
    // doubles near 1.7e12 ms resolve ~0.25 µs
    const t = timestampFromMs(1672628645000.006);
    expect(t.seconds).toBe(1672628645n);
    expect(Math.abs(t.nanos - 6000)).toBeLessThan(500);
    expect(timestampFromMs(-1)).toMatchObject({ seconds: -1n, nanos: 999_000_000 });
    const d = new Date('2023-01-02T03:04:05.123Z');
    expect(timestampToDate(timestampFromDate(d))?.getTime()).toBe(d.getTime());
    const now = timestampToMs(timestampNow())!;
    expect(Math.abs(now - Date.now())).toBeLessThan(1000);
  });

  it('fills every Go non-nullable timestamp, including nested ones, without touching the input', () => {
    const zero = '088092b8c398feffffff01';
    expect(toHex(encode(WaitResponseSchema, { exitStatus: 1 }))).toBe(`0801120b${zero}`);
    expect(toHex(encode(TaskExitSchema, { containerId: 'a' }))).toBe(`0a0161 2a0b${zero}`.replace(' ', ''));
    expect(toHex(encode(TaskDeleteSchema, {}))).toBe(`220b${zero}`);
    const fwd = create(ForwardRequestSchema, { envelope: { namespace: 'n' } });
    expect(toHex(encode(ForwardRequestSchema, fwd))).toBe(`0a10 0a0b${zero} 12016e`.replace(/ /g, ''));
    expect(fwd.envelope?.timestamp).toBeUndefined();
    // A message with no such field is left exactly as protobuf-es writes it.
    expect(encode(TaskStartSchema, { containerId: 'a', pid: 1 })).toEqual(toBinary(TaskStartSchema, create(TaskStartSchema, { containerId: 'a', pid: 1 })));
  });
});

describe('the DeleteResponse of `shim delete`, encoded without protobuf-es', () => {
  it.each([
    ['the usual one', 4242, 137, 1796000000n, 123_456_000],
    ['pid 0 (no init.pid)', 0, 137, 1796000000n, 1],
    ['exit 0 and whole seconds', 1, 0, 1n, 0],
    ['Go zero time', 7, 137, GO_ZERO_TIME_SECONDS, 0],
    ['before the epoch', 2 ** 32 - 1, 2 ** 31, -1n, 999_999_999],
    ['the largest values', 2 ** 32 - 1, 2 ** 32 - 1, 2n ** 63n - 1n, 999_999_999],
  ])('%s: the same bytes as the codec', (_what, pid, exitStatus, seconds, nanos) => {
    const exitedAt = { seconds, nanos };
    expect(toHex(encodeDeleteResponse({ pid, exitStatus, exitedAt }))).toBe(toHex(encode(DeleteResponseSchema, { pid, exitStatus, exitedAt: create(TimestampSchema, exitedAt) })));
  });

  it('stamps now as timestampNow does', () => {
    const ms = 1672628645000.006;
    expect(secondsAndNanos(ms)).toEqual({ seconds: timestampFromMs(ms).seconds, nanos: timestampFromMs(ms).nanos });
    expect(Math.abs(nowMs() - Date.now())).toBeLessThan(1000);
  });
});

describe('decoding rules (proto3 as gogo writes it)', () => {
  it('skips unknown fields, accepts any field order, merges repeated occurrences', () => {
    // pid=5 (field 3) before id (field 1), unknown field 15 varint, unknown field 14 bytes
    const bytes = hex('1805 7801 7203616263 0a0464656d6f');
    expect(decode(StateResponseSchema, bytes)).toMatchObject({ id: 'demo', pid: 5 });
    // CreateTaskRequest.options given twice: sub-messages merge
    const a = Buffer.from(encode(CreateTaskRequestSchema, { options: { typeUrl: 'x' } }));
    const b = Buffer.from(encode(CreateTaskRequestSchema, { options: { value: new Uint8Array([1]) } }));
    const opts = decode(CreateTaskRequestSchema, Buffer.concat([a, b])).options;
    expect(opts?.typeUrl).toBe('x');
    expect([...(opts?.value ?? [])]).toEqual([1]);
  });

  it('throws on malformed bytes', () => {
    expect(() => decode(StateResponseSchema, hex('0a05 6465'))).toThrow();
    expect(() => decode(StateResponseSchema, hex('ff'))).toThrow();
  });
});

describe('messages the shim needs', () => {
  it('CreateTaskRequest with rootfs mounts and options', () => {
    const init = {
      id: 'c1',
      bundle: '/run/b',
      rootfs: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/a', 'upperdir=/b', 'workdir=/c'] }],
      terminal: true,
      stdin: '/fifo/in',
      stdout: '/fifo/out',
      options: packAny(runcOptions.OptionsSchema, { binaryName: 'tugboat' }),
    };
    const m = decode(CreateTaskRequestSchema, encode(CreateTaskRequestSchema, init));
    expect(m).toMatchObject({ ...init, options: { typeUrl: 'containerd.runc.v1.Options' } });
    expect(unpackAny(m.options, runcOptions.OptionsSchema)?.binaryName).toBe('tugboat');
  });

  it('ConnectResponse, PidsResponse with ProcessDetails, UpdateTaskRequest annotations', () => {
    expect(toHex(encode(ConnectResponseSchema, { shimPid: 100, taskPid: 200 }))).toBe('086410c801');
    const pids = decode(
      PidsResponseSchema,
      encode(PidsResponseSchema, { processes: [{ pid: 1 }, { pid: 2, info: packAny(runcOptions.ProcessDetailsSchema, { execId: 'e1' }) }] }),
    );
    expect(pids.processes.map((p) => p.pid)).toEqual([1, 2]);
    expect(unpackAny(pids.processes[1]?.info, runcOptions.ProcessDetailsSchema)?.execId).toBe('e1');
    const upd = decode(
      UpdateTaskRequestSchema,
      encode(UpdateTaskRequestSchema, { id: 'c', annotations: { a: '1', b: '2' }, resources: packJsonAny(OCI_TYPE_URL.LinuxResources, { pids: { limit: 5 } }) }),
    );
    expect(upd.annotations).toEqual({ a: '1', b: '2' });
    expect(unpackJsonAny(upd.resources!)).toEqual({ pids: { limit: 5 } });
  });

  it('runtimeoptions.v1.Options', () => {
    const any = packAny(runtimeOptions.OptionsSchema, { configPath: '/etc/tugboat.toml' });
    expect(any.typeUrl).toBe('runtimeoptions.v1.Options');
    expect(unpackAny(any, runtimeOptions.OptionsSchema)?.configPath).toBe('/etc/tugboat.toml');
    // the prefixed form is accepted too
    expect(unpackAny({ ...any, typeUrl: 'type.googleapis.com/runtimeoptions.v1.Options' }, runtimeOptions.OptionsSchema)).toBeDefined();
  });

  it('cgroups v1 and v2 Metrics in StatsResponse (uint64 as bigint)', () => {
    const v2 = packAny(cgroupsV2.MetricsSchema, {
      pids: { current: 3n, limit: 100n },
      cpu: { usageUsec: 123456789n },
      memory: { usage: 2n ** 40n, usageLimit: 18446744073709551615n },
      memoryEvents: { oomKill: 1n },
      io: { usage: [{ major: 8n, minor: 0n, rbytes: 10n }] },
    });
    expect(v2.typeUrl).toBe('io.containerd.cgroups.v2.Metrics');
    const s2 = decode(StatsResponseSchema, encode(StatsResponseSchema, { stats: v2 }));
    const m2 = unpackAny(s2.stats, cgroupsV2.MetricsSchema)!;
    expect(m2.memory?.usageLimit).toBe(18446744073709551615n);
    expect(m2.io?.usage[0]?.rbytes).toBe(10n);

    const v1 = packAny(cgroupsV1.MetricsSchema, {
      cpu: { usage: { total: 5n, perCpu: [1n, 2n, 2n] } },
      memory: { usage: { usage: 7n, limit: 9n } },
      memoryOomControl: { oomKill: 2n },
      hugetlb: [{ pagesize: '2MB', usage: 1n }],
    });
    expect(v1.typeUrl).toBe('io.containerd.cgroups.v1.Metrics');
    const m1 = unpackAny(v1, cgroupsV1.MetricsSchema)!;
    expect(m1.cpu?.usage?.perCpu).toEqual([1n, 2n, 2n]);
    expect(m1.memory?.usage?.limit).toBe(9n);
    // repeated uint64 is packed, as gogo writes proto3 repeated scalars
    expect(toHex(encode(cgroupsV1.CPUUsageSchema, { perCpu: [1n, 2n] }))).toBe('2202' + '0102');
  });

  it('every task event has its topic and bare type URL', () => {
    const cases = [
      [TaskCreateSchema, '/tasks/create'],
      [TaskStartSchema, '/tasks/start'],
      [TaskExitSchema, '/tasks/exit'],
      [TaskDeleteSchema, '/tasks/delete'],
      [TaskOOMSchema, '/tasks/oom'],
      [TaskExecAddedSchema, '/tasks/exec-added'],
      [TaskExecStartedSchema, '/tasks/exec-started'],
      [TaskPausedSchema, '/tasks/paused'],
      [TaskResumedSchema, '/tasks/resumed'],
    ] as const;
    for (const [schema, topic] of cases) {
      expect(eventTopic(schema)).toBe(topic);
      expect(packAny(schema, {}).typeUrl).toBe(`containerd.events.${schema.name}`);
    }
    const tc = decode(TaskCreateSchema, encode(TaskCreateSchema, { containerId: 'c', io: { stdout: '/o', terminal: true }, pid: 9 }));
    expect(tc.io).toMatchObject({ stdout: '/o', terminal: true });
  });
});

describe('generated code', () => {
  it('is up to date with proto/*.proto (node scripts/gen-proto.mjs --check)', () => {
    const r = spawnSync(process.execPath, ['scripts/gen-proto.mjs', '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
