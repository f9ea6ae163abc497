// Access to a guest's linear memory. The ArrayBuffer behind a
// WebAssembly.Memory is replaced whenever the guest grows it, so views are
// refreshed on every access through `view()`; out-of-bounds pointers are the
// guest's fault (EFAULT), never a host exception.
import { E } from './abi.js';
import { WasiError } from './errno.js';

export class GuestMemory {
  private buffer: ArrayBuffer | undefined;
  private dv!: DataView;
  private u8!: Uint8Array;

  constructor(private readonly memory: () => WebAssembly.Memory) {}

  private refresh(): void {
    const buf = this.memory().buffer;
    if (buf !== this.buffer) {
      this.buffer = buf;
      this.dv = new DataView(buf);
      this.u8 = new Uint8Array(buf);
    }
  }

  view(): DataView {
    this.refresh();
    return this.dv;
  }

  private check(ptr: number, len: number): void {
    if (ptr < 0 || len < 0 || ptr + len > this.u8.length) throw new WasiError(E.FAULT);
  }

  /** A live view of [ptr, ptr+len): valid until the guest runs again (memory may grow). */
  bytes(ptr: number, len: number): Uint8Array {
    this.refresh();
    ptr >>>= 0;
    len >>>= 0;
    this.check(ptr, len);
    return this.u8.subarray(ptr, ptr + len);
  }

  u8At(ptr: number): number {
    this.refresh();
    this.check(ptr >>> 0, 1);
    return this.u8[ptr >>> 0]!;
  }
  u16(ptr: number): number {
    this.refresh();
    this.check(ptr >>> 0, 2);
    return this.dv.getUint16(ptr >>> 0, true);
  }
  u32(ptr: number): number {
    this.refresh();
    this.check(ptr >>> 0, 4);
    return this.dv.getUint32(ptr >>> 0, true);
  }
  u64(ptr: number): bigint {
    this.refresh();
    this.check(ptr >>> 0, 8);
    return this.dv.getBigUint64(ptr >>> 0, true);
  }
  setU8(ptr: number, v: number): void {
    this.refresh();
    this.check(ptr >>> 0, 1);
    this.dv.setUint8(ptr >>> 0, v);
  }
  setU16(ptr: number, v: number): void {
    this.refresh();
    this.check(ptr >>> 0, 2);
    this.dv.setUint16(ptr >>> 0, v, true);
  }
  setU32(ptr: number, v: number): void {
    this.refresh();
    this.check(ptr >>> 0, 4);
    this.dv.setUint32(ptr >>> 0, v >>> 0, true);
  }
  setU64(ptr: number, v: bigint): void {
    this.refresh();
    this.check(ptr >>> 0, 8);
    this.dv.setBigUint64(ptr >>> 0, BigInt.asUintN(64, v), true);
  }

  /** Copies `data` into guest memory at ptr. */
  write(ptr: number, data: Uint8Array): void {
    this.bytes(ptr, data.length).set(data);
  }

  /** iovec/ciovec arrays: (buf u32, len u32) pairs, as live views. */
  iovecs(ptr: number, count: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const base = (ptr >>> 0) + i * 8;
      out.push(this.bytes(this.u32(base), this.u32(base + 4)));
    }
    return out;
  }
}

/** Total length of a list of buffers. */
export function totalLength(bufs: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}
