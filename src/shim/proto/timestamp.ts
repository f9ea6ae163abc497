// google.protobuf.Timestamp helpers. Go's zero time.Time (0001-01-01T00:00:00Z,
// seconds -62135596800) is what containerd sends for "not set" in its
// non-nullable timestamp fields (e.g. StateResponse.exited_at before exit), so
// it is treated as unset everywhere here.
import { create } from '@bufbuild/protobuf';
import { type Timestamp, TimestampSchema } from '@bufbuild/protobuf/wkt';
import { nowMs, secondsAndNanos } from './clock.js';

export type { Timestamp };

export const GO_ZERO_TIME_SECONDS = -62135596800n;

/** A fresh Timestamp holding Go's zero time. */
export function goZeroTimestamp(): Timestamp {
  return create(TimestampSchema, { seconds: GO_ZERO_TIME_SECONDS, nanos: 0 });
}

export function isGoZeroTime(ts: Timestamp): boolean {
  return ts.seconds === GO_ZERO_TIME_SECONDS && ts.nanos === 0;
}

/** Absent, or Go's zero time. (The Unix epoch, 0/0, is a real time.) */
export function isUnsetTime(ts: Timestamp | undefined): ts is undefined {
  return ts === undefined || isGoZeroTime(ts);
}

/** From milliseconds since the epoch; fractions of a millisecond are kept. */
export function timestampFromMs(ms: number): Timestamp {
  return create(TimestampSchema, secondsAndNanos(ms));
}

export function timestampFromDate(d: Date): Timestamp {
  return timestampFromMs(d.getTime());
}

/** Now, with microsecond resolution (clock.ts). */
export function timestampNow(): Timestamp {
  return timestampFromMs(nowMs());
}

/** Milliseconds since the epoch, or undefined when unset. */
export function timestampToMs(ts: Timestamp | undefined): number | undefined {
  if (isUnsetTime(ts)) return undefined;
  return Number(ts.seconds) * 1000 + ts.nanos / 1e6;
}

export function timestampToDate(ts: Timestamp | undefined): Date | undefined {
  const ms = timestampToMs(ts);
  return ms === undefined ? undefined : new Date(ms);
}
