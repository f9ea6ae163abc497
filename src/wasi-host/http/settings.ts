// How an HTTP component is served, from its guest configuration (the
// io.tugboat.http.* annotations, the component's own declaration) and the
// CPUs this process may use.
import { envListToObject, type GuestComponent, type GuestConfig } from '../guest-config.js';
import { defaultHandlerThreads } from './cpus.js';

export const DEFAULT_HTTP_PORT = 8080;
/** Instances alive at once per handler thread, unless io.tugboat.http.pool says otherwise. */
export const DEFAULT_POOL = 8;

/** io.tugboat.http.port, else the guest's PORT, else 8080. */
export function httpPort(config: GuestConfig): number {
  if (config.component?.port !== undefined) return config.component.port;
  const fromEnv = Number(envListToObject(config.env).PORT);
  return Number.isInteger(fromEnv) && fromEnv > 0 && fromEnv < 65536 ? fromEnv : DEFAULT_HTTP_PORT;
}

export interface HttpServeSettings {
  port: number;
  threads: number;
  pool: number;
  reuse: boolean;
  reset: boolean;
}

export function httpServeSettings(config: GuestConfig, cpus: () => number = defaultHandlerThreads): HttpServeSettings {
  return serveSettingsOf(httpPort(config), config.component, cpus);
}

/** The settings of a component served on `port` (a shared host's guest, whose port its runtime chose). */
export function serveSettingsOf(port: number, c: Pick<GuestComponent, 'pool' | 'threads' | 'reuse' | 'reset'> | undefined, cpus: () => number = defaultHandlerThreads): HttpServeSettings {
  return {
    port,
    threads: c?.threads ?? cpus(),
    pool: c?.pool ?? DEFAULT_POOL,
    reuse: c?.reuse === true,
    reset: c?.reset === true,
  };
}

/** The pool, threads, reuse and reset a runtime was given for a component (only those set): what travels to a shared host. */
export function servingOptions(c: Pick<GuestComponent, 'pool' | 'threads' | 'reuse' | 'reset'>): Pick<GuestComponent, 'pool' | 'threads' | 'reuse' | 'reset'> {
  return {
    ...(c.pool !== undefined ? { pool: c.pool } : {}),
    ...(c.threads !== undefined ? { threads: c.threads } : {}),
    ...(c.reuse === true ? { reuse: true } : {}),
    ...(c.reset === true ? { reset: true } : {}),
  };
}
