// Between a shared host and the threads of one of its component guests (a
// command's thread: shared/hosted-component.ts, hosted-component-worker.ts;
// an HTTP component's handler threads: shared/hosted-http-component.ts,
// ../http/): kept apart from both, so the host side loads nothing of
// preview2-shim.
import type { Preopen } from '../guest-config.js';
import type { GuestOutcome } from '../outcome.js';

/** Slots of the control array the host shares with the guest's threads (Int32Array over a SharedArrayBuffer). */
export const CTL = {
  /** 1 while the guest is paused. */
  PAUSE: 0,
  /** The memory limit in 64 KiB pages, 0 for none (the host may change it while the guest runs). */
  LIMIT_PAGES: 1,
  /** Pages of linear memory the guest holds (summed over its threads by each thread, cores.ts). */
  PAGES: 2,
  /** Milliseconds the guest's threads have run (likewise). */
  CPU_MS: 3,
  LENGTH: 4,
} as const;

/** What a component guest of a shared host sees of the world: the same on each of its threads. */
export interface HostedGuestView {
  args: string[];
  env: string[];
  cwd: string;
  rootFd: number;
  /** Directories inside the root ("/", the annotation's, "."). */
  preopens: Preopen[];
  /** Host directories (`tugboat run -v` at `process` level). */
  hostDirs: { guest: string; fd: number; readonly?: boolean }[];
  stdio: [number, number, number];
  /** The guest's descriptor ledger (../p2/fd-ledger.ts): its threads write down what they open, the host closes what is left. */
  fdLedger: SharedArrayBuffer;
  /** The host's seccomp filter lets it call userfaultfd in user mode (HostContext). */
  userfaultfd?: boolean;
}

/**
 * A component guest's glue, as the host read it: the script with V8's code
 * cache of it, where the cache entry has them (component-glue.ts), else jco's
 * component.mjs as text (imported from a data: URL). One or the other: the
 * threads need only one.
 */
export type GlueCode = { script: string; cache: Uint8Array } | { module: string };

/** A component guest's glue and core modules, as the host read and compiled them. */
export interface HostedComponentCode {
  glue: GlueCode;
  /** Its core modules by name, instrumented and compiled by the host. */
  modules: Record<string, WebAssembly.Module>;
}

/** A command component's thread (hosted-component-worker.ts) is started with this. */
export interface HostedComponentInput extends HostedGuestView, HostedComponentCode {
  world: 'command' | 'http' | 'unknown';
  ctl: SharedArrayBuffer;
}

export type HostedComponentMessage = GuestOutcome;

