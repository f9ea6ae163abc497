// How a command component's end becomes a GuestOutcome (and so, in main.ts,
// the container's exit status, exactly as for preview1 guests):
//   wasi:cli/exit.exit(ok)            → exit 0
//   wasi:cli/exit.exit(err)           → exit 1
//   wasi:cli/exit.exit-with-code(n)   → exit n
//   run() returned ok / err           → exit 0 / 1
//   trap (unreachable, OOB, stack)    → trap, with the message
import type { GuestOutcome } from './outcome.js';

/** Thrown by our wasi:cli/exit through the guest's frames, caught around run(). */
export class ComponentExit {
  constructor(readonly code: number) {}
}

/** The wasi:cli/exit implementation: never calls process.exit (the shim's default does). */
export const componentExit = {
  exit(status: { tag: 'ok' | 'err' }): never {
    throw new ComponentExit(status.tag === 'err' ? 1 : 0);
  },
  exitWithCode(code: number): never {
    throw new ComponentExit(code);
  },
};

function isTrap(err: unknown): err is Error {
  return err instanceof WebAssembly.RuntimeError || (err instanceof RangeError && /call stack/i.test(err.message));
}

/** jco's glue rewrites V8's trap messages as "wasm trap: …"; the host adds its own prefix. */
export function trapMessage(err: Error): string {
  return err.message.replace(/^wasm trap:\s*/, '');
}

/** Whatever run() threw (or undefined when it returned normally). */
export function componentOutcome(thrown: unknown, returned: boolean): GuestOutcome {
  if (returned) return { kind: 'exit', code: 0 };
  if (thrown instanceof ComponentExit) return { kind: 'exit', code: thrown.code };
  if (isTrap(thrown)) return { kind: 'trap', message: trapMessage(thrown) };
  // jco's ComponentError: run() returned result::err.
  if (thrown instanceof Error && Object.prototype.hasOwnProperty.call(thrown, 'payload')) return { kind: 'exit', code: 1 };
  return { kind: 'error', message: thrown instanceof Error ? thrown.message : String(thrown) };
}
