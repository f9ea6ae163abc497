// ttrpc carries gRPC status codes (google.rpc.Status in every Response).
// containerd maps them back to its error classes (errdefs.FromGRPC), so the
// code matters as much as the message: e.g. NOT_FOUND on Kill means "already
// stopped" to Docker, UNIMPLEMENTED means "this shim does not support it".

export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
}

/** An error with a status code: thrown by handlers, rejected by client calls. */
export class TtrpcError extends Error {
  constructor(
    readonly code: Code,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TtrpcError';
  }
}

/**
 * The connection is gone (Go's ttrpc.ErrClosed, same text). Callers such as
 * the event publisher test for this class to know that reconnecting helps.
 */
export class TtrpcClosedError extends TtrpcError {
  constructor(message = 'ttrpc: closed') {
    super(Code.UNAVAILABLE, message);
    this.name = 'TtrpcClosedError';
  }
}

/** Name of a code as Go's codes.Code.String() spells it (for logs). */
export function codeName(code: number): string {
  return Code[code] ?? `Code(${code})`;
}

/**
 * The status a handler failure is answered with: a TtrpcError keeps its code;
 * anything else is UNKNOWN with its message, as ttrpc does for plain Go errors.
 */
export function statusOf(err: unknown): { code: Code; message: string } {
  if (err instanceof TtrpcError) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: Code.UNKNOWN, message: err.message };
  return { code: Code.UNKNOWN, message: String(err) };
}

/** Messages ttrpc v1.1.1 uses, kept in one place so tests can match them. */
export const MSG = {
  evenStream: 'StreamID must be odd for client initiated streams',
  oversize: (length: number, max: number) => `message length ${length} exceed maximum message size of ${max}`,
  unknownService: (s: string) => `service ${s}`,
  unknownMethod: (m: string) => `method ${m}`,
  badRequest: (why: string) => `unmarshal request error: ${why}`,
  badPayload: (why: string) => `ttrpc: error unmarshalling payload: ${why}`,
  deadline: 'context deadline exceeded',
  canceled: 'context canceled',
} as const;
