// Content digests. Every blob Tugboat reads from an image is checked against
// its descriptor, so a corrupt or substituted blob is caught before use.
// Only sha256 is accepted: it is what every image tool writes, and a digest
// string is also used to build a blob's path, so it must be strictly shaped.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError, ImageError } from '../errors.js';

const DIGEST_RE = /^sha256:([0-9a-f]{64})$/;

export function sha256Digest(data: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** Validates "sha256:<64 lowercase hex>" and returns the hex part. */
export function digestHex(digest: string): string {
  const m = typeof digest === 'string' ? DIGEST_RE.exec(digest) : null;
  if (!m?.[1]) throw new ImageError(`invalid digest ${JSON.stringify(digest)}: expected sha256:<64 hex digits>`);
  return m[1];
}

/**
 * Passes bytes through unchanged and checks them against `expected`.
 * Too many bytes fail as soon as they arrive (so a hostile blob cannot make
 * us read forever); a short blob or a wrong digest fails at the end.
 * `onBytes` hears of every chunk that passed (progress reports).
 */
export function verifyingStream(expected: { digest: string; size: number }, what: string, onBytes?: (n: number) => void): Transform {
  digestHex(expected.digest);
  if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
    throw new ImageError(`${what}: invalid size ${String(expected.size)}`);
  }
  const hash = createHash('sha256');
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > expected.size) {
        cb(new DigestMismatchError(`${what}: size mismatch, expected ${expected.size} bytes, got more`));
        return;
      }
      hash.update(chunk);
      onBytes?.(chunk.length);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (seen !== expected.size) {
        cb(new DigestMismatchError(`${what}: size mismatch, expected ${expected.size} bytes, got ${seen}`));
        return;
      }
      const got = 'sha256:' + hash.digest('hex');
      if (got !== expected.digest) {
        cb(new DigestMismatchError(`${what}: digest mismatch, expected ${expected.digest}, got ${got}`));
        return;
      }
      cb();
    },
  });
}

export async function digestFile(path: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    const b = chunk as Buffer;
    size += b.length;
    hash.update(b);
  }
  return { digest: 'sha256:' + hash.digest('hex'), size };
}
