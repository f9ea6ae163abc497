// bench/rm-watcher: what the --rm watcher costs a `tugboat run --rm` (a `sh`
// started before the container that stops and removes it if the run is
// killed; src/cli/run-lifecycle.ts). Baseline: the same runs with
// TUGBOAT_RM_WATCHER=off, interleaved in the same process.
import { join } from 'node:path';
import { FIXTURES, interleave, report, timeCommand, TUGBOAT, workspace } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 20);
const { dir } = workspace('watcher');
const root = join(dir, 'store');
const busybox = `oci:${join(FIXTURES, 'busybox')}:latest`;
const wasm = `oci:${join(FIXTURES, 'wasm')}:hello`;
const run = (image, args, watcher) => () => timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', image, ...args], 0, { TUGBOAT_RM_WATCHER: watcher ? 'on' : 'off' });
// Warm both unpacked roots and the page cache.
run(wasm, [], true)();
run(busybox, ['true'], true)();

const medians = interleave(
  {
    'busybox true, no watcher (baseline)': run(busybox, ['true'], false),
    'busybox true, watcher': run(busybox, ['true'], true),
    'wasm hello, no watcher (baseline)': run(wasm, [], false),
    'wasm hello, watcher': run(wasm, [], true),
  },
  runs,
);
const pick = (...keys) => Object.fromEntries(keys.map((k) => [k, medians[k]]));
report(`tugboat run --rm, Linux: median of ${runs} interleaved runs`, pick('busybox true, no watcher (baseline)', 'busybox true, watcher'), 'busybox true, no watcher (baseline)');
report(`tugboat run --rm, Wasm: median of ${runs} interleaved runs`, pick('wasm hello, no watcher (baseline)', 'wasm hello, watcher'), 'wasm hello, no watcher (baseline)');
