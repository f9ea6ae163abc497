// A guest's fate, whichever engine ran it (Tugboat's preview1 host, node:wasi,
// a component), and the one mapping from it to the container's exit status
// and the line the host writes on stderr (README, Exit statuses).
import {
  EXIT_HOST_FAILURE, EXIT_MEMORY_CAP, EXIT_NOT_RUNNABLE, EXIT_TRAP, guestExitStatus, signalExitStatus,
} from './exit-status.js';

export type GuestOutcome =
  | { kind: 'exit'; code: number }
  | { kind: 'trap'; message: string }
  | { kind: 'signal'; signal: number }
  | { kind: 'link'; message: string }
  | { kind: 'oom' }
  | { kind: 'error'; message: string };

export function isTrap(err: unknown): err is Error {
  return err instanceof WebAssembly.RuntimeError || (err instanceof RangeError && /call stack/i.test(err.message));
}

export interface Ending {
  status: number;
  /** For stderr, without the "tugboat: " prefix. */
  message?: string;
}

export function ending(outcome: GuestOutcome, modulePath: string): Ending {
  switch (outcome.kind) {
    case 'exit':
      return { status: guestExitStatus(outcome.code) };
    case 'signal':
      return { status: signalExitStatus(outcome.signal) };
    case 'trap':
      return { status: EXIT_TRAP, message: `wasm trap in ${modulePath}: ${outcome.message}` };
    case 'oom':
      return { status: EXIT_MEMORY_CAP, message: `${modulePath}: out of memory (the guest's memory cap)` };
    case 'link':
      return { status: EXIT_NOT_RUNNABLE, message: `${modulePath}: ${outcome.message}` };
    case 'error':
      return { status: EXIT_HOST_FAILURE, message: `${modulePath}: ${outcome.message}` };
  }
}
