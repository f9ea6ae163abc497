// What a command undoes when SIGINT, SIGTERM or SIGHUP stops it before it is
// done: whatever made a temp file, a claimed container, a mount or a child
// process registers a synchronous undo while the thing exists and forgets it
// once it is committed or cleaned up normally. On a signal the undos run in
// reverse order, synchronously (nothing else of ours runs meanwhile, so no
// write in flight can race them), and the process exits with 128+N.
//
// Two phases change that. While a foreground child owns the terminal's
// semantics (`runc run` of `tugboat run`, `runc create` of the OCI CLI), the
// signal is the child's: the relay in runc.ts hands it over and the child's
// end decides the status. Once the command is finishing (the container has
// exited and its cleanup runs), a signal is noted and ignored: the cleanup is
// short and leaving it half done would leak what it removes.
//
// A SIGKILL cannot be handled: what it leaves behind carries its owner in its
// name (src/owner.ts) and is swept by the next command that writes.
import { constants } from 'node:os';
import { log } from './log.js';

type Undo = () => void;

const undos = new Set<{ undo: Undo }>();
let phase: 'undo' | 'foreground' | 'finishing' = 'undo';
let installed = false;

export const HANDLED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Registers `undo` until the returned function is called (idempotent). */
export function undoOnInterrupt(undo: Undo): () => void {
  const entry = { undo };
  undos.add(entry);
  return () => {
    undos.delete(entry);
  };
}

/** Runs every registered undo, newest first; each failure is logged and the rest still run. */
export function runUndos(): void {
  const all = [...undos].reverse();
  undos.clear();
  for (const { undo } of all) {
    try {
      undo();
    } catch (err) {
      log().warn({ err: (err as Error).message }, 'cleanup after an interruption failed');
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  if (phase === 'foreground') return;
  if (phase === 'finishing') {
    log().info({ signal }, 'signal during cleanup: finishing it first');
    return;
  }
  runUndos();
  process.exit(128 + (constants.signals[signal] ?? 0));
}

/**
 * Installs the handlers (once per process). Also runs the undos when the
 * process exits with work still registered (an uncaught error).
 */
export function handleInterrupts(): void {
  if (installed) return;
  installed = true;
  for (const s of HANDLED_SIGNALS) process.on(s, onSignal);
  process.on('exit', runUndos);
}

/** Runs `fn` with signals left to the foreground child it starts; afterwards, signals wait for the cleanup. */
export async function inForeground<T>(fn: () => Promise<T>): Promise<T> {
  phase = 'foreground';
  try {
    return await fn();
  } finally {
    phase = 'finishing';
  }
}

/** From now on a signal no longer interrupts: the command is cleaning up. */
export function finishing(): void {
  phase = 'finishing';
}
