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

/** A registry answered with an error, or could not be reached (status and registry code in the message). */
export class RegistryError extends TugboatError {
  constructor(
    message: string,
    /** HTTP status, when the registry answered. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The registry refused our credentials (401) or the access (403). */
export class RegistryAuthError extends RegistryError {}

/** TLS with the registry failed (unknown authority, wrong name, expired, not TLS at all). */
export class RegistryTlsError extends RegistryError {}

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
