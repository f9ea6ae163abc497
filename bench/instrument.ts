// bench/instrument: what the instrumenter costs on a guest's start path, per
// module, against compiling the same module with WebAssembly.compile (what
// the host does next with the result) measured in the same run. Modules: the
// Rust examples, the core modules inside the componentize-js wasi:http
// component (examples/components/out/http-hello.wasm, built by
// `make fixtures`), and the large core modules that ship in npm dependencies.
//
//   BENCH_RUNS=7
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { instrument } from '../src/wasi-host/instrument/index.js';
import { coreModules, dependencyModules, REPO, rustExamples } from '../test/unit/helpers/wasm.js';

const runs = Number(process.env.BENCH_RUNS ?? 7);

function modules(): { name: string; bytes: Uint8Array }[] {
  const list = rustExamples().map((m) => ({ name: `rust-wasm/${m.name}`, bytes: m.bytes }));
  try {
    const http = readFileSync(join(REPO, 'examples', 'components', 'out', 'http-hello.wasm'));
    coreModules(http).forEach((bytes, i) => list.push({ name: `http-hello.wasm core module ${i}`, bytes }));
  } catch {
    console.log('(examples/components/out/http-hello.wasm not built: run `make fixtures` to include it)');
  }
  const deps = dependencyModules().filter((m) => m.bytes.length > 1 << 20 && !m.name.includes('componentize-js-0-19-3'));
  return [...list, ...deps.map((m) => ({ name: `node_modules/${m.name}`, bytes: m.bytes }))];
}

const min = (xs: number[]) => Math.min(...xs);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function time(fn: () => unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

console.log(`instrument (memory cap + yield points, interval 10000) vs WebAssembly.compile, ${runs} interleaved runs each after a warm-up`);
console.log(`${'module'.padEnd(62)} ${'MB'.padStart(6)} ${'instr ms'.padStart(9)} ${'ms/MB'.padStart(6)} ${'cap only'.padStart(8)} ${'compile'.padStart(8)} ${'ratio'.padStart(6)}`);
let totalMB = 0;
let totalMs = 0;
for (const { name, bytes } of modules()) {
  const options = { maxMemoryPages: 65536, yieldPoints: { interval: 10_000 } };
  const out = instrument(bytes, options).bytes; // warm-up
  await WebAssembly.compile(out);
  const full: number[] = [];
  const cap: number[] = [];
  const compile: number[] = [];
  for (let i = 0; i < runs; i++) {
    full.push(await time(() => instrument(bytes, options)));
    cap.push(await time(() => instrument(bytes, { maxMemoryPages: 65536 })));
    compile.push(await time(() => WebAssembly.compile(out)));
  }
  const mb = bytes.length / (1 << 20);
  totalMB += mb;
  totalMs += median(full);
  console.log(
    `${name.padEnd(62)} ${mb.toFixed(2).padStart(6)} ${median(full).toFixed(1).padStart(9)} ${(median(full) / mb).toFixed(1).padStart(6)} ${median(cap).toFixed(2).padStart(8)} ${median(compile).toFixed(1).padStart(8)} ${(median(full) / median(compile)).toFixed(2).padStart(6)}`,
  );
  console.log(`${''.padEnd(62)} ${'min'.padStart(6)} ${min(full).toFixed(1).padStart(9)} ${(min(full) / mb).toFixed(1).padStart(6)} ${min(cap).toFixed(2).padStart(8)} ${min(compile).toFixed(1).padStart(8)}`);
}
console.log(`all modules: ${totalMB.toFixed(1)} MB, ${(totalMs / totalMB).toFixed(1)} ms/MB (medians)`);
