// bench/cold-start: how long a container takes from command to exit.
//   baseline: `runc run` of busybox `echo hello` from a prepared bundle
//   tugboat run --rm of the Wasm hello (image → overlay → bundle → runc → host)
//   the same at `--isolation process` (image → overlay → the guest in the CLI process, no runc)
//   tugboat run --rm of busybox echo (the same front end, Linux workload)
// N runs each, interleaved; medians and ratios to the baseline.
// BENCH_OTHER=DIR adds the same Wasm hello through another checkout's
// bin/tugboat (built, with its own kit), e.g. the branch a change started from.
import { join } from 'node:path';
import { FIXTURES, interleave, report, runcBundle, timeCommand, TUGBOAT, unpackedRootfs, workspace } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 20);
const { dir, runcRoot } = workspace('cold');
const root = join(dir, 'store');
const busybox = `oci:${join(FIXTURES, 'busybox')}:latest`;
const wasm = `oci:${join(FIXTURES, 'wasm')}:hello`;
const bundle = runcBundle(dir, unpackedRootfs(root, busybox), ['/bin/echo', 'hello']);
// Warm the Wasm image's unpacked rootfs and the page cache for every path.
timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', wasm]);

const cases = {
  'runc run busybox echo (baseline)': (i) => timeCommand('runc', ['--root', runcRoot, 'run', '--bundle', bundle, `bb-${i}`]),
  'tugboat run --rm wasm hello': () => timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', wasm]),
  'tugboat run --rm --isolation process wasm hello': () => timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', '--isolation', 'process', wasm]),
  'tugboat run --rm busybox echo': () => timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', busybox, 'echo', 'hello']),
};
const other = process.env.BENCH_OTHER;
if (other) {
  const otherBin = join(other, 'bin', 'tugboat');
  const otherRoot = join(dir, 'store-other');
  timeCommand(otherBin, ['--root', otherRoot, 'run', '--rm', wasm]);
  cases[`wasm hello via ${other}`] = () => timeCommand(otherBin, ['--root', otherRoot, 'run', '--rm', wasm]);
}
const medians = interleave(cases, runs);
report(`cold start, median of ${runs} interleaved runs`, medians, 'runc run busybox echo (baseline)');
