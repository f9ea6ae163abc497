// Reading an open file from its start into memory, by position (the
// descriptor's offset is left alone).
import { readSync } from 'node:fs';

/** Up to `max` bytes of the file behind `fd`, fewer when it ends first. */
export function readUpTo(fd: number, max: number): Buffer {
  const buf = Buffer.allocUnsafe(max);
  let n = 0;
  while (n < max) {
    const got = readSync(fd, buf, n, max - n, n);
    if (got === 0) break;
    n += got;
  }
  return buf.subarray(0, n);
}
