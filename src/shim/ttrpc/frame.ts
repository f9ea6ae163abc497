// ttrpc v1.1.1 framing: a 10-byte big-endian header (length, stream id, type,
// flags) and then `length` bytes of protobuf. Frames over 4 MiB are never
// sent; received ones are skipped and reported so the server can answer
// RESOURCE_EXHAUSTED on that stream, as ttrpc's channel.recv does.

export const MESSAGE_LENGTH_MAX = 4 << 20;
export const HEADER_LENGTH = 10;

export enum MessageType {
  Request = 1,
  Response = 2,
}

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  data: Uint8Array;
}

/** A frame whose length field exceeded MESSAGE_LENGTH_MAX; its bytes were discarded. */
export interface OversizeFrame {
  streamId: number;
  type: number;
  flags: number;
  oversize: true;
  length: number;
}

export type DecodedFrame = (Frame & { oversize?: false }) | OversizeFrame;

export function encodeFrame(f: Frame): Buffer {
  if (f.data.length > MESSAGE_LENGTH_MAX) {
    throw new RangeError(`ttrpc frame of ${f.data.length} bytes exceeds ${MESSAGE_LENGTH_MAX}`);
  }
  const out = Buffer.allocUnsafe(HEADER_LENGTH + f.data.length);
  out.writeUInt32BE(f.data.length, 0);
  out.writeUInt32BE(f.streamId >>> 0, 4);
  out.writeUInt8(f.type & 0xff, 8);
  out.writeUInt8(f.flags & 0xff, 9);
  out.set(f.data, HEADER_LENGTH);
  return out;
}

/**
 * Incremental decoder for a byte stream. Chunks are queued and only joined
 * when a frame spans them, so a 4 MiB frame arriving in 64 KiB pieces is
 * copied once, and a chunk holding thousands of frames is sliced, not copied.
 * Memory is bounded: at most one frame (≤ 4 MiB) plus one chunk is held.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of an oversize frame still to skip, and the report due after. */
  private discarding = 0;
  private pendingOversize: OversizeFrame | undefined;

  /** Feed bytes; returns the frames completed by them, in order. */
  push(chunk: Buffer): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.pendingOversize) {
        this.discarding -= this.skip(this.discarding);
        if (this.discarding > 0) break;
        out.push(this.pendingOversize);
        this.pendingOversize = undefined;
      }
      if (this.buffered < HEADER_LENGTH) break;
      const header = this.peek(HEADER_LENGTH);
      const length = header.readUInt32BE(0);
      const streamId = header.readUInt32BE(4);
      const type = header[8] ?? 0;
      const flags = header[9] ?? 0;
      if (length > MESSAGE_LENGTH_MAX) {
        this.skip(HEADER_LENGTH);
        this.discarding = length;
        this.pendingOversize = { streamId, type, flags, oversize: true, length };
        continue;
      }
      if (this.buffered < HEADER_LENGTH + length) break;
      this.skip(HEADER_LENGTH);
      out.push({ streamId, type, flags, data: this.take(length) });
    }
    return out;
  }

  /** Bytes held that do not yet form a whole frame (0 at a clean boundary). */
  pending(): number {
    return this.buffered + this.discarding;
  }

  /** The first n buffered bytes (n ≤ buffered), copied only if they span chunks. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const parts: Buffer[] = [];
    let got = 0;
    for (const c of this.chunks) {
      parts.push(c);
      got += c.length;
      if (got >= n) break;
    }
    return Buffer.concat(parts, got).subarray(0, n);
  }

  /** Remove and return n buffered bytes (n ≤ buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (n === 0 || first === undefined) return Buffer.alloc(0);
    if (first.length >= n) {
      const data = first.subarray(0, n);
      this.dropFront(n);
      return data;
    }
    const data = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(data, off, 0, k);
      off += k;
      this.dropFront(k);
    }
    return data;
  }

  /** Drop up to n buffered bytes; returns how many were dropped. */
  private skip(n: number): number {
    let left = Math.min(n, this.buffered);
    const dropped = left;
    while (left > 0) {
      const k = Math.min(this.chunks[0]!.length, left);
      this.dropFront(k);
      left -= k;
    }
    return dropped;
  }

  /** Drop k bytes from the first chunk (k ≤ its length). */
  private dropFront(k: number): void {
    const c = this.chunks[0]!;
    if (k >= c.length) this.chunks.shift();
    else this.chunks[0] = c.subarray(k);
    this.buffered -= k;
  }
}
