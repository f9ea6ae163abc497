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
  /** Guest path → container path. Defaults to {"/": "/"}: the container root. */
  preopens?: Record<string, string>;
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
  if (c.preopens === undefined) return true;
  return (
    typeof c.preopens === 'object' &&
    c.preopens !== null &&
    Object.values(c.preopens).every((x) => typeof x === 'string')
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
