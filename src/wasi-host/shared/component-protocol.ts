// Between a shared host and the thread of one of its component guests
// (shared/hosted-component.ts, hosted-component-worker.ts): kept apart from
// both, so the host side loads nothing of preview2-shim.
import type { HttpWorkerMessage } from './hosted-http.js';
import type { Preopen } from '../guest-config.js';
import type { GuestOutcome } from '../outcome.js';

/** Slots of the control array the host shares with this thread (Int32Array over a SharedArrayBuffer). */
export const CTL = {
  /** 1 while the guest is paused. */
  PAUSE: 0,
  /** The memory limit in 64 KiB pages, 0 for none (the host may change it while the guest runs). */
  LIMIT_PAGES: 1,
  /** Pages of linear memory the guest holds (written here). */
  PAGES: 2,
  /** Milliseconds this thread has run (written here). */
  CPU_MS: 3,
  LENGTH: 4,
} as const;

export interface HostedComponentInput {
  /** The glue (jco's component.mjs) as text: imported from a data: URL. */
  glue: string;
  /** Its core modules by name, instrumented and compiled by the host. */
  modules: Record<string, WebAssembly.Module>;
  world: 'command' | 'http' | 'unknown';
  args: string[];
  env: string[];
  cwd: string;
  rootFd: number;
  /** Directories inside the root ("/", the annotation's, "."). */
  preopens: Preopen[];
  /** Host directories (`tugboat run -v` at `process` level). */
  hostDirs: { guest: string; fd: number; readonly?: boolean }[];
  stdio: [number, number, number];
  ctl: SharedArrayBuffer;
}

export type HostedComponentMessage = GuestOutcome | HttpWorkerMessage;

