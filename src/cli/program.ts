// Tugboat's own commands (everything but the runc command line): parses
// arguments with commander and calls the plain async functions that do the
// work. Loaded by main.ts; each command's implementation is imported when
// that command runs, so a command loads only what it uses (README
// "Performance").
import { existsSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import type { ProfileFormat } from './seccomp-profile.js';
import { UsageError } from '../errors.js';
import { isLogLevel, log, setLogLevel } from '../log.js';
import { parsePlatform } from '../oci/platform.js';
import { dataRoot, envLayerLimits } from '../defaults.js';
import { ISOLATION_ANNOTATION } from '../linux-runtime/engine.js';
import { parseAnnotation, parseContainerName, parseEnvArg, parseEnvFile, parseIsolation, parseLayerLimits, parseMemory, parseNetwork, parsePublish, parseVolume } from './options.js';
import { prepareDataRoot } from '../oci/data-root.js';
import { checkContainerId } from '../oci/names.js';
import type { Paths } from './run-container.js';
import { shortDigest, table } from './table.js';
import { addBuildPushOptions, addRegistryCommands, addRunPullOptions, buildAndPush, imageForRun, isRegistryBuild, parsePullPolicy, REGISTRY_COMMANDS } from './registry-commands.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function paths(program: Command): Paths {
  const g = program.opts<{ root: string; runc?: string; kit?: string; layerLimits?: string }>();
  return {
    root: dataRoot(g.root),
    ...(g.runc ? { runcBinary: g.runc } : {}),
    ...(g.kit ? { kitDir: g.kit } : {}),
    ...(g.layerLimits ? { layerLimits: parseLayerLimits(g.layerLimits) } : {}),
  };
}

/**
 * Commands that write to the data root. Each starts by creating or repairing
 * its private modes, then sweeps what killed commands left (temp files, --rm
 * containers whose run died); each undoes what it made when SIGINT, SIGTERM
 * or SIGHUP stops it (src/interrupt.ts).
 */
const WRITING_COMMANDS = new Set(['run', 'rm', 'import', 'pull', 'push', 'cleanup']);

/** Containers the sweep of this command removed (a `tugboat rm` of one of them has nothing left to do). */
const sweptContainers = new Set<string>();

async function startWriting(p: Paths, command: string): Promise<void> {
  const [{ handleInterrupts }, { sweepTempSpace }, { collectDeadContainers }] = await Promise.all([
    import('../interrupt.js'),
    import('../oci/temp-space.js'),
    import('./containers.js'),
  ]);
  handleInterrupts();
  // Nothing to clean in a root that is gone (a watcher must not bring back a root removed meanwhile).
  if (command === 'cleanup' && !existsSync(p.root)) return;
  await prepareDataRoot(p.root);
  const files = await sweepTempSpace(p.root);
  for (const id of await collectDeadContainers(p)) sweptContainers.add(id);
  if (files + sweptContainers.size > 0) log().info({ files, containers: [...sweptContainers] }, 'removed what killed commands left');
}

const COMMANDS: ReadonlySet<string> = new Set(['run', 'ps', 'rm', 'cleanup', 'image', ...REGISTRY_COMMANDS, 'seccomp-profile', 'version']);

/**
 * The command `args` name (after the global options), when it is one of
 * ours: only that command is then built, not all of them (~70 options, a few
 * ms of every start). Help, --version, an unknown option or command, or none
 * at all builds every command, so commander's help, errors and suggestions
 * are what they always were.
 */
function commandWord(program: Command, args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-')) return COMMANDS.has(arg) ? arg : undefined;
    const flag = arg.split('=', 1)[0];
    const option = program.options.find((o) => o.long === flag || o.short === flag);
    if (option === undefined || option.long === '--version') return undefined;
    if ((option.required || option.optional) && !arg.includes('=')) i++;
  }
  return undefined;
}

function buildProgram(argv: readonly string[]): Command {
  const program = new Command('tugboat');
  // Set before any subcommand is added: commander copies these settings into
  // each subcommand when it is created.
  program.exitOverride();
  program.configureOutput({ outputError: (str, write) => write(`tugboat: ${str.replace(/^error: /, '')}`) });
  program
    .description('Wasm-first container runtime: runs WASI and Linux images side by side, confined by runc')
    .option('-v, --version', 'print version information')
    .addOption(new Option('--root <dir>', 'image store and container data (TUGBOAT_ROOT)').default(dataRoot()))
    .addOption(new Option('--runc <path>', 'runc binary (TUGBOAT_RUNC)'))
    .addOption(new Option('--kit <dir>', 'runtime kit for Wasm containers (TUGBOAT_KIT)'))
    .addOption(new Option('--log-level <level>', 'fatal|error|warn|info|debug|trace (JSON logs on stderr)').default('warn'))
    .addOption(
      new Option('--layer-limits <limits>', 'bounds on unpacking a layer: entries=N,size=SIZE,ratio=N (default entries=200000,size=32g,ratio=100)').default(
        envLayerLimits(),
      ),
    )
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .hook('preAction', async (_program, action) => {
      const level = program.opts<{ logLevel: string }>().logLevel;
      if (!isLogLevel(level)) throw new UsageError(`--log-level: unknown level ${level}`);
      setLogLevel(level);
      if (WRITING_COMMANDS.has(action.name())) await startWriting(paths(program), action.name());
    });
  const only = commandWord(program, argv.slice(2));
  const wanted = (name: string) => only === undefined || only === name;

  if (wanted('run')) addRunPullOptions(program.command('run'))
    .description('run a command in a new container from an image (Wasm or Linux)')
    .argument('<image>', 'oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:TAG], a name from `tugboat image ls`, or HOST/REPO:TAG from a registry')
    .argument('[args...]', 'arguments (replace the image CMD)')
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image (default: Wasm first, then this host)')
    .option('--rm', 'remove the container when it exits', false)
    .option('--name <name>', 'container name (default: random)')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable; KEY alone copies it from here)', collect, [])
    .option('--env-file <file>', 'read environment variables from a file (repeatable)', collect, [])
    .option('-v, --volume <host:ctr[:ro]>', 'bind-mount a host path (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <uid[:gid]>', 'user to run as (numeric or a name from the image)')
    .option('-m, --memory <size>', 'memory limit (e.g. 64m, 1g); exceeding it ends the container with 137')
    .option('--network <mode>', 'none (private, loopback only) or host', 'none')
    .option('--entrypoint <path>', 'replace the image ENTRYPOINT (drops its CMD)')
    .option('-t, --tty', 'allocate a terminal', false)
    .option('--annotation <KEY=VALUE>', 'an OCI annotation, e.g. io.tugboat.wasm.preopens=/data=/mnt/data:ro (repeatable)', collect, [])
    .option('-p, --publish <host:container>', 'serve an HTTP component\'s port on this host\'s network (--isolation process)', collect, [])
    .option('--isolation <level>', 'where a Wasm guest runs: container (its own runc container, the default) or process (inside this process, no runc)')
    .option('--security-opt <opt>', 'seccomp=unconfined, seccomp=PROFILE.json (Docker format) or no-new-privileges; default: Docker\'s seccomp profile', collect, [])
    .passThroughOptions()
    .action(async (image: string, args: string[], o: Record<string, unknown>) => {
      const [{ runContainer }, { parseSecurityOpt }] = await Promise.all([import('./run-container.js'), import('../oci/seccomp.js')]);
      const envFiles = (o.envFile as string[]).flatMap((f) => parseEnvFile(f));
      const envArgs = (o.env as string[]).map((e) => parseEnvArg(e)).filter((e): e is string => e !== undefined);
      const platform = o.platform ? { platform: parsePlatform(o.platform as string) } : {};
      const annotations = Object.fromEntries((o.annotation as string[]).map((a) => parseAnnotation(a)));
      if (o.isolation !== undefined) {
        const level = parseIsolation(o.isolation as string);
        const named = annotations[ISOLATION_ANNOTATION];
        if (named !== undefined && named !== level) throw new UsageError(`--isolation ${level} and --annotation ${ISOLATION_ANNOTATION}=${named} disagree`);
        annotations[ISOLATION_ANNOTATION] = level;
      }
      const ports = (o.publish as string[]).map((p) => parsePublish(p));
      if (ports.length > 0 && annotations[ISOLATION_ANNOTATION] !== 'process') {
        throw new UsageError('-p: port mappings are for --isolation process (in a container, use --network host, or containerd/CNI and Docker)');
      }
      const status = await runContainer({
        ...paths(program),
        image: await imageForRun(paths(program).root, image, parsePullPolicy(o.pull as string), { ...o, ...platform }),
        args,
        ...(o.platform ? { platform: parsePlatform(o.platform as string) } : {}),
        rm: o.rm as boolean,
        ...(o.name ? { name: parseContainerName(o.name as string) } : {}),
        env: [...envFiles, ...envArgs],
        volumes: (o.volume as string[]).map((v) => parseVolume(v)),
        ...(o.workdir ? { workdir: o.workdir as string } : {}),
        ...(o.user ? { user: o.user as string } : {}),
        ...(o.memory ? { memoryBytes: parseMemory(o.memory as string) } : {}),
        network: parseNetwork(o.network as string),
        ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint as string } : {}),
        tty: o.tty as boolean,
        annotations,
        seccomp: parseSecurityOpt(o.securityOpt as string[]),
        ports,
      });
      process.exitCode = status;
    });

  if (wanted('ps')) program
    .command('ps')
    .description('list containers')
    .option('--format <fmt>', 'table or json', 'table')
    .action(async (o: { format: string }) => {
      const { listContainers } = await import('./containers.js');
      const rows = await listContainers(paths(program));
      if (o.format === 'json') process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      else process.stdout.write(table(['CONTAINER', 'IMAGE', 'KIND', 'STATUS', 'CREATED'], rows.map((r) => [r.id, r.image, r.workload, r.status, r.created])));
    });

  if (wanted('rm')) program
    .command('rm')
    .description('remove containers')
    .argument('<container...>')
    .option('-f, --force', 'kill it first if it is running', false)
    .action(async (ids: string[], o: { force: boolean }) => {
      for (const id of ids) checkContainerId(id, 'rm');
      const { removeContainer } = await import('./containers.js');
      for (const id of ids) if (!sweptContainers.has(id)) await removeContainer(paths(program), id, o.force);
    });

  if (wanted('cleanup')) program
    .command('cleanup')
    .description('remove what killed commands left: temp files, and --rm containers whose tugboat run died (stopped first); every command that writes does this first')
    .action(() => {
      // startWriting (the preAction hook) did it.
    });

  if (wanted('image')) addImageCommands(program);
  addRegistryCommands(program, () => paths(program).root, wanted);
  if (wanted('seccomp-profile')) program
    .command('seccomp-profile')
    .description(
      "print the seccomp profile Tugboat gives its own Wasm host: Docker's default plus userfaultfd in user mode only, which lets resets of HTTP components copy back only the pages a request wrote (README: Security model)",
    )
    .addOption(
      new Option('--format <format>', "docker: Docker's format, for docker and podman --security-opt seccomp=FILE; oci: the runtime spec's, for ctr run --seccomp-profile and Kubernetes Localhost profiles through containerd (resolved for this machine and the default capabilities)")
        // Spelled out, not imported: the module loads only when the command runs.
        .choices(['docker', 'oci'] satisfies ProfileFormat[])
        .default('docker'),
    )
    .action(async (o: { format: ProfileFormat }) => {
      const { wasmHostProfileText } = await import('./seccomp-profile.js');
      process.stdout.write(wasmHostProfileText(o.format));
    });

  if (wanted('version')) program
    .command('version')
    .description('print version information')
    .action(async () => {
      const { versionText } = await import('./version-text.js');
      process.stdout.write(versionText() + '\n');
    });

  return program;
}

function addImageCommands(program: Command): void {
  const image = program.command('image').description('build, import, list and remove images');
  addBuildPushOptions(image.command('build'))
    .description('build an image from a .wasm file (platform wasi/wasm, the module as entrypoint)')
    .argument('<wasm>', 'WebAssembly module or component')
    .argument('[args...]', 'default arguments (image CMD); put them after --')
    .option('-o, --output <ref>', 'oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:TAG]')
    .option('--format <format>', 'oci, oci-archive or docker-archive, when -o is a plain path')
    .option('--add-to <ref>', 'add the Wasm manifest to an existing image: the tag of an oci:DIR layout, or HOST/REPO:TAG in a registry (multi-platform index)')
    .option('--artifact', 'write the CNCF Wasm OCI artifact form (application/wasm layer)', false)
    .option('--file <host:ctr>', 'also add a file or directory (repeatable)', collect, [])
    .option('-e, --env <KEY=VALUE>', 'image environment (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'image working directory')
    .option('--module-path <path>', 'path of the module inside the image (default /<file name>)')
    .action(async (wasm: string, args: string[], o: Record<string, unknown>) => {
      const { buildCommand, parseFileMapping } = await import('./image-commands.js');
      const build = {
        wasm,
        artifact: o.artifact as boolean,
        files: (o.file as string[]).map(parseFileMapping),
        args,
        env: o.env as string[],
        ...(o.workdir ? { workingDir: o.workdir as string } : {}),
        ...(o.modulePath ? { modulePath: o.modulePath as string } : {}),
      };
      if (isRegistryBuild(o)) {
        const output = o.output === undefined ? {} : { output: o.format && !/^(oci|oci-archive|docker-archive):/.test(o.output as string) ? `${o.format as string}:${o.output as string}` : (o.output as string) };
        const r = await buildAndPush({ ...build, ...output }, o);
        process.stdout.write(`${r.reference} ${r.digest}\n`);
        return;
      }
      let output = (o.addTo ?? o.output) as string | undefined;
      if (!output) throw new UsageError('image build: give -o REF or --add-to REF');
      if (o.format !== undefined) {
        if (!['oci', 'oci-archive', 'docker-archive'].includes(o.format as string)) {
          throw new UsageError(`--format: unknown format ${JSON.stringify(o.format)} (oci, oci-archive, docker-archive)`);
        }
        if (!/^(oci|oci-archive|docker-archive):/.test(output)) output = `${o.format as string}:${output}`;
      }
      if (o.addTo && o.output) throw new UsageError('image build: -o and --add-to are exclusive');
      const r = await buildCommand({ ...build, output, addTo: o.addTo !== undefined });
      process.stdout.write(`${r.indexDigest ?? r.manifestDigest}\n`);
    });
  image
    .command('import')
    .description('copy an image into the local store')
    .argument('<ref>', 'oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:TAG]')
    .option('--name <name>', 'name in the store (default: the tag)')
    .action(async (ref: string, o: { name?: string }) => {
      const { importCommand } = await import('./image-commands.js');
      const r = await importCommand(paths(program).root, ref, o.name);
      process.stdout.write(`${r.name} ${r.digest}\n`);
    });
  image
    .command('ls')
    .description('list images in the local store')
    .option('--format <fmt>', 'table or json', 'table')
    .action(async (o: { format: string }) => {
      const { listCommand } = await import('./image-commands.js');
      const rows = await listCommand(paths(program).root);
      if (o.format === 'json') process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      else process.stdout.write(table(['NAME', 'DIGEST', 'PLATFORMS'], rows.map((r) => [r.name, shortDigest(r.digest), r.platforms.join(',')])));
    });
  image
    .command('rm')
    .description('remove images from the local store')
    .argument('<name...>')
    .option('-f, --force', 'also when containers use the image: forget the name now, keep its files until they are removed', false)
    .action(async (names: string[], o: { force: boolean }) => (await import('./image-commands.js')).removeCommand(paths(program).root, names, o.force));
}

/** Runs one of Tugboat's own commands; `fail` reports an error and exits. */
export async function runProgram(argv: string[], fail: (err: unknown) => never): Promise<void> {
  const program = buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and --version end here with code 0; parse errors were printed by commander.
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    fail(err);
  }
}
