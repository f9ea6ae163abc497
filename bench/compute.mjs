// bench/compute: the CPU-bound example (sieve + hash loop) compiled from the
// same Rust source to wasm32-wasi and natively; Wasm through `tugboat run`,
// native through `runc run` of a FROM-scratch bundle holding only the binary.
// At `process` isolation the guest runs in the CLI process with yield points
// (the fairness mechanism of shared hosts); the same with none
// (TUGBOAT_YIELD_INTERVAL=0) is what they cost.
import { mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXAMPLES, FIXTURES, interleave, report, runcBundle, timeCommand, TUGBOAT, workspace } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 5);
const n = process.env.BENCH_N ?? '20000000';
const { dir, runcRoot } = workspace('compute');
const root = join(dir, 'store');
const scratch = join(dir, 'scratch');
mkdirSync(scratch);
copyFileSync(join(EXAMPLES, 'compute-native'), join(scratch, 'compute'));
const bundle = runcBundle(dir, scratch, ['/compute', n]);
const wasm = `oci:${join(FIXTURES, 'wasm')}:compute`;
timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', wasm, '1000']);

const medians = interleave(
  {
    'native compute under runc (baseline)': (i) => timeCommand('runc', ['--root', runcRoot, 'run', '--bundle', bundle, `c-${i}`]),
    'wasm compute via tugboat run': () => timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', wasm, n]),
    'wasm, --isolation process, no yield points': () => timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', '--isolation', 'process', wasm, n], 0, { TUGBOAT_YIELD_INTERVAL: '0' }),
    'wasm, --isolation process, yield points': () => timeCommand(TUGBOAT, ['--root', root, 'run', '--rm', '--isolation', 'process', wasm, n]),
  },
  runs,
);
report(`compute (N=${n}), median of ${runs} interleaved runs`, medians, 'native compute under runc (baseline)');
const fair = medians['wasm, --isolation process, yield points'] / medians['wasm, --isolation process, no yield points'];
console.log(`  yield points (every 10,000) against none, both at process level: ${fair.toFixed(2)}x`);
