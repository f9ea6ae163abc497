// The registry side of the CLI: `pull`, `push`, `login`, `logout`, the pull
// of `run --pull`, and `image build --push/--add-to REGISTRY-REF`. Only the
// option wiring lives at top level; the client, node:https and TLS code, and
// even the image store, are imported when a command uses them, so that every
// other command starts as lean as before.

import { tmpdir } from 'node:os';
import type { Command } from 'commander';
import { Option } from 'commander';
import { UsageError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import { formatRegistryRef, looksLikeRegistryRef, parseRegistryHost, parseRegistryRef } from '../oci/registry/reference.js';
import type { Platform } from '../oci/types.js';
import type { BuildCommandOptions } from './image-commands.js';
import { parseSize } from './options.js';

export type PullPolicy = 'always' | 'missing' | 'never';

/** Registry options as commander hands them over. */
interface RegistryFlags {
  tlsVerify?: string | boolean;
  certDir?: string;
  authfile?: string;
  logFormat?: string;
}

const TRANSPORTS = /^(oci|oci-archive|docker-archive):/;

function parseBool(flag: string): (v: string) => boolean {
  return (v) => {
    if (/^(true|1|yes)$/i.test(v)) return true;
    if (/^(false|0|no)$/i.test(v)) return false;
    throw new UsageError(`${flag}: expected true or false, got ${JSON.stringify(v)}`);
  };
}

/** --tls-verify, --cert-dir, --authfile: podman's names, on every command that talks to a registry. */
export function addRegistryFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--tls-verify <bool>', 'verify TLS certificates (true|false); false also allows plain HTTP').argParser(parseBool('--tls-verify')).default(true))
    .option('--cert-dir <dir>', 'CA certificates (*.crt) and client certificates (*.cert, *.key) for the registry; DIR/<host:port>/ is used when present')
    .option('--authfile <file>', 'credentials file (default: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json)');
}

function withLogFormat(cmd: Command): Command {
  return cmd.addOption(new Option('--log-format <format>', 'progress: text (bytes per blob on a terminal) or json (JSON lines on stderr)').choices(['text', 'json']).default('text'));
}

function transportOptions(o: RegistryFlags): { tlsVerify: boolean; certDir?: string; authFile?: string } {
  return { tlsVerify: o.tlsVerify !== false, ...(o.certDir ? { certDir: o.certDir } : {}), ...(o.authfile ? { authFile: o.authfile } : {}) };
}

async function progressFor(o: RegistryFlags, action: 'pull' | 'push') {
  const { createProgress } = await import('../oci/registry/progress.js');
  return createProgress(o.logFormat === 'json' ? 'json' : 'text', action);
}

export interface PullRequest extends RegistryFlags {
  root: string;
  reference: string;
  platform?: Platform;
  allPlatforms?: boolean;
}

export async function pullCommand(r: PullRequest) {
  const { pullImage } = await import('../oci/registry/pull.js');
  return pullImage({
    root: r.root,
    reference: r.reference,
    ...transportOptions(r),
    ...(r.platform ? { platform: r.platform } : {}),
    allPlatforms: r.allPlatforms === true,
    progress: await progressFor(r, 'pull'),
  });
}

/**
 * The image `tugboat run` should use: a transport reference or a store name
 * as given; a registry reference ("host/repo:tag", "repo:tag") is pulled
 * first as `policy` says (podman's --pull) and run by its store name.
 */
export async function imageForRun(root: string, image: string, policy: PullPolicy, flags: RegistryFlags & { platform?: Platform }): Promise<string> {
  if (TRANSPORTS.test(image)) return image;
  const { ImageStore } = await import('../oci/store.js');
  const store = new ImageStore(root);
  if (policy !== 'always' && (await store.has(image))) return image;
  if (!looksLikeRegistryRef(image)) return image;
  const name = formatRegistryRef(parseRegistryRef(image));
  if (policy !== 'always' && (await store.has(name))) return name;
  if (policy === 'never') return name;
  const r = await pullCommand({ root, reference: image, ...flags });
  return r.name;
}

export function parsePullPolicy(v: string): PullPolicy {
  if (v === 'always' || v === 'missing' || v === 'never') return v;
  // podman's aliases
  if (v === 'true') return 'always';
  if (v === 'false') return 'never';
  throw new UsageError(`--pull: expected always, missing or never, got ${JSON.stringify(v)}`);
}

/** `run` options for images from a registry. */
export function addRunPullOptions(cmd: Command): Command {
  return addRegistryFlags(cmd.option('--pull <policy>', 'pull a registry image: always, missing (default) or never', 'missing'));
}

/** `image build` options for sending the result to a registry. */
export function addBuildPushOptions(cmd: Command): Command {
  return withLogFormat(
    addRegistryFlags(cmd.option('--push <ref>', 'push the built image to a registry (HOST/REPO:TAG)').option('--chunk-size <size>', 'upload in chunks of SIZE (e.g. 8m) instead of one request')),
  );
}

/** True when `image build` must talk to a registry (--push, or --add-to naming a registry image). */
export function isRegistryBuild(o: { push?: string; addTo?: string }): boolean {
  return o.push !== undefined || (o.addTo !== undefined && !TRANSPORTS.test(o.addTo));
}

function chunkSize(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = parseSize(String(v), '--chunk-size');
  if (n < 1024) throw new UsageError(`--chunk-size: ${String(v)} is below 1 KiB`);
  return n;
}

/**
 * Builds into `-o` (or a private temp layout) and pushes to the registry:
 * `--push REF` as a new image, `--add-to REF` into the index already there.
 */
export async function buildAndPush(build: Omit<BuildCommandOptions, 'output' | 'addTo'> & { output?: string }, o: RegistryFlags & { push?: string; addTo?: string; chunkSize?: string }): Promise<{ reference: string; digest: string }> {
  const destination = o.addTo ?? (o.push as string);
  if (o.push !== undefined && o.addTo !== undefined && o.push !== o.addTo) throw new UsageError('--push and --add-to name different images; give one');
  parseRegistryRef(destination);
  const [{ openOciLayout, openImageSource, parseImageRef }, { buildCommand }, { makeOwnedDir }] = await Promise.all([
    import('../oci/image-source.js'),
    import('./image-commands.js'),
    import('../oci/temp-space.js'),
  ]);
  // The build's own temp dir (no data root is needed to build and push).
  const tmp = await makeOwnedDir(tmpdir(), 'tugboat-build');
  try {
    const output = build.output ?? `oci:${tmp.path}:latest`;
    const ref = parseImageRef(output);
    await buildCommand({ ...build, output, addTo: false });
    const source = ref.transport === 'oci' ? openOciLayout(ref.path) : await openImageSource(ref, tmp.path);
    try {
      const push = await import('../oci/registry/push.js');
      const top = await push.topDescriptor(source, ref.tag ?? 'latest');
      const size = chunkSize(o.chunkSize);
      const opts = { destination, ...transportOptions(o), progress: await progressFor(o, 'push'), ...(size ? { chunkSize: size } : {}) };
      return o.addTo !== undefined ? await push.pushAddTo(source, top, opts) : await push.pushImage(source, top, opts);
    } finally {
      await source.close();
    }
  } finally {
    await tmp.remove();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a line from the terminal; `secret` turns echo off (a password). */
async function prompt(question: string, secret: boolean): Promise<string> {
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (secret) {
    // readline echoes through _writeToOutput; show the question only.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
      if (s.startsWith(question)) process.stderr.write(question);
    };
  }
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    if (secret) process.stderr.write('\n');
    rl.close();
  }
}

/** The commands addRegistryCommands adds, in order. */
export const REGISTRY_COMMANDS = ['pull', 'push', 'login', 'logout'] as const;

/** Adds the registry commands `wanted` names (all by default). */
export function addRegistryCommands(program: Command, root: () => string, wanted: (name: string) => boolean = () => true): void {
  if (wanted('pull')) withLogFormat(
    addRegistryFlags(
      program
        .command('pull')
        .description('pull an image from a registry into the store and unpack it (Wasm platform first)')
        .argument('<ref>', 'HOST[:PORT]/REPO[:TAG|@DIGEST], or REPO:TAG on Docker Hub')
        .option('--platform <os/arch>', 'platform to pull from a multi-platform image (default: Wasm first, then this host)')
        .option('--all-platforms', 'store every platform of the image', false),
    ),
  ).action(async (reference: string, o: RegistryFlags & { platform?: string; allPlatforms: boolean }) => {
    const { platform, ...flags } = o;
    const r = await pullCommand({ ...flags, root: root(), reference, ...(platform ? { platform: parsePlatform(platform) } : {}) });
    process.stdout.write(`${r.name} ${r.digest}\n`);
  });

  if (wanted('push')) withLogFormat(
    addRegistryFlags(
      program
        .command('push')
        .description('push an image (every platform) from the store, or an oci:/oci-archive:/docker-archive: reference, to a registry')
        .argument('<name>', 'a store name (tugboat image ls) or a transport reference')
        .argument('[ref]', 'destination HOST[:PORT]/REPO[:TAG] (default: NAME, when it is one)')
        .option('--chunk-size <size>', 'upload in chunks of SIZE (e.g. 8m) instead of one request'),
    ),
  ).action(async (name: string, dest: string | undefined, o: RegistryFlags & { chunkSize?: string }) => {
    const destination = dest ?? name;
    if (!looksLikeRegistryRef(destination)) throw new UsageError(`push: ${JSON.stringify(destination)} is not a registry reference; give HOST[:PORT]/REPO:TAG`);
    const push = await import('../oci/registry/push.js');
    const [{ openImageSource, parseImageRef }, { tempSpace }] = await Promise.all([import('../oci/image-source.js'), import('../oci/temp-space.js')]);
    let source;
    let tag: string | undefined;
    if (TRANSPORTS.test(name)) {
      const ref = parseImageRef(name);
      source = await openImageSource(ref, tempSpace(root()));
      tag = ref.tag;
    } else {
      const { ImageStore } = await import('../oci/store.js');
      source = new ImageStore(root()).source();
      tag = name;
    }
    try {
      const top = await push.topDescriptor(source, tag);
      // An image pulled from another repository of the same registry: its blobs can be mounted.
      let mountFrom: string | undefined;
      if (!TRANSPORTS.test(name) && looksLikeRegistryRef(name)) {
        const from = parseRegistryRef(name);
        const to = parseRegistryRef(destination);
        if (from.registry === to.registry && from.repository !== to.repository) mountFrom = from.repository;
      }
      const size = chunkSize(o.chunkSize);
      const r = await push.pushImage(source, top, {
        destination,
        ...transportOptions(o),
        progress: await progressFor(o, 'push'),
        ...(mountFrom ? { mountFrom } : {}),
        ...(size ? { chunkSize: size } : {}),
      });
      process.stdout.write(`${r.reference} ${r.digest}\n`);
    } finally {
      await source.close();
    }
  });

  if (wanted('login')) addRegistryFlags(
    program
      .command('login')
      .description('log in to a registry; credentials go where Docker keeps them (config.json, mode 0600, or its credsStore helper)')
      .argument('<registry>', 'HOST[:PORT]')
      .option('-u, --username <user>', 'user name (asked on a terminal when missing)')
      .option('-p, --password <password>', 'password (visible to other users in ps; prefer --password-stdin)')
      .option('--password-stdin', 'read the password from stdin', false),
  ).action(async (registryArg: string, o: RegistryFlags & { username?: string; password?: string; passwordStdin: boolean }) => {
    const registry = parseRegistryHost(registryArg);
    if (o.password !== undefined && o.passwordStdin) throw new UsageError('login: --password and --password-stdin are exclusive');
    let username = o.username;
    if (username === undefined) {
      if (!process.stdin.isTTY || o.passwordStdin) throw new UsageError('login: give --username (no terminal to ask on)');
      username = (await prompt('Username: ', false)).trim();
    }
    let password = o.password;
    if (o.passwordStdin) password = (await readStdin()).replace(/\r?\n$/, '');
    else if (password === undefined) {
      if (!process.stdin.isTTY) throw new UsageError('login: give --password-stdin (no terminal to ask on)');
      password = await prompt('Password: ', true);
    }
    if (!username || !password) throw new UsageError('login: username and password must not be empty');
    const { RegistryClient } = await import('../oci/registry/client.js');
    const { storeCredentials } = await import('../oci/registry/credentials.js');
    const client = new RegistryClient(registry, 'library/tugboat-login', { ...transportOptions(o), credentials: { username, password } });
    try {
      await client.ping();
    } finally {
      client.close();
    }
    const where = await storeCredentials(registry, username, password, o.authfile);
    process.stderr.write(`credentials saved in ${where}\n`);
    process.stdout.write('Login Succeeded\n');
  });

  if (wanted('logout')) program
    .command('logout')
    .description('remove the credentials of a registry')
    .argument('<registry>', 'HOST[:PORT]')
    .option('--authfile <file>', 'credentials file (default as for login)')
    .action(async (registryArg: string, o: { authfile?: string }) => {
      const registry = parseRegistryHost(registryArg);
      const { eraseCredentials } = await import('../oci/registry/credentials.js');
      if (await eraseCredentials(registry, o.authfile)) process.stdout.write(`Removed login credentials for ${registry}\n`);
      else process.stderr.write(`Not logged in to ${registry}\n`);
    });
}
