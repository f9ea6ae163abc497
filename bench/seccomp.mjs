// bench/seccomp: what the default seccomp profile costs a container's start.
// The filter is compiled by runc and every system call of the container
// (Node's, for a Wasm container) passes it, so Wasm cold start is where it
// would show. Baselines: the same runs with --security-opt seccomp=unconfined,
// interleaved in the same process.
import { join } from 'node:path';
import { FIXTURES, interleave, report, timeCommand, TUGBOAT, workspace } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 20);
const { dir } = workspace('seccomp');
const root = join(dir, 'store');
const busybox = `oci:${join(FIXTURES, 'busybox')}:latest`;
const wasm = `oci:${join(FIXTURES, 'wasm')}:hello`;
const run = (image, args, unconfined) => () =>
  timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', ...(unconfined ? ['--security-opt', 'seccomp=unconfined'] : []), image, ...args]);
// Warm both unpacked roots and the page cache.
run(wasm, [], false)();
run(busybox, ['true'], false)();

const medians = interleave(
  {
    'wasm hello, seccomp=unconfined (baseline)': run(wasm, [], true),
    'wasm hello, default profile': run(wasm, [], false),
    'busybox true, seccomp=unconfined (baseline)': run(busybox, ['true'], true),
    'busybox true, default profile': run(busybox, ['true'], false),
  },
  runs,
);
const pick = (...keys) => Object.fromEntries(keys.map((k) => [k, medians[k]]));
report(`tugboat run --rm, Wasm: median of ${runs} interleaved runs`, pick('wasm hello, seccomp=unconfined (baseline)', 'wasm hello, default profile'), 'wasm hello, seccomp=unconfined (baseline)');
report(`tugboat run --rm, Linux: median of ${runs} interleaved runs`, pick('busybox true, seccomp=unconfined (baseline)', 'busybox true, default profile'), 'busybox true, seccomp=unconfined (baseline)');
