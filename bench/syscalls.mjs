// bench/syscalls: a syscall-heavy guest (examples/rust-wasm/src/syscalls.rs:
// N small files written, read back and stat'ed, then a directory walk), the
// same Rust program three ways, directly on this machine (no runc, so only
// the WASI host differs):
//   native binary (baseline)
//   wasm on node:wasi (uvwasi), main thread
//   wasm on Tugboat's own preview1 host (the host bundle, process level)
// Each run starts from an empty directory; medians of interleaved runs. The
// files live on tmpfs (/dev/shm) unless BENCH_DIR says otherwise, so that the
// disk does not hide what the host itself costs.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EXAMPLES, interleave, REPO, report, timeCommand, workspace } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 5);
const n = process.env.BENCH_N ?? '100000';
const base = process.env.BENCH_DIR ?? (existsSync('/dev/shm') ? '/dev/shm' : undefined);
const dir = base ? mkdtempSync(join(base, 'tugboat-bench-syscalls-')) : workspace('syscalls').dir;
if (base) process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const node = process.execPath;
const host = join(REPO, 'dist', 'host', 'host.mjs');

function freshRoot(name) {
  const root = join(dir, name);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, 'work'), { recursive: true });
  copyFileSync(join(EXAMPLES, 'syscalls.wasm'), join(root, 'syscalls.wasm'));
  return root;
}

/** The host bundle run directly on a root directory (GuestConfig.root), the `process` level's way. */
function tugboatHost(root, backend) {
  const guest = { args: ['/syscalls.wasm', '/work', n], env: [], root, cwd: '/', ...(backend ? { backend } : {}) };
  return timeCommandEnv(node, ['--no-warnings', host], { TUGBOAT_GUEST: JSON.stringify(guest) });
}

function timeCommandEnv(cmd, args, env) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return timeCommand(cmd, args);
  } finally {
    process.env = saved;
  }
}

const cases = {
  'native (baseline)': () => {
    const root = freshRoot('native');
    return timeCommand(join(EXAMPLES, 'syscalls-native'), [join(root, 'work'), n]);
  },
  'wasm on node:wasi (main thread)': () => timeCommand(node, ['--no-warnings', join(REPO, 'bench', 'run-uvwasi.mjs'), freshRoot('uvwasi'), 'syscalls.wasm', '/work', n]),
};
if (process.env.BENCH_TUGBOAT_HOST !== '0' && existsSync(host)) {
  cases["wasm on Tugboat's host"] = () => tugboatHost(freshRoot('tugboat'));
}
const medians = interleave(cases, runs);
report(`syscall-heavy guest (N=${n} files, in ${dir}), median of ${runs} interleaved runs`, medians, 'native (baseline)');
