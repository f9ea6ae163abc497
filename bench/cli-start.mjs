// bench/cli-start: how long each command takes to start and finish, against
// Node starting and doing nothing (`node -e 0`, the floor every command pays)
// and against `runc run` of busybox `echo` (what a container costs without
// Tugboat), all interleaved in the same run.
//   tugboat --version | image ls | ps          the CLI alone
//   tugboat run --rm (Wasm hello, busybox echo) the whole front end and the container
//   tugboat create / delete of a Wasm bundle   Docker's path (runc CLI); delete is
//   tugboat create of a Linux bundle            Node's only for a Wasm container
//   containerd-shim-tugboat-v1 delete           run by containerd after every task
// Each case prints its median wall time and CPU time (user + system of the
// command and its children, which a loaded machine distorts less).
// BENCH_OTHER=DIR adds every Tugboat case through another checkout's bin/
// (built, with its own kit), e.g. the commit a change started from.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXAMPLES, FIXTURES, REPO, interleaveSamples, median, report, runcBundle, timeCommand, timeCommandCpu, TUGBOAT, unpackedRootfs, workspace } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 20);
const NODE = join(REPO, 'vendor', 'node', 'bin', 'node');
const { dir, runcRoot } = workspace('cli');
const busybox = `oci:${join(FIXTURES, 'busybox')}:latest`;
const wasm = `oci:${join(FIXTURES, 'wasm')}:hello`;

/** A data root with both images in the store and one exited container, so `image ls` and `ps` have rows. */
function prepareRoot(bin, root) {
  timeCommand(bin, ['--root', root, 'image', 'import', busybox, '--name', 'busybox']);
  timeCommand(bin, ['--root', root, 'image', 'import', wasm, '--name', 'hello']);
  timeCommand(bin, ['--root', root, 'run', '--name', 'exited', 'hello']);
  // Warms the unpacked roots and the page cache for every path.
  timeCommand(bin, ['--root', root, 'run', '--rm', wasm]);
  timeCommand(bin, ['--root', root, 'run', '--rm', busybox, 'echo', 'hello']);
}

/** A task bundle as `shim delete` finds it after a normal Delete + Shutdown: config.json, no runc state. */
function taskBundle() {
  const bundle = join(dir, 'task-bundle');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations: {} }));
  return bundle;
}

const storeRoot = join(dir, 'store');
prepareRoot(TUGBOAT, storeRoot);
const busyboxRootfs = unpackedRootfs(join(dir, 'unpack'), busybox);
const runcBusybox = runcBundle(dir, busyboxRootfs, ['/bin/echo', 'hello']);
// OCI bundles as Docker hands them to its runtime: a rootfs and a config.json.
const wasmRootfs = join(dir, 'wasm-rootfs');
mkdirSync(wasmRootfs);
copyFileSync(join(EXAMPLES, 'hello.wasm'), join(wasmRootfs, 'hello.wasm'));
const wasmBundle = runcBundle(join(dir, 'oci-wasm'), wasmRootfs, ['/hello.wasm']);
const linuxBundle = runcBundle(join(dir, 'oci-linux'), busyboxRootfs, ['/bin/true']);
const task = taskBundle();

/** The cases of one checkout, `binDir` being its bin/. */
function tugboatCases(label, binDir, root, runc, state) {
  const tugboat = join(binDir, 'tugboat');
  const shim = join(binDir, 'containerd-shim-tugboat-v1');
  const env = { ...process.env, TUGBOAT_STATE: state };
  const cli = (args) => () => timeCommandCpu(tugboat, ['--root', root, ...args]);
  const oci = (args) => (i) => timeCommandCpu(tugboat, ['--root', runc, ...args(i)], { env });
  return {
    [`${label}--version`]: () => timeCommandCpu(tugboat, ['--version']),
    [`${label}image ls`]: cli(['image', 'ls']),
    [`${label}ps`]: cli(['ps']),
    [`${label}run --rm wasm hello`]: cli(['run', '--rm', wasm]),
    [`${label}run --rm busybox echo`]: cli(['run', '--rm', busybox, 'echo', 'hello']),
    // One round creates then deletes each container.
    [`${label}create wasm (OCI CLI)`]: oci((i) => ['create', '--bundle', wasmBundle, `w${i}`]),
    [`${label}delete wasm (OCI CLI)`]: oci((i) => ['delete', '--force', `w${i}`]),
    [`${label}create linux (OCI CLI)`]: oci((i) => ['create', '--bundle', linuxBundle, `l${i}`]),
    [`${label}delete linux (OCI CLI; sh, no Node)`]: oci((i) => ['delete', '--force', `l${i}`]),
    [`${label}shim delete`]: (i) => timeCommandCpu(shim, ['-namespace', 'bench', '-id', `t${i}`, '-address', join(dir, 'no-containerd.sock'), '-bundle', task, 'delete']),
  };
}

const cases = {
  'node -e 0 (baseline)': () => timeCommandCpu(NODE, ['-e', '0']),
  'runc run busybox echo (baseline)': (i) => timeCommandCpu('runc', ['--root', runcRoot, 'run', '--bundle', runcBusybox, `bb-${i}`]),
  ...tugboatCases('', join(REPO, 'bin'), storeRoot, join(dir, 'oci-runc'), join(dir, 'oci-state')),
};
const other = process.env.BENCH_OTHER;
if (other) {
  const otherRoot = join(dir, 'store-other');
  prepareRoot(join(other, 'bin', 'tugboat'), otherRoot);
  Object.assign(cases, tugboatCases(`${other}: `, join(other, 'bin'), otherRoot, join(dir, 'oci-runc-other'), join(dir, 'oci-state-other')));
}

const samples = Object.entries(interleaveSamples(cases, runs));
const wall = Object.fromEntries(samples.map(([k, v]) => [k, median(v.map((s) => s.wall))]));
const cpu = Object.fromEntries(samples.map(([k, v]) => [k, median(v.map((s) => s.cpu))]));
report(`CLI start, median of ${runs} interleaved runs: wall, and CPU (user + system)`, wall, 'node -e 0 (baseline)', cpu);
report('the same against a container without Tugboat', wall, 'runc run busybox echo (baseline)', cpu);
