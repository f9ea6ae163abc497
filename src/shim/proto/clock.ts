// Times as google.protobuf.Timestamp holds them (seconds and nanos), without
// protobuf-es: `shim delete` stamps its one message with this and must not
// pay for loading the descriptors (see delete-response.ts).

/** Milliseconds since the epoch as whole seconds and nanos; fractions of a millisecond are kept. */
export function secondsAndNanos(ms: number): { seconds: bigint; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.max(0, Math.round((ms - seconds * 1000) * 1e6)));
  return { seconds: BigInt(seconds), nanos };
}

/**
 * Now, with microsecond resolution (exit times are compared across events, and
 * Go stamps nanoseconds; Date.now() alone would round to milliseconds).
 */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
