// Every failure Tugboat reports is one of these classes. They are mapped to a
// process exit code exactly once (exitCodeFor) so that front ends never invent
// their own numbers.

export class TugboatError extends Error {
  /** Exit status used by the CLI when this error ends the command. */
  readonly exitCode: number = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad command line: unknown option, missing argument, bad value. */
export class UsageError extends TugboatError {
  override readonly exitCode = 2;
}

/** Bad configuration (JSON that does not parse, a value of the wrong type). */
export class ConfigError extends TugboatError {}

/** Something named by the user does not exist (image, container, file). */
export class NotFoundError extends TugboatError {}

/** An image (layout, archive, manifest, config) is malformed or unsupported. */
export class ImageError extends TugboatError {}

/** A blob's content does not match its descriptor. */
export class DigestMismatchError extends ImageError {}

/** A layer tar entry would be unsafe to apply; `entry` names the offender. */
export class LayerError extends ImageError {
  constructor(
    readonly entry: string,
    reason: string,
  ) {
    super(`refusing layer entry ${JSON.stringify(entry)}: ${reason}`);
  }
}

/** A Wasm binary that cannot be run (bad magic, failed validation, unsupported kind). */
export class WasmError extends TugboatError {
  override readonly exitCode = 126;
}

/** The container's executable does not exist in its root filesystem (Docker's 127). */
export class ExecutableNotFoundError extends TugboatError {
  override readonly exitCode = 127;
}

/** runc (or another helper) failed; message carries its last error line. */
export class RuntimeError extends TugboatError {}

export function exitCodeFor(err: unknown): number {
  return err instanceof TugboatError ? err.exitCode : 1;
}

/** One line for the user: the message, never a stack. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? String(err);
  return String(err);
}

/** True for Node's errors from a system call (they carry `code` and `syscall`). */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/**
 * A system error as the C library would say it ("no space left on device"),
 * without the paths Node appends: those are often private temp names that
 * mean nothing to the user. Callers say what they were doing.
 */
export function describeFsError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  // Node's form: "ENOSPC: no space left on device, write '/path'".
  const m = code ? new RegExp(`^${code}: ([^,]*)`).exec(err.message) : null;
  if (m?.[1]) return m[1];
  return code ?? err.message.split('\n')[0] ?? String(err);
}

/**
 * A system error met while `doing` something, as one line without private
 * paths (`doing: no space left on device`); Tugboat's own and other errors
 * are returned unchanged.
 */
export function asFsFailure(err: unknown, doing: string): unknown {
  if (err instanceof TugboatError || !isSystemError(err)) return err;
  return new TugboatError(`${doing}: ${describeFsError(err)}`, { cause: err });
}
