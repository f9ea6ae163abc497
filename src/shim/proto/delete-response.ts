// The DeleteResponse that `shim delete` prints, encoded by hand: containerd
// runs `shim delete` after every task it deletes (and 50 at once when a
// grouped shim dies), and loading protobuf-es's descriptors for the one
// message costs that process more than everything else it does. The bytes are
// the codec's own (codec.ts: exited_at always emitted, as Go does); the unit
// tests compare them with encode(DeleteResponseSchema, …) across edge values.
//
//   message DeleteResponse { uint32 pid = 1; uint32 exit_status = 2; google.protobuf.Timestamp exited_at = 3; }
//   message Timestamp { int64 seconds = 1; int32 nanos = 2; }

const VARINT = 0;
const LENGTH_DELIMITED = 2;

function varint(out: number[], value: bigint): void {
  // Negative int64/int32 values are their 64-bit two's complement: ten bytes.
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

/** A proto3 scalar field: omitted when zero. */
function scalar(out: number[], field: number, value: bigint): void {
  if (value === 0n) return;
  out.push((field << 3) | VARINT);
  varint(out, value);
}

export interface DeleteResponseFields {
  pid: number;
  exitStatus: number;
  exitedAt: { seconds: bigint; nanos: number };
}

export function encodeDeleteResponse(r: DeleteResponseFields): Uint8Array {
  const ts: number[] = [];
  scalar(ts, 1, r.exitedAt.seconds);
  scalar(ts, 2, BigInt(r.exitedAt.nanos));
  const out: number[] = [];
  scalar(out, 1, BigInt(r.pid >>> 0));
  scalar(out, 2, BigInt(r.exitStatus >>> 0));
  out.push((3 << 3) | LENGTH_DELIMITED);
  varint(out, BigInt(ts.length));
  out.push(...ts);
  return Uint8Array.from(out);
}
