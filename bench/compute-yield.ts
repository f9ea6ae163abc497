// bench/compute-yield: what yield points cost a CPU-bound guest. The compute
// example (sieve + hash loop) runs in this process under node:wasi, entered
// through WebAssembly.promising as the shared host enters guests: once as
// built (the baseline) and once per interval with yield points inserted. Its
// `tugboat.yield` is a WebAssembly.Suspending function that, like the
// host's, hands the event loop back (setImmediate) once the guest has run for
// a time slice, and otherwise returns at once. Runs are interleaved after a
// warm-up of each variant, so tier-up and machine noise hit all alike; the
// guest thread's CPU time is reported beside wall time because on a loaded
// machine it is the steadier of the two.
//
//   BENCH_RUNS=9 BENCH_N=5000000 BENCH_INTERVALS=1000,10000,100000 BENCH_SLICE_MS=10
import { openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WASI } from 'node:wasi';
import { instrument } from '../src/wasi-host/instrument/index.js';
import { RUST_EXAMPLES } from '../test/unit/helpers/wasm.js';

const runs = Number(process.env.BENCH_RUNS ?? 9);
const n = process.env.BENCH_N ?? '5000000';
const intervals = (process.env.BENCH_INTERVALS ?? '1000,10000,100000').split(',').map(Number);
const sliceMs = Number(process.env.BENCH_SLICE_MS ?? 10);
const bytes = readFileSync(join(RUST_EXAMPLES, 'compute.wasm'));
const devNull = openSync('/dev/null', 'w');

interface Run {
  wallMs: number;
  cpuMs: number;
  yields: number;
  suspends: number;
}

async function run(module: WebAssembly.Module): Promise<Run> {
  const wasi = new WASI({ version: 'preview1', args: ['compute', n], env: {}, returnOnExit: true, stdout: devNull });
  let sliceStart = performance.now();
  let yields = 0;
  let suspends = 0;
  const yieldImport = new WebAssembly.Suspending(() => {
    yields++;
    if (performance.now() - sliceStart < sliceMs) return undefined;
    suspends++;
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        sliceStart = performance.now();
        resolve();
      }),
    );
  });
  const instance = new WebAssembly.Instance(module, { ...wasi.getImportObject(), tugboat: { yield: yieldImport } });
  const start = WebAssembly.promising(instance.exports._start as () => void);
  // node:wasi calls _start itself; hand it one that enters through JSPI. It
  // runs synchronously up to its first suspension.
  let finished: Promise<unknown> | undefined;
  const t0 = performance.now();
  const c0 = process.threadCpuUsage();
  wasi.start({ exports: { memory: instance.exports.memory, _start: () => void (finished = start()) } });
  await finished;
  const cpu = process.threadCpuUsage(c0);
  return { wallMs: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, yields, suspends };
}

const baseline = 'uninstrumented (baseline)';
const variants: Record<string, WebAssembly.Module> = { [baseline]: new WebAssembly.Module(bytes) };
for (const interval of intervals) {
  const { bytes: out, report } = instrument(bytes, { yieldPoints: { interval } });
  const y = report.yieldPoints!;
  console.log(`interval ${interval}: ${y.loops} loops and ${y.functionEntries} of ${y.functionBodies} function entries checked (${y.localCounters} functions count in a local), ${bytes.length} → ${out.length} bytes`);
  variants[`yield points, interval ${interval}`] = new WebAssembly.Module(out);
}

const samples: Record<string, Run[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (const module of Object.values(variants)) await run(module); // warm-up: tier-up
for (let i = 0; i < runs; i++) for (const [name, module] of Object.entries(variants)) samples[name]!.push(await run(module));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const show = (title: string, pick: (r: Run) => number) => {
  console.log(`\n${title}`);
  const base = median(samples[baseline]!.map(pick));
  for (const [name, rs] of Object.entries(samples)) {
    const m = median(rs.map(pick));
    console.log(`  ${name.padEnd(36)} ${m.toFixed(1).padStart(8)} ms   ${(m / base).toFixed(2)}x`);
  }
};
show(`compute (N=${n}) in one process, wall time, median of ${runs} interleaved runs, time slice ${sliceMs} ms`, (r) => r.wallMs);
show(`compute (N=${n}), CPU time of the guest's thread, median of ${runs}`, (r) => r.cpuMs);
for (const [name, rs] of Object.entries(samples)) {
  const last = rs[rs.length - 1]!;
  if (last.yields) console.log(`  ${name}: ${last.yields} calls of tugboat.yield, ${last.suspends} suspensions per run`);
}

// Function entries: recursion without loops needs a check at every entry of
// a function that calls (fib never loops). What that costs on a workload
// that is nothing but calls:
const fibText = `(module (func $fib (export "fib") (param $n i32) (result i32)
  (if (result i32) (i32.lt_u (local.get $n) (i32.const 2)) (then (local.get $n))
    (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1))) (call $fib (i32.sub (local.get $n) (i32.const 2))))))))`;
const { parse } = await import('@bytecodealliance/jco');
const fibBytes = await parse(fibText);
const fibVariants: Record<string, WebAssembly.Module> = {
  [baseline]: new WebAssembly.Module(fibBytes),
  'yield points, interval 10000': new WebAssembly.Module(instrument(fibBytes, { yieldPoints: { interval: 10_000 } }).bytes),
};
const fibSamples: Record<string, number[]> = Object.fromEntries(Object.keys(fibVariants).map((k) => [k, []]));
const fibRun = async (module: WebAssembly.Module) => {
  const instance = new WebAssembly.Instance(module, { tugboat: { yield: new WebAssembly.Suspending(() => undefined) } });
  const fib = WebAssembly.promising(instance.exports.fib as (n: number) => number);
  const c0 = process.threadCpuUsage();
  await fib(32);
  const c = process.threadCpuUsage(c0);
  return (c.user + c.system) / 1000;
};
for (const module of Object.values(fibVariants)) await fibRun(module);
for (let i = 0; i < runs; i++) for (const [name, module] of Object.entries(fibVariants)) fibSamples[name]!.push(await fibRun(module));
console.log(`\nfib(32), recursion without loops (7 million calls), CPU time, median of ${runs}`);
const fibBase = median(fibSamples[baseline]!);
for (const [name, xs] of Object.entries(fibSamples)) console.log(`  ${name.padEnd(36)} ${median(xs).toFixed(1).padStart(8)} ms   ${(median(xs) / fibBase).toFixed(2)}x`);
