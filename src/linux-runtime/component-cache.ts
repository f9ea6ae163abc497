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
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { log } from '../log.js';
import { worldItems } from '../oci/component-wit.js';
import { WasmError } from '../errors.js';
import type { WasmRewriteOptions } from './wasm-bundle.js';

/** Where the cache entry of a container's component appears inside it. */
export const COMPONENT_MOUNT_POINT = '/.tugboat-component';
/** The transpiled entry point inside an entry. */
export const COMPONENT_ENTRY = 'component.mjs';
/** The port an HTTP component is served on (else the guest's PORT, else 8080). */
export const HTTP_PORT_ANNOTATION = 'io.tugboat.http.port';
/** Bump when the layout or the transpile options change: older entries are rebuilt. */
export const CACHE_FORMAT = 1;

export type ComponentWorld = 'command' | 'http' | 'unknown';

export interface ComponentMeta {
  format: number;
  /** jco version that transpiled it (the generated glue must match the bundled shim). */
  jco: string;
  sha256: string;
  world: ComponentWorld;
  imports: string[];
  exports: string[];
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

/** Transpiles `bytes` with jco into `dir` (which must not exist). */
async function transpileInto(bytes: Uint8Array, dir: string, sha256: string, jco: string): Promise<ComponentMeta> {
  const api = await import('@bytecodealliance/jco');
  let wit: string;
  let files: Record<string, Uint8Array>;
  try {
    wit = await api.componentWit(bytes);
    ({ files } = await api.transpile(bytes, { name: 'component', instantiation: 'async', noTypescript: true, quiet: true }));
  } catch (err) {
    throw new WasmError(`cannot transpile Wasm component: ${(err as Error).message ?? String(err)}`);
  }
  const { imports, exports } = worldItems(wit);
  const meta: ComponentMeta = { format: CACHE_FORMAT, jco, sha256, world: worldOf(exports), imports, exports };
  await mkdir(dir, { recursive: true, mode: 0o755 });
  for (const [name, data] of Object.entries(files)) {
    if (name.endsWith('.d.ts')) continue;
    // The glue is ESM; .mjs makes Node load it as such without a package.json.
    const out = name === 'component.js' ? COMPONENT_ENTRY : name;
    if (out.includes('/') || out.startsWith('.')) continue;
    await writeFile(join(dir, out), data, { mode: 0o444 });
  }
  await writeFile(join(dir, 'meta.json'), JSON.stringify(meta), { mode: 0o444 });
  return meta;
}

/**
 * The cache entry of the component at `hostPath`, transpiling it on a miss.
 * A hit costs one file hash and one small read.
 */
export async function ensureTranspiled(hostPath: string, cacheDir: string): Promise<CachedComponent> {
  const bytes = await readFile(hostPath);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const dir = join(cacheDir, sha256);
  const jco = jcoVersion();
  const existing = await readMeta(dir);
  if (existing && existing.format === CACHE_FORMAT && existing.jco === jco && existing.sha256 === sha256) {
    log().debug({ sha256, dir }, 'component cache hit');
    return { dir, meta: existing, cached: true };
  }
  await mkdir(cacheDir, { recursive: true, mode: 0o755 });
  const tmp = join(cacheDir, `.tmp-${sha256.slice(0, 16)}-${randomBytes(6).toString('hex')}`);
  const started = performance.now();
  try {
    const meta = await transpileInto(bytes, tmp, sha256, jco);
    if (existing) {
      // A stale entry (older jco or format): move it aside first. Running
      // containers keep their bind mount of the old directory.
      const old = join(cacheDir, `.old-${sha256.slice(0, 16)}-${randomBytes(6).toString('hex')}`);
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
  }
}

/**
 * What `rewriteSpecForWasm` needs for the component at `hostPath`
 * (`containerPath` inside the container): its cache entry, transpiled now on
 * a miss, and the port an HTTP component serves on.
 */
export async function componentRewriteOptions(
  hostPath: string,
  containerPath: string,
  cacheDir: string,
  annotations: Record<string, string>,
): Promise<Required<Pick<WasmRewriteOptions, 'component'>>> {
  const entry = await ensureTranspiled(hostPath, cacheDir);
  log().info({ component: containerPath, sha256: entry.meta.sha256, world: entry.meta.world, cached: entry.cached }, 'wasm component');
  const port = Number(annotations[HTTP_PORT_ANNOTATION]);
  return {
    component: {
      source: entry.dir,
      dir: COMPONENT_MOUNT_POINT,
      entry: COMPONENT_ENTRY,
      world: entry.meta.world,
      ...(Number.isInteger(port) && port > 0 && port < 65536 ? { port } : {}),
    },
  };
}
