// The runc-compatible commands that need Tugboat's judgement: create (detect
// and prepare the workload), exec (another guest in a Wasm container),
// delete (forget what create derived) and ps. Every other command is runc's
// own and passes straight through (bin/tugboat even skips Node for them).
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ociDerivedBundleDir, ociRuncContainerDir, ociRuncRoot, runcBinary, stateDir } from '../../defaults.js';
import { ConfigError, exitCodeFor, UnimplementedError, UsageError } from '../../errors.js';
import { handleInterrupts, inForeground, undoOnInterrupt } from '../../interrupt.js';
import { parseJsonText } from '../../json-text.js';
import { log } from '../../log.js';
import { prepareDataRoot } from '../../oci/data-root.js';
import type { Process } from '../../oci/runtime-spec.js';
import { readBundleSpec } from '../../linux-runtime/bundle-spec.js';
import type { EngineSettings } from '../../linux-runtime/engine.js';
import { runWithOurStdio } from '../../linux-runtime/runc.js';
import { engineSettings, prepareWorkload, removeWorkloadHome, reopenWorkload } from '../../linux-runtime/workload.js';
import { checkContainerId, flagValue, parseOciCommand, runcArgv, type ParsedCommand } from './argv.js';
import { runtimeLog, type RuntimeLog } from './runtime-log.js';

interface Context {
  p: ParsedCommand;
  runc: string;
  runcRoot: string | undefined;
  settings: EngineSettings;
}

function preservedFds(p: ParsedCommand): number {
  const v = flagValue(p.flags, 'preserve-fds');
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`invalid --preserve-fds value ${v}`);
  return n;
}

/** Where a Wasm container's derived bundle lives: keyed by runc's root and the id, both validated. */
function home(ctx: Context, id: string): string {
  return ociDerivedBundleDir(ctx.runcRoot, id);
}

function runcHasContainer(ctx: Context, id: string): boolean {
  return existsSync(ociRuncContainerDir(ociRuncRoot(ctx.runcRoot), id));
}

async function create(ctx: Context): Promise<number> {
  const { p } = ctx;
  const id = checkContainerId(p.positionals[0], 'create');
  const derivedHome = home(ctx, id);
  const bundle = resolve(flagValue(p.flags, 'bundle', 'b') ?? process.cwd());
  const spec = readBundleSpec(bundle);
  // Derived bundles hold containers' environment: the state dir is private (created or repaired 0700).
  await prepareDataRoot(stateDir());
  if (existsSync(derivedHome) && runcHasContainer(ctx, id)) throw new UsageError('container with given ID already exists', { kind: 'AlreadyExists' });
  // Interrupted while preparing (a transpile can take a while): nothing derived stays.
  handleInterrupts();
  const forget = undoOnInterrupt(() => rmSync(derivedHome, { recursive: true, force: true }));
  let prepared;
  try {
    prepared = await prepareWorkload({
      id,
      spec,
      bundle,
      home: derivedHome,
      settings: ctx.settings,
      // Docker and podman track one process per container (its pid, its exit, its cgroup).
      isolation: { allowed: { levels: ['container'], why: 'is not available through the OCI runtime CLI: Docker and podman need a process per container' } },
    });
  } finally {
    forget();
  }
  if (prepared.workload.kind === 'linux') return inForeground(() => runWithOurStdio(ctx.runc, runcArgv(p), preservedFds(p)));
  const runBundle = prepared.runcBundle;
  if (runBundle === undefined) {
    await prepared.remove();
    throw new UnimplementedError(`isolation level ${prepared.isolation ?? '?'} cannot run under an OCI runtime (Docker, podman); use "container"`);
  }
  const argv = flagValue(p.flags, 'bundle', 'b') !== undefined
    ? runcArgv(p, { names: ['bundle', 'b'], value: runBundle })
    : [...runcArgv(p).slice(0, p.commandIndex + 1), '--bundle', runBundle, ...runcArgv(p).slice(p.commandIndex + 1)];
  const code = await inForeground(() => runWithOurStdio(ctx.runc, argv, preservedFds(p)));
  if (code !== 0) await prepared.remove();
  return code;
}

function readProcessFile(file: string): Process {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read process file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseJsonText(text, `process file ${file}`, (m) => new ConfigError(m)) as Process;
}

async function exec(ctx: Context): Promise<number> {
  const { p } = ctx;
  const id = checkContainerId(p.positionals[0], 'exec');
  const prepared = reopenWorkload(home(ctx, id), ctx.settings);
  if (!prepared) return runWithOurStdio(ctx.runc, runcArgv(p), preservedFds(p));

  // A Wasm container: the engine says what runs the exec'd process.
  const processFile = flagValue(p.flags, 'process', 'p');
  if (processFile !== undefined) {
    // crypto is loaded here, not with the module: create and delete (Docker's hot path) never need it.
    const tmp = join(home(ctx, id), `exec-${process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex')}.json`);
    await writeFile(tmp, JSON.stringify(prepared.execProcess(readProcessFile(processFile))));
    try {
      return await runWithOurStdio(ctx.runc, runcArgv(p, { names: ['process', 'p'], value: tmp }), preservedFds(p));
    } finally {
      await rm(tmp, { force: true });
    }
  }
  // Inline form, `exec [flags] ID COMMAND ARGS...`: runc starts from the
  // container's process and applies the flags; so does the guest.
  const args = p.positionals.slice(1);
  if (args.length === 0) throw new UsageError('exec: no command given');
  const base = prepared.process;
  const extraEnv = p.flags.filter((f) => f.name === 'env' || f.name === 'e').map((f) => f.value ?? '');
  const run = prepared.execProcess({ ...base, args, env: [...(base.env ?? []), ...extraEnv], cwd: flagValue(p.flags, 'cwd') ?? base.cwd });
  const head = runcArgv(p).slice(0, p.argv.length - args.length);
  const env = (run.env ?? []).flatMap((e) => ['--env', e]);
  return runWithOurStdio(ctx.runc, [...head.slice(0, -1), ...env, head.at(-1)!, ...(run.args ?? [])], preservedFds(p));
}

async function del(ctx: Context): Promise<number> {
  if (ctx.p.positionals.length > 1) throw new UsageError('delete: "delete" requires exactly 1 argument(s)');
  const id = checkContainerId(ctx.p.positionals[0], 'delete');
  // Checked before runc runs: runc's delete of a container it does not know
  // removes <root>/<id> whole, whatever that is.
  const derived = home(ctx, id);
  const code = await runWithOurStdio(ctx.runc, runcArgv(ctx.p));
  if (!runcHasContainer(ctx, id)) await removeWorkloadHome(derived);
  return code;
}

export async function runOciCommand(argv: readonly string[]): Promise<number> {
  let out: RuntimeLog = runtimeLog([]);
  try {
    const p = parseOciCommand(argv);
    out = runtimeLog(p.globals);
    const ctx: Context = {
      p,
      runc: runcBinary(flagValue(p.globals, 'runc')),
      runcRoot: flagValue(p.globals, 'root'),
      settings: engineSettings({ kitDir: flagValue(p.globals, 'kit') }),
    };
    switch (p.command) {
      case 'create':
        return await create(ctx);
      case 'exec':
        return await exec(ctx);
      case 'delete':
        return await del(ctx);
      default:
        return await runWithOurStdio(ctx.runc, runcArgv(p));
    }
  } catch (err) {
    out.error(err instanceof Error ? err.message : String(err));
    log().debug({ err }, 'runtime command failed');
    return exitCodeFor(err);
  }
}
