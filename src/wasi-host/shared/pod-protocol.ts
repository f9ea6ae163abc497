// Between a shim and its pod host (a Tugboat host process serving the Wasm
// containers of one shim group from inside a runc container). Two
// socketpairs the shim made and passed with `runc create --preserve-fds 2`,
// so nothing is reachable by name on any file system:
//   fd 3: a stream of JSON lines both ways (requests, answers, events)
//   fd 4: SOCK_SEQPACKET, shim → host: one message per request that carries
//         descriptors (a guest's root directory and stdio, SCM_RIGHTS). It is
//         sent before the request's line, so when the host reads a line
//         saying `fds: n`, those descriptors are already queued on fd 4.
import type { HostUsage } from './local-host.js';
import type { HostedStats } from './hosted-guest.js';
import type { Preopen } from '../guest-config.js';

export const CONTROL_FD = 3;
export const FDS_FD = 4;

/** A guest as the shim describes it; descriptors are indices into the request's fds. */
export interface WireGuest {
  args: string[];
  env: string[];
  cwd: string;
  module?: string;
  preopens?: Preopen[];
  memoryLimit?: number;
  /** Index of the root directory in `fds`. */
  root: number;
  /** Indices of stdin, stdout, stderr in `fds` (-1: closed). */
  stdio: [number, number, number];
  /** A component: its transpiled cache entry (index of a directory descriptor in `fds`), and how an HTTP component is served. */
  component?: { dir: number; entry: string; world: 'command' | 'http' | 'unknown'; port?: number; pool?: number; threads?: number; reuse?: boolean; reset?: boolean };
}

export type Request =
  | { id: number; op: 'create'; key: string; guest: WireGuest; fds: number }
  | { id: number; op: 'start' | 'pause' | 'resume' | 'stats' | 'delete'; key: string }
  | { id: number; op: 'kill'; key: string; signal: number }
  | { id: number; op: 'limit'; key: string; bytes: number | null }
  | { id: number; op: 'usage' };

export type Reply =
  | { id: number; ok: true; stats?: HostedStats; usage?: HostUsage }
  | { id: number; ok: false; error: string; kind: string };

export type HostEvent =
  | { event: 'ready'; pid: number }
  | { event: 'ended'; key: string; status: number; oom: boolean; at: number };

export type HostMessage = Reply | HostEvent;

/** Splits a byte stream into lines and parses each as JSON; a bad line is reported, not fatal. */
export function lineReader(onMessage: (m: unknown) => void, onBad: (line: string) => void): (chunk: Buffer) => void {
  let pending = '';
  return (chunk) => {
    pending += chunk.toString('utf8');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line === '') continue;
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        onBad(line.slice(0, 200));
        continue;
      }
      onMessage(m);
    }
  };
}
