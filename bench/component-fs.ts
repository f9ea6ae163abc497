// bench/component-fs: a component's file I/O, Tugboat's own wasi:filesystem
// against preview2-shim's (which the component host used before: every file
// call a round trip to the shim's IO worker, every path a realpath and an
// lstat per component). The guest is the syscall-heavy Rust program of
// bench/syscalls (examples/rust-wasm/src/syscalls.rs: N small files written,
// read back and stat'ed, then a directory walk) wrapped into a component
// with jco's preview1 adapter, the same transpiled component each way,
// directly on this machine (no runc):
//   native binary (reference)
//   component, preview2-shim's filesystem (baseline: the host before)
//   component, Tugboat's filesystem, same harness (only the filesystem differs)
//   component, Tugboat's host bundle (what a container runs: worker, stdio)
// Each run starts from an empty directory on tmpfs (/dev/shm) unless BENCH_DIR
// says otherwise; medians of interleaved runs.
//
//   BENCH_RUNS=5 BENCH_N=5000
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMPONENT_ENTRY } from '../src/linux-runtime/component-cache.js';
import { runCommandInstance } from '../src/wasi-host/component-run.js';
import { componentShim, loadComponent } from '../src/wasi-host/component-shim.js';
import type { GuestConfig } from '../src/wasi-host/guest-config.js';
// @ts-expect-error: plain JavaScript, no types
import { interleave, report, timeCommand } from './lib.mjs';
import { REPO, RUST_EXAMPLES as EXAMPLES } from '../test/unit/helpers/wasm.js';

const runs = Number(process.env.BENCH_RUNS ?? 5);
const n = process.env.BENCH_N ?? '5000';

/** Child mode: `component-fs.mjs --run ours|shim ROOT ENTRY_DIR N` runs the component once, in this process. */
async function runOnce(which: string, root: string, entryDir: string, count: string): Promise<void> {
  const config: GuestConfig = { args: ['/syscalls.wasm', '/work', count], env: [], root, cwd: '/', component: { dir: entryDir, entry: COMPONENT_ENTRY, world: 'command' } };
  let imports: object;
  if (which === 'ours') {
    imports = componentShim(config).getImportObject();
  } else {
    const { WASIShim } = await import('@bytecodealliance/preview2-shim/instantiation');
    const cli = await import('@bytecodealliance/preview2-shim/cli');
    const { componentExit } = await import('../src/wasi-host/component-outcome.js');
    imports = new WASIShim({ cli: { ...cli, exit: componentExit } as never, sandbox: { args: config.args, env: {}, preopens: { '/': root } } }).getImportObject();
  }
  const outcome = await runCommandInstance(await loadComponent(config, imports));
  // The shim's IO worker would keep the process alive.
  process.exit(outcome.kind === 'exit' ? outcome.code : 1);
}

async function main(): Promise<void> {
  const base = process.env.BENCH_DIR ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());
  const dir = mkdtempSync(join(base, 'tugboat-bench-cfs-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  // The guest as a component, transpiled once.
  const component = join(dir, 'syscalls.component.wasm');
  execFileSync(process.execPath, [join(REPO, 'examples', 'components', 'make-components.mjs'), join(EXAMPLES, 'syscalls.wasm'), component]);
  // jco's transpiler as the CLI runs it (the built child; this bundle has no copy of it).
  const entryDir = join(dir, 'transpiled');
  mkdirSync(entryDir);
  execFileSync(process.execPath, [join(REPO, 'dist', 'linux-runtime', 'transpile-child.js'), component, entryDir]);
  const self = fileURLToPath(import.meta.url);
  const node = process.execPath;
  const host = join(REPO, 'dist', 'host', 'host.mjs');

  const freshRoot = (name: string) => {
    const root = join(dir, name);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(join(root, 'work'), { recursive: true });
    copyFileSync(join(EXAMPLES, 'syscalls.wasm'), join(root, 'syscalls.wasm'));
    return root;
  };
  const hostRun = (root: string) => {
    const guest: GuestConfig = { args: ['/syscalls.wasm', '/work', n], env: [], root, cwd: '/', component: { dir: entryDir, entry: COMPONENT_ENTRY, world: 'command' } };
    const saved = process.env.TUGBOAT_GUEST;
    process.env.TUGBOAT_GUEST = JSON.stringify(guest);
    try {
      return timeCommand(node, ['--no-warnings', host]);
    } finally {
      if (saved === undefined) delete process.env.TUGBOAT_GUEST;
      else process.env.TUGBOAT_GUEST = saved;
    }
  };
  const cases = {
    'native (reference)': () => timeCommand(join(EXAMPLES, 'syscalls-native'), [join(freshRoot('native'), 'work'), n]),
    "preview2-shim's filesystem (baseline)": () => timeCommand(node, ['--no-warnings', self, '--run', 'shim', freshRoot('shim'), entryDir, n]),
    "Tugboat's filesystem, same harness": () => timeCommand(node, ['--no-warnings', self, '--run', 'ours', freshRoot('ours'), entryDir, n]),
    "Tugboat's host bundle (worker, stdio)": () => hostRun(freshRoot('host')),
  };
  const medians = interleave(cases, runs);
  report(`a component's file I/O (N=${n} files, in ${dir}), median of ${runs} interleaved runs`, medians, "preview2-shim's filesystem (baseline)");
}

const [flag, which, root, entryDir, count] = process.argv.slice(2);
if (flag === '--run') await runOnce(which!, root!, entryDir!, count!);
else await main();
