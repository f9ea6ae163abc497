// The runc-compatible commands that need Tugboat's judgement: create (detect
// and rewrite Wasm bundles), exec (run another module inside a Wasm
// container), delete (forget the derived bundle) and ps. Every other command
// is runc's own and passes straight through (bin/tugboat even skips Node for
// them).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigError, TugboatError, UsageError } from '../../errors.js';
import { log } from '../../log.js';
import { detectWorkload } from '../../oci/detect.js';
import type { Process, Spec } from '../../oci/runtime-spec.js';
import { hostArgv, loadKit } from '../../linux-runtime/kit.js';
import { anchorToBundle, readBundleSpec } from '../../linux-runtime/bundle-spec.js';
import { rewriteSpecForWasm, wasmHostProcess } from '../../linux-runtime/wasm-bundle.js';
import { componentRewriteOptions, defaultComponentCacheDir } from '../../linux-runtime/component-cache.js';
import { GUEST_ENV_VAR, encodeGuestConfig, decodeGuestConfig } from '../../wasi-host/guest-config.js';
import { flagValue, OCI_COMMANDS, parseGlobals, parseOciCommand, runcArgv, type ParsedCommand } from './argv.js';
import { checkContainerId, derivedBundleDir } from './derived-bundle.js';
import { runcBinary, runRunc } from './passthrough.js';
import { runtimeLog, type RuntimeLog } from './runtime-log.js';

interface Context {
  p: ParsedCommand;
  runc: string;
  runcRoot: string | undefined;
  kitDir: string | undefined;
  log: RuntimeLog;
}

function preservedFds(p: ParsedCommand): number {
  const v = flagValue(p.flags, 'preserve-fds');
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`invalid --preserve-fds value ${v}`);
  return n;
}

async function create(ctx: Context): Promise<number> {
  const { p } = ctx;
  const id = checkContainerId(p.positionals[0], 'create');
  const bundle = resolve(flagValue(p.flags, 'bundle', 'b') ?? process.cwd());
  const spec = readBundleSpec(bundle);
  const rootfs = resolve(bundle, spec.root!.path);
  const workload = detectWorkload({
    annotations: spec.annotations ?? {},
    args: spec.process?.args ?? [],
    env: spec.process?.env ?? [],
    rootfs,
  });
  log().info({ id, bundle, workload }, 'workload detected');
  if (workload.kind === 'linux') return runRunc(ctx.runc, runcArgv(p), preservedFds(p));

  const derived = derivedBundleDir(ctx.runcRoot, id);
  if (existsSync(derived) && existsSync(join(ctx.runcRoot ?? '/run/runc', id))) throw new UsageError(`container with given ID already exists`);
  // A component is transpiled (or found in the cache) before anything of ours is written.
  const wasmOptions = await componentRewriteOptions(rootfs, spec, defaultComponentCacheDir());
  await mkdir(derived, { recursive: true, mode: 0o700 });
  const rewritten = rewriteSpecForWasm(anchorToBundle(spec, bundle), loadKit(ctx.kitDir), undefined, wasmOptions);
  await writeFile(join(derived, 'config.json'), JSON.stringify(rewritten));
  const argv = flagValue(p.flags, 'bundle', 'b') !== undefined
    ? runcArgv(p, { names: ['bundle', 'b'], value: derived })
    : [...runcArgv(p).slice(0, p.commandIndex + 1), '--bundle', derived, ...runcArgv(p).slice(p.commandIndex + 1)];
  const code = await runRunc(ctx.runc, argv, preservedFds(p));
  if (code !== 0) await rm(derived, { recursive: true, force: true });
  return code;
}

/** The guest environment of a Wasm container, from its derived bundle. */
function containerGuestEnv(derived: string): string[] {
  const spec = JSON.parse(readFileSync(join(derived, 'config.json'), 'utf8')) as Spec;
  const raw = (spec.process?.env ?? []).find((e) => e.startsWith(`${GUEST_ENV_VAR}=`));
  return raw ? decodeGuestConfig(raw.slice(GUEST_ENV_VAR.length + 1)).env : [];
}

async function exec(ctx: Context): Promise<number> {
  const { p } = ctx;
  const id = checkContainerId(p.positionals[0], 'exec');
  const derived = derivedBundleDir(ctx.runcRoot, id);
  if (!existsSync(derived)) return runRunc(ctx.runc, runcArgv(p), preservedFds(p));

  // A Wasm container: the exec'd process is another module run by the host,
  // in the same namespaces, cgroup and root as the container's init.
  const kit = loadKit(ctx.kitDir);
  const processFile = flagValue(p.flags, 'process', 'p');
  if (processFile !== undefined) {
    let proc: Process;
    try {
      proc = JSON.parse(readFileSync(processFile, 'utf8')) as Process;
    } catch (err) {
      throw new ConfigError(`cannot read process file ${processFile}: ${(err as Error).message}`);
    }
    const tmp = join(derived, `exec-${randomBytes(6).toString('hex')}.json`);
    await writeFile(tmp, JSON.stringify(wasmHostProcess(proc, kit)));
    try {
      return await runRunc(ctx.runc, runcArgv(p, { names: ['process', 'p'], value: tmp }), preservedFds(p));
    } finally {
      await rm(tmp, { force: true });
    }
  }
  // Inline form: `exec [flags] ID MODULE ARGS...`.
  const args = p.positionals.slice(1);
  if (args.length === 0) throw new UsageError('exec: no command given');
  const extraEnv = p.flags.filter((f) => f.name === 'env' || f.name === 'e').map((f) => f.value ?? '');
  const guest = encodeGuestConfig({ args, env: [...containerGuestEnv(derived), ...extraEnv] });
  const head = runcArgv(p).slice(0, p.argv.length - args.length);
  return runRunc(ctx.runc, [...head.slice(0, -1), '--env', `${GUEST_ENV_VAR}=${guest}`, head.at(-1)!, ...hostArgv(kit, false)], preservedFds(p));
}

async function del(ctx: Context): Promise<number> {
  const id = checkContainerId(ctx.p.positionals[0], 'delete');
  const code = await runRunc(ctx.runc, runcArgv(ctx.p));
  const gone = !existsSync(join(ctx.runcRoot ?? '/run/runc', id));
  if (gone) await rm(derivedBundleDir(ctx.runcRoot, id), { recursive: true, force: true });
  return code;
}

/** True when argv is a runc command line that Tugboat should handle as an OCI runtime. */
export function isOciInvocation(argv: readonly string[]): boolean {
  let command: string | undefined;
  try {
    command = argv[parseGlobals(argv).commandIndex];
  } catch {
    return false;
  }
  if (command === undefined || !OCI_COMMANDS.has(command)) return false;
  if (command !== 'ps') return true;
  // `tugboat ps` lists Tugboat's own containers; `ps [flags] ID` is runc's.
  try {
    return parseOciCommand(argv).positionals.length > 0;
  } catch {
    return true;
  }
}

export async function runOciCommand(argv: readonly string[]): Promise<number> {
  let log: RuntimeLog = runtimeLog([]);
  try {
    const p = parseOciCommand(argv);
    log = runtimeLog(p.globals);
    const ctx: Context = {
      p,
      runc: runcBinary(flagValue(p.globals, 'runc')),
      runcRoot: flagValue(p.globals, 'root'),
      kitDir: flagValue(p.globals, 'kit'),
      log,
    };
    switch (p.command) {
      case 'create':
        return await create(ctx);
      case 'exec':
        return await exec(ctx);
      case 'delete':
        return await del(ctx);
      default:
        return await runRunc(ctx.runc, runcArgv(p));
    }
  } catch (err) {
    log.error(err instanceof Error ? err.message : String(err));
    return err instanceof TugboatError ? err.exitCode : 1;
  }
}

