// encode/decode for every generated message, with the one wire quirk of
// gogo/protobuf that matters: fields declared `(gogoproto.nullable) = false`
// are plain time.Time values in Go and are therefore ALWAYS emitted, as Go's
// zero time when unset. containerd parses either form, but emitting them like
// Go keeps our bytes identical to the real shim's (see the vectors in
// protocols.md §10). On decode, Go's zero time becomes "unset" (undefined).
import {
  clone,
  create,
  type DescField,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import { goZeroTimestamp, isGoZeroTime } from './timestamp.js';
import type { Timestamp } from './timestamp.js';

const TIMESTAMP = 'google.protobuf.Timestamp';

/**
 * The nullable=false Timestamp fields of the messages we carry, as
 * "<message>.<field>" (from containerd 1.6.20's .proto files; the list is
 * exhaustive for those files: shim.proto, task.proto, events/task.proto,
 * ttrpc events.proto).
 */
export const GO_ALWAYS_EMITTED: ReadonlySet<string> = new Set([
  'containerd.task.v2.StateResponse.exited_at',
  'containerd.task.v2.DeleteResponse.exited_at',
  'containerd.task.v2.WaitResponse.exited_at',
  'containerd.v1.types.Process.exited_at',
  'containerd.events.TaskExit.exited_at',
  'containerd.events.TaskDelete.exited_at',
  'containerd.services.events.ttrpc.v1.Envelope.timestamp',
]);

type Obj = Record<string, unknown>;

export function encode<D extends DescMessage>(schema: D, msg: MessageInitShape<D>): Uint8Array {
  let m = create(schema, msg);
  if (needsFill(schema)) {
    // Work on a copy: filling must not change the caller's message.
    m = clone(schema, m);
    fillAlwaysEmitted(schema, m as unknown as Obj);
  }
  return toBinary(schema, m);
}

/** Parse bytes; throws on malformed input. Go zero times come back unset. */
export function decode<D extends DescMessage>(schema: D, bytes: Uint8Array): MessageShape<D> {
  const m = fromBinary(schema, bytes);
  clearGoZeroTimes(schema, m as unknown as Obj);
  return m;
}

/** Message-typed values of a field (singular, list or map), for recursion. */
function* nestedMessages(field: DescField, m: Obj): Generator<[DescMessage, Obj]> {
  // No message we carry has oneofs; their values live elsewhere and are skipped.
  if (field.oneof) return;
  const v = m[field.localName];
  if (v === undefined || v === null) return;
  if (field.fieldKind === 'message') yield [field.message, v as Obj];
  else if (field.fieldKind === 'list' && field.listKind === 'message') {
    for (const e of v as Obj[]) yield [field.message, e];
  } else if (field.fieldKind === 'map' && field.mapKind === 'message') {
    for (const e of Object.values(v as Record<string, Obj>)) yield [field.message, e];
  }
}

const fillCache = new WeakMap<DescMessage, boolean>();

/** Whether this message, or one nested in it, has an always-emitted field. */
function needsFill(desc: DescMessage, seen = new Set<DescMessage>()): boolean {
  const cached = fillCache.get(desc);
  if (cached !== undefined) return cached;
  if (seen.has(desc)) return false; // recursive type: decided by the outer call
  seen.add(desc);
  let result = false;
  for (const f of desc.fields) {
    if (GO_ALWAYS_EMITTED.has(`${desc.typeName}.${f.name}`)) result = true;
    else if ((f.fieldKind === 'message' || f.fieldKind === 'list' || f.fieldKind === 'map') && f.message) {
      if (f.message.typeName !== TIMESTAMP && needsFill(f.message, seen)) result = true;
    }
    if (result) break;
  }
  fillCache.set(desc, result);
  return result;
}

function fillAlwaysEmitted(desc: DescMessage, m: Obj): void {
  for (const f of desc.fields) {
    if (f.fieldKind === 'message' && m[f.localName] === undefined && GO_ALWAYS_EMITTED.has(`${desc.typeName}.${f.name}`)) {
      m[f.localName] = goZeroTimestamp();
      continue;
    }
    for (const [d, v] of nestedMessages(f, m)) if (d.typeName !== TIMESTAMP) fillAlwaysEmitted(d, v);
  }
}

function clearGoZeroTimes(desc: DescMessage, m: Obj): void {
  for (const f of desc.fields) {
    if (f.fieldKind === 'message' && f.message.typeName === TIMESTAMP) {
      const ts = m[f.localName] as Timestamp | undefined;
      if (ts && isGoZeroTime(ts)) m[f.localName] = undefined;
      continue;
    }
    for (const [d, v] of nestedMessages(f, m)) if (d.typeName !== TIMESTAMP) clearGoZeroTimes(d, v);
  }
}
