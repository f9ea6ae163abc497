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

/** A Wasm binary that breaks the binary format; `offset` is the byte where reading stopped. */
export class WasmDecodeError extends WasmError {
  constructor(
    readonly offset: number,
    reason: string,
  ) {
    super(`malformed Wasm module at byte 0x${offset.toString(16)}: ${reason}`);
  }
}

/**
 * A Wasm feature the instrumenter does not rewrite (GC, an opcode it does not
 * know). The module may be valid; a shared host cannot make it preemptible.
 */
export class WasmUnsupportedError extends WasmError {
  constructor(
    readonly offset: number,
    readonly feature: string,
  ) {
    super(`unsupported Wasm ${feature} at byte 0x${offset.toString(16)}`);
  }
}

/** The module's initial memory is already above the container's memory limit: its OOM (137). */
export class MemoryCapError extends TugboatError {
  override readonly exitCode = 137;
  constructor(
    readonly minimumPages: number,
    readonly maxPages: number,
  ) {
    super(`the module needs ${minimumPages} pages (64 KiB each) of memory at start, above the limit of ${maxPages} pages`);
  }
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
