// Every failure Tugboat reports is one of these classes. Each carries a kind
// (what went wrong, in containerd's errdefs terms) and an exit status; the
// front ends map them exactly once: the CLIs to an exit status
// (exitCodeFor), the shim's ttrpc service to a status code (by kind).

export type ErrorKind = 'NotFound' | 'AlreadyExists' | 'InvalidArgument' | 'FailedPrecondition' | 'Unimplemented' | 'Internal';

export interface TugboatErrorOptions {
  cause?: unknown;
  /** Overrides the class's kind (e.g. a ConfigError that is a missing set-up, not bad input). */
  kind?: ErrorKind;
}

export class TugboatError extends Error {
  /** Exit status used by the CLI when this error ends the command. */
  readonly exitCode: number = 1;
  readonly kind: ErrorKind;
  constructor(message: string, options: TugboatErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.kind = options.kind ?? new.target.defaultKind;
  }
  static readonly defaultKind: ErrorKind = 'Internal';
}

/** Bad command line: unknown option, missing argument, bad value. */
export class UsageError extends TugboatError {
  static override readonly defaultKind: ErrorKind = 'InvalidArgument';
  override readonly exitCode = 2;
}

/** Bad configuration (JSON that does not parse, a value of the wrong type). */
export class ConfigError extends TugboatError {
  static override readonly defaultKind: ErrorKind = 'InvalidArgument';
}

/** A request that is malformed (an empty id, a spec of the wrong type). */
export class InvalidArgumentError extends TugboatError {
  static override readonly defaultKind: ErrorKind = 'InvalidArgument';
}

/** Something named by the user does not exist (image, container, process, file). */
export class NotFoundError extends TugboatError {
  static override readonly defaultKind: ErrorKind = 'NotFound';
}

/** A container or process with that id exists already. */
export class AlreadyExistsError extends TugboatError {
  static override readonly defaultKind: ErrorKind = 'AlreadyExists';
}

/** The thing exists but is in the wrong state for the request (start a stopped process, …). */
export class FailedPreconditionError extends TugboatError {
  static override readonly defaultKind: ErrorKind = 'FailedPrecondition';
}

/** A feature Tugboat does not offer (checkpoint, a stdio scheme, …). */
export class UnimplementedError extends TugboatError {
  static override readonly defaultKind: ErrorKind = 'Unimplemented';
}

/** An image (layout, archive, manifest, config) is malformed or unsupported. */
export class ImageError extends TugboatError {
  static override readonly defaultKind: ErrorKind = 'InvalidArgument';
}

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
  static override readonly defaultKind: ErrorKind = 'InvalidArgument';
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
  static override readonly defaultKind: ErrorKind = 'NotFound';
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

/** runc (or another helper program) failed; message carries its last error line. */
export class RuntimeError extends TugboatError {}

/** A system call made through FFI failed. */
export class SysError extends TugboatError {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call} failed: errno ${errno}`);
  }
}

export function exitCodeFor(err: unknown): number {
  return err instanceof TugboatError ? err.exitCode : 1;
}

export function kindOf(err: unknown): ErrorKind {
  return err instanceof TugboatError ? err.kind : 'Internal';
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
