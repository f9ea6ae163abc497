// Wasm components are transpiled to JavaScript + core modules by jco outside
// the container (in the CLI or shim process, before runc), once per component: the
// result is cached by the component's sha256 and bind-mounted read-only into
// the container, where the WASI host runs it with preview2-shim.
//
//   <cache>/<sha256 hex>/component.mjs        instantiate(getCoreModule, imports)
//   <cache>/<sha256 hex>/component.core*.wasm  its core modules
//   <cache>/<sha256 hex>/meta.json             written last: the entry is complete
//
// An entry is built in a private temp dir and renamed into place, so a reader
// sees a complete entry or none; two containers racing on a miss both build,
// the first rename wins and the loser's copy is dropped.
//
// jco runs in a child process (transpile-child.ts) with bounded memory: a
// 300 MB component needs ~1 GB, and a hostile one could take the CLI or the
// shim (and every container it serves) down with it. The child gets V8 limits
// (JS heap and Wasm memory pages) everywhere, and a memory cgroup holding the
// whole process where Tugboat may create one (root, cgroup v1 or v2); a
// time limit ends a transpile that runs away.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { undoOnInterrupt } from '../interrupt.js';
import { log } from '../log.js';
import { ownedName } from '../owner.js';
import { removeOnInterrupt, sweepComponentTemp } from '../oci/temp-space.js';
import { testPause } from '../test-pause.js';
import { digestFile } from '../oci/digest.js';
import { worldItems } from '../oci/component-wit.js';
import { declaresReuse } from '../oci/component-sections.js';
import { ConfigError, RuntimeError, WasmError } from '../errors.js';
import type { WasmRewriteOptions } from './wasm-bundle.js';
import type { WasmPrepareInput } from './engine.js';
import { resolveInRoot } from '../oci/scoped-path.js';
import { prepareReset, type ResetVerdict } from './component-reset.js';
import { writeGlueScript } from './glue-script.js';

/** Where the cache entry of a container's component appears inside it. */
export const COMPONENT_MOUNT_POINT = '/.tugboat-component';
/** The transpiled entry point inside an entry. */
export const COMPONENT_ENTRY = 'component.mjs';
/** The port an HTTP component is served on (else the guest's PORT, else 8080). */
export const HTTP_PORT_ANNOTATION = 'io.tugboat.http.port';
/** Instances of an HTTP component alive at once per handler thread. */
export const HTTP_POOL_ANNOTATION = 'io.tugboat.http.pool';
/** Handler threads of an HTTP component (default: the CPUs its cgroup allows). */
export const HTTP_THREADS_ANNOTATION = 'io.tugboat.http.threads';
/** `false`: a fresh instance for every request even if the component declares it may be reused. */
export const HTTP_REUSE_ANNOTATION = 'io.tugboat.http.reuse';
/** `false`: make each one-request instance anew instead of putting one back to its state when made (http/reset.ts). */
export const HTTP_RESET_ANNOTATION = 'io.tugboat.http.reset';
/** Bounds of the pool and threads annotations: beyond is a mistake, not a wish. */
export const HTTP_POOL_MAX = 4096;
export const HTTP_THREADS_MAX = 256;
/** Bump when the layout or the transpile options change: older entries are rebuilt. */
export const CACHE_FORMAT = 4;

export type ComponentWorld = 'command' | 'http' | 'unknown';

export interface ComponentMeta {
  format: number;
  /** jco version that transpiled it (the generated glue must match the bundled shim). */
  jco: string;
  sha256: string;
  world: ComponentWorld;
  imports: string[];
  exports: string[];
  /** It declares that an instance may serve many HTTP requests (component-sections.ts). */
  reuse: boolean;
  /** HTTP: an instance that served one request may be put back to its state when made (component-reset.ts). */
  reset: boolean;
  /** HTTP: why not, when it may not. */
  resetRefused?: string;
  /** The entry holds the glue as a script with V8's code cache of it (glue-script.ts), or why not. */
  glueScript: true | { refused: string };
}

export interface CachedComponent {
  /** Host directory of the entry (to bind-mount read-only). */
  dir: string;
  meta: ComponentMeta;
  /** False when this call transpiled it. */
  cached: boolean;
}

function jcoVersion(): string {
  try {
    const url = import.meta.resolve('@bytecodealliance/jco');
    // .../node_modules/@bytecodealliance/jco/dist/api.js → package.json
    const pkg = join(dirname(dirname(new URL(url).pathname)), 'package.json');
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function worldOf(exports: readonly string[]): ComponentWorld {
  if (exports.some((e) => e.startsWith('wasi:http/incoming-handler'))) return 'http';
  if (exports.some((e) => e.startsWith('wasi:cli/run'))) return 'command';
  return 'unknown';
}

async function readMeta(dir: string): Promise<ComponentMeta | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as ComponentMeta;
  } catch {
    return undefined;
  }
}

// Memory the transpiling child may use: src/defaults.ts (TUGBOAT_TRANSPILE_MEMORY).
export { transpileMemoryLimit } from '../defaults.js';
import { transpileMemoryLimit } from '../defaults.js';

const TRANSPILE_TIMEOUT_MS = 300_000;

/** The child's entry point: beside this file (tsc output, or the source under the tests), or under the bundles' dist/. */
function childEntry(): string {
  const candidates = ['./transpile-child.js', './linux-runtime/transpile-child.js', './transpile-child.ts'];
  for (const rel of candidates) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new RuntimeError('cannot find the component transpiler (transpile-child.js); is Tugboat built?');
}

/**
 * A memory cgroup for one child, where this process may make one: cgroup v1's
 * memory hierarchy or the v2 root with the memory controller. Best effort:
 * undefined elsewhere (the V8 limits still hold).
 */
async function childMemoryCgroup(limit: number): Promise<{ dir: string; procs: string } | undefined> {
  // Named after this process: the next command that writes removes those of killed ones (temp-space.ts).
  const name = ownedName('tugboat-transpile-');
  const make = async (parent: string, limitFile: string): Promise<{ dir: string; procs: string }> => {
    const dir = join(parent, name);
    await mkdir(dir);
    await writeFile(join(dir, limitFile), String(limit)).catch(async (err: unknown) => {
      await rmdir(dir);
      throw err;
    });
    return { dir, procs: join(dir, 'cgroup.procs') };
  };
  try {
    if (existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes')) return await make('/sys/fs/cgroup/memory', 'memory.limit_in_bytes');
    const controllers = await readFile('/sys/fs/cgroup/cgroup.subtree_control', 'utf8').catch(() => '');
    if (controllers.split(/\s+/).includes('memory')) return await make('/sys/fs/cgroup', 'memory.max');
  } catch (err) {
    log().debug({ err: (err as Error).message }, 'no memory cgroup for the transpiler; V8 limits only');
  }
  return undefined;
}

interface ChildReport {
  sha256?: string;
  wit?: string;
  error?: string;
}

/** Transpiles the component file into `dir` (which must not exist) in a bounded child; returns its WIT. */
async function transpileInChild(hostPath: string, dir: string, sha256: string): Promise<string> {
  const limit = transpileMemoryLimit();
  const mib = Math.floor(limit / 1024 ** 2);
  await mkdir(dir, { mode: 0o755 });
  const args = [
    // Most of the JS heap, and each Wasm memory (jco's own transpiler is Wasm), stay under the limit.
    `--max-old-space-size=${Math.max(64, Math.floor(mib * 0.75))}`,
    `--wasm-max-mem-pages=${Math.floor(limit / 65536)}`,
    '--disable-warning=ExperimentalWarning',
    childEntry(),
    hostPath,
    dir,
  ];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  child.stdin.on('error', () => undefined);
  let cgroup: { dir: string; procs: string } | undefined;
  // Interrupted: the child goes first (it writes into the temp dir removed next), then its cgroup.
  const forget = undoOnInterrupt(() => {
    child.kill('SIGKILL');
    if (cgroup) removeCgroupSync(cgroup.dir);
  });
  cgroup = await childMemoryCgroup(limit);
  if (cgroup && child.pid !== undefined) await writeFile(cgroup.procs, String(child.pid)).catch(() => undefined);
  testPause('transpile');
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4096)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, TRANSPILE_TIMEOUT_MS);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  })
    .finally(async () => {
      clearTimeout(timer);
      child.stdin.end();
      if (cgroup) await rmdir(cgroup.dir).catch(() => undefined);
    })
    .finally(forget);

  let report: ChildReport = {};
  try {
    report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as ChildReport;
  } catch {
    // judged by the exit below
  }
  if (code === 0 && typeof report.wit === 'string') {
    if (report.sha256 !== sha256) throw new WasmError('cannot transpile Wasm component: the file changed while it was being transpiled');
    return report.wit;
  }
  if (typeof report.error === 'string') throw new WasmError(`cannot transpile Wasm component: ${report.error}`);
  if (timedOut) throw new WasmError(`cannot transpile Wasm component: it took longer than ${TRANSPILE_TIMEOUT_MS / 1000} s`);
  if (signal === 'SIGKILL' || /out of memory|heap limit|allocation failed/i.test(stderr)) {
    throw new WasmError(`cannot transpile Wasm component: it needs more than ${mib} MiB of memory (TUGBOAT_TRANSPILE_MEMORY raises the limit)`);
  }
  const last = stderr.trim().split('\n').at(-1) ?? '';
  throw new RuntimeError(`component transpiler failed (${signal ?? `status ${code}`})${last ? `: ${last}` : ''}`);
}

/** Transpiles the component at `hostPath` into `dir` (which must not exist) and writes its meta.json. */
async function transpileInto(hostPath: string, dir: string, sha256: string, jco: string): Promise<ComponentMeta> {
  const wit = await transpileInChild(hostPath, dir, sha256);
  const { imports, exports } = worldItems(wit);
  const reuse = declaresReuse(await readFile(hostPath));
  const world = worldOf(exports);
  const verdict: ResetVerdict = world === 'http' ? await prepareReset(dir, COMPONENT_ENTRY) : { reset: false, why: 'not an HTTP component' };
  // After the reset's patch: the script is made of the glue the host runs.
  const scriptRefused = await writeGlueScript(dir, await readFile(join(dir, COMPONENT_ENTRY), 'utf8'));
  const meta: ComponentMeta = {
    format: CACHE_FORMAT,
    jco,
    sha256,
    world,
    imports,
    exports,
    reuse,
    reset: verdict.reset,
    ...(verdict.reset ? {} : { resetRefused: verdict.why }),
    glueScript: scriptRefused === undefined ? true : { refused: scriptRefused },
  };
  await writeFile(join(dir, 'meta.json'), JSON.stringify(meta), { mode: 0o444 });
  return meta;
}

/**
 * The cache entry of the component at `hostPath`, transpiling it on a miss.
 * A hit costs one file hash and one small read.
 */
export async function ensureTranspiled(hostPath: string, cacheDir: string): Promise<CachedComponent> {
  const sha256 = (await digestFile(hostPath)).digest.slice('sha256:'.length);
  const dir = join(cacheDir, sha256);
  const jco = jcoVersion();
  const existing = await readMeta(dir);
  if (existing && existing.format === CACHE_FORMAT && existing.jco === jco && existing.sha256 === sha256) {
    log().debug({ sha256, dir }, 'component cache hit');
    return { dir, meta: existing, cached: true };
  }
  // Private like the rest of the data root (data-root.ts); created so, repaired so.
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  await chmod(cacheDir, 0o700);
  // The shim and the OCI CLI transpile here too, with no sweep of their own: a miss sweeps.
  await sweepComponentTemp(cacheDir);
  const tmp = join(cacheDir, ownedName('.tmp-'));
  const forgetTmp = removeOnInterrupt(tmp);
  const started = performance.now();
  try {
    const meta = await transpileInto(hostPath, tmp, sha256, jco);
    if (existing) {
      // A stale entry (older jco or format): move it aside first. Running
      // containers keep their bind mount of the old directory.
      const old = join(cacheDir, ownedName('.old-'));
      await rename(dir, old).catch(() => undefined);
      void rm(old, { recursive: true, force: true });
    }
    try {
      await rename(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // Another container won the race; its entry is as good as ours.
      await rm(tmp, { recursive: true, force: true });
      const theirs = await readMeta(dir);
      if (!theirs) throw err;
      return { dir, meta: theirs, cached: true };
    }
    log().debug({ sha256, dir, ms: Math.round(performance.now() - started) }, 'component transpiled');
    return { dir, meta, cached: false };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    forgetTmp();
  }
}

/** rmdir of a cgroup whose processes were just killed: they take a moment to leave it. */
function removeCgroupSync(dir: string): void {
  for (let i = 0; i < 100; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/** An io.tugboat.http.* count: absent, or an integer in [1, max]; anything else is a clear error. */
function countAnnotation(annotations: Record<string, string>, key: string, max: number): number | undefined {
  const raw = annotations[key];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(n) || n < 1 || n > max) {
    throw new ConfigError(`annotation ${key}=${raw}: expected a whole number from 1 to ${max}`);
  }
  return n;
}

/** The io.tugboat.http.* annotations, checked before anything is transpiled. */
export function httpAnnotations(annotations: Record<string, string>): { port?: number; pool?: number; threads?: number; noReuse?: true; noReset?: true } {
  const port = Number(annotations[HTTP_PORT_ANNOTATION]);
  const pool = countAnnotation(annotations, HTTP_POOL_ANNOTATION, HTTP_POOL_MAX);
  const threads = countAnnotation(annotations, HTTP_THREADS_ANNOTATION, HTTP_THREADS_MAX);
  const noReuse = turnedOff(annotations, HTTP_REUSE_ANNOTATION, 'a fresh instance for every request', 'a component declares itself that its instances may be reused');
  const noReset = turnedOff(annotations, HTTP_RESET_ANNOTATION, 'make every instance anew', 'instances are reset wherever the component allows it');
  return {
    ...(Number.isInteger(port) && port > 0 && port < 65536 ? { port } : {}),
    ...(pool !== undefined ? { pool } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(noReuse ? { noReuse: true as const } : {}),
    ...(noReset ? { noReset: true as const } : {}),
  };
}

/** An io.tugboat.http.* switch that can only be turned off: true for `false`, absent or empty is false, anything else a clear error. */
function turnedOff(annotations: Record<string, string>, key: string, off: string, why: string): boolean {
  const raw = annotations[key];
  if (raw !== undefined && raw !== '' && raw !== 'false') throw new ConfigError(`annotation ${key}=${raw}: only false (${off}) is accepted; ${why}`);
  return raw === 'false';
}

/**
 * What `rewriteSpecForWasm` needs for the component at `hostPath`
 * (`containerPath` inside the container): its cache entry, transpiled now on
 * a miss, and how an HTTP component is served.
 */
export async function componentRewriteOptions(
  hostPath: string,
  containerPath: string,
  cacheDir: string,
  annotations: Record<string, string>,
): Promise<Required<Pick<WasmRewriteOptions, 'component'>>> {
  const { noReuse, noReset, ...http } = httpAnnotations(annotations);
  const entry = await ensureTranspiled(hostPath, cacheDir);
  const { reuse, reset, resetRefused } = entry.meta;
  const served = entry.meta.world === 'http' ? { reuse, reset, ...(resetRefused !== undefined && !reset ? { resetRefused } : {}) } : {};
  const glueScript = entry.meta.glueScript === true ? true : entry.meta.glueScript?.refused;
  log().info({ component: containerPath, sha256: entry.meta.sha256, world: entry.meta.world, ...served, glueScript, cached: entry.cached }, 'wasm component');
  return {
    component: {
      source: entry.dir,
      dir: COMPONENT_MOUNT_POINT,
      entry: COMPONENT_ENTRY,
      world: entry.meta.world,
      ...(entry.meta.world === 'http' ? { ...http, ...(reuse && !noReuse ? { reuse: true } : {}), ...(reset && !noReset ? { reset: true } : {}) } : {}),
    },
  };
}

/** A component entrypoint: its transpiled cache entry (transpiled now on a miss); nothing for a module. */
export async function componentForWorkload(input: WasmPrepareInput): Promise<Pick<WasmRewriteOptions, 'component'>> {
  const { entrypoint, kind } = input.workload;
  if (kind !== 'wasm-component' || entrypoint === undefined) return {};
  const hostPath = resolveInRoot(input.rootfs, entrypoint);
  if (hostPath === undefined) return {};
  return componentRewriteOptions(hostPath, entrypoint, input.settings.componentCacheDir, input.spec.annotations ?? {});
}
