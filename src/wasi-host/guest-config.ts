// The contract between the bundle rewrite (which runs outside the container)
// and the WASI host (which runs as the container's init). It travels in one
// environment variable so that the user's bundle and argv stay untouched and
// nothing of the user's environment (NODE_OPTIONS, say) reaches Node itself.

export const GUEST_ENV_VAR = 'TUGBOAT_GUEST';

export interface GuestConfig {
  /** argv of the guest; args[0] is its argv[0] as the user wrote it. */
  args: string[];
  /** The guest's environment as KEY=VALUE strings, exactly as in the OCI spec. */
  env: string[];
  /**
   * Directories the guest sees, in registration order. Absent: the container
   * root as "/", then the working directory as "." (see defaultPreopens).
   */
  preopens?: Preopen[];
  /** Host path of the guest's root directory: "/" inside a container (default), a rootfs directory at `process` level. */
  root?: string;
  /** The working directory inside the root (default: the process's own, which runc sets). */
  cwd?: string;
  /**
   * The module's path inside the root, resolved from args[0] once by detection
   * (PATH lookup in the root filesystem). Absent: the host resolves args[0]
   * itself through the same kernel-resolved opens (a module on a volume, an
   * exec'd module).
   */
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
  /** The name the guest sees ("/", ".", "/data"). */
  guest: string;
  /** The directory inside the root. */
  path: string;
  /** The guest may not change anything below it (enforced with rights). */
  readonly?: boolean;
}

/**
 * The container root, `extra` directories, then the working directory as
 * ".". wasi-libc makes a relative path absolute against its own cwd ("/")
 * unless a "." preopen is registered after "/", so this order is what makes
 * relative paths land in the container's working directory.
 */
export function defaultPreopens(cwd: string, extra: readonly Preopen[] = []): Preopen[] {
  return [{ guest: '/', path: '/' }, ...extra, ...(cwd === '/' ? [] : [{ guest: '.', path: cwd }])];
}

/** node:wasi takes preopens as an object; its key order is the registration order. */
export function preopenRecord(preopens: readonly Preopen[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of preopens) out[p.guest] = p.path;
  return out;
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
  /** HTTP components: instances alive at once per handler thread (io.tugboat.http.pool). */
  pool?: number;
  /** HTTP components: handler threads (io.tugboat.http.threads); else the CPUs the cgroup allows. */
  threads?: number;
  /** HTTP components: an instance may serve many requests (the component declares it, see component-sections.ts). */
  reuse?: boolean;
  /** HTTP components: a one-request instance may be put back to its state when made (the transpile found it can: component-cache.ts). */
  reset?: boolean;
  /** The container's seccomp filter lets its host call userfaultfd, or refuses it with an errno (http/written-pages.ts). */
  userfaultfd?: boolean;
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
  return c.preopens === undefined || (Array.isArray(c.preopens) && c.preopens.every(isPreopen));
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
    (c.port === undefined || (Number.isInteger(c.port) && (c.port as number) > 0 && (c.port as number) < 65536)) &&
    (c.pool === undefined || (Number.isInteger(c.pool) && (c.pool as number) > 0)) &&
    (c.threads === undefined || (Number.isInteger(c.threads) && (c.threads as number) > 0)) &&
    (c.reuse === undefined || typeof c.reuse === 'boolean') &&
    (c.reset === undefined || typeof c.reset === 'boolean') &&
    (c.userfaultfd === undefined || typeof c.userfaultfd === 'boolean')
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
