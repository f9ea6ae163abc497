// The contract between the bundle rewrite (which runs outside the container)
// and the WASI host (which runs as the container's init). It travels in one
// environment variable so that the user's bundle and argv stay untouched and
// nothing of the user's environment (NODE_OPTIONS, say) reaches Node itself.

export const GUEST_ENV_VAR = 'TUGBOAT_GUEST';

export interface GuestConfig {
  /** argv of the guest; args[0] names the module (a path inside the container). */
  args: string[];
  /** The guest's environment as KEY=VALUE strings, exactly as in the OCI spec. */
  env: string[];
  /**
   * Directories the guest sees, in order (guest path → container path).
   * Default: the root as "/", then the working directory as ".". The older
   * object form ({"/": "/"}) is accepted too.
   */
  preopens?: Preopen[] | Record<string, string>;
  /** Host path of the guest's root directory: "/" inside a container (default), a rootfs directory at `process` level. */
  root?: string;
  /** The working directory inside the root (default: the process's own, which runc sets). */
  cwd?: string;
  /** The module's path inside the root, when detection already resolved it; else args[0] is looked up (PATH rule). */
  module?: string;
  /** Which preview1 implementation runs a core module: Tugboat's own (default) or node:wasi (annotation io.tugboat.wasi=uvwasi). */
  backend?: WasiBackend;
  /**
   * Set for a Wasm component: where its transpiled form (jco output, see
   * src/linux-runtime/component-cache.ts) is mounted inside the container.
   * Without it the host runs args[0] as a preview1 core module.
   */
  component?: GuestComponent;
}

export type WasiBackend = 'tugboat' | 'uvwasi';
export const WASI_BACKENDS: readonly WasiBackend[] = ['tugboat', 'uvwasi'];

export interface Preopen {
  guest: string;
  path: string;
  readonly?: boolean;
}

/** The preopens as an ordered list, whichever form the config used; undefined means the default. */
export function guestPreopens(config: GuestConfig): Preopen[] | undefined {
  const p = config.preopens;
  if (p === undefined) return undefined;
  if (Array.isArray(p)) return p;
  return Object.entries(p).map(([guest, path]) => ({ guest, path }));
}

/**
 * The preopens of a container's guest when none are configured: the root as
 * "/", then the working directory as "." (wasi-libc resolves a relative path
 * against the last preopen that matches, so the order is what makes relative
 * paths land in the working directory).
 */
export function defaultPreopens(cwd: string): Preopen[] {
  return cwd === '/' ? [{ guest: '/', path: '/' }] : [{ guest: '/', path: '/' }, { guest: '.', path: cwd }];
}

export interface GuestComponent {
  /** Container path of the read-only transpile cache entry. */
  dir: string;
  /** The ESM file in `dir` that exports instantiate(getCoreModule, imports). */
  entry: string;
  /** What the component exports: a command (wasi:cli/run) or an HTTP handler. */
  world: 'command' | 'http' | 'unknown';
  /** HTTP components: the port to serve on (io.tugboat.http.port); else PORT, else 8080. */
  port?: number;
}

export function encodeGuestConfig(config: GuestConfig): string {
  return JSON.stringify(config);
}

export function decodeGuestConfig(raw: string | undefined): GuestConfig {
  if (raw === undefined || raw === '') throw new Error(`${GUEST_ENV_VAR} is not set: the host must be started by Tugboat`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new Error(`${GUEST_ENV_VAR} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isGuestConfig(parsed)) throw new Error(`${GUEST_ENV_VAR} does not describe a guest (args, env)`);
  return parsed;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function isGuestConfig(v: unknown): v is GuestConfig {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  if (!isStringArray(c.args) || c.args.length === 0 || !isStringArray(c.env)) return false;
  if (c.component !== undefined && !isGuestComponent(c.component)) return false;
  for (const k of ['root', 'cwd', 'module'] as const) if (c[k] !== undefined && (typeof c[k] !== 'string' || !(c[k] as string).startsWith('/'))) return false;
  if (c.backend !== undefined && !WASI_BACKENDS.includes(c.backend as WasiBackend)) return false;
  if (c.preopens === undefined) return true;
  if (Array.isArray(c.preopens)) return c.preopens.every(isPreopen);
  return typeof c.preopens === 'object' && c.preopens !== null && Object.values(c.preopens).every((x) => typeof x === 'string');
}

function isPreopen(v: unknown): v is Preopen {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return typeof p.guest === 'string' && p.guest !== '' && typeof p.path === 'string' && p.path.startsWith('/') && (p.readonly === undefined || typeof p.readonly === 'boolean');
}

function isGuestComponent(v: unknown): v is GuestComponent {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  return (
    typeof c.dir === 'string' &&
    c.dir.startsWith('/') &&
    typeof c.entry === 'string' &&
    /^[\w.-]+$/.test(c.entry) &&
    (c.world === 'command' || c.world === 'http' || c.world === 'unknown') &&
    (c.port === undefined || (Number.isInteger(c.port) && (c.port as number) > 0 && (c.port as number) < 65536))
  );
}

/** KEY=VALUE list → object; later keys win, entries without '=' are dropped (as execve would keep them, WASI cannot). */
export function envListToObject(env: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of env) {
    const eq = kv.indexOf('=');
    if (eq > 0) out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}
