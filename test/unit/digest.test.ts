import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DigestMismatchError, ImageError } from '../../src/errors.js';
import { digestFile, digestHex, sha256Digest, verifyBytes, verifyingStream } from '../../src/oci/digest.js';

const EMPTY = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const HELLO = sha256Digest('hello');

async function drain(data: Buffer[], expected: { digest: string; size: number }): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(data), verifyingStream(expected, 'blob x'), async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) out.push(c);
  });
  return Buffer.concat(out);
}

describe('sha256Digest / digestHex', () => {
  it('computes sha256 digests of bytes and strings', () => {
    expect(sha256Digest('')).toBe(EMPTY);
    expect(sha256Digest(Buffer.from('hello'))).toBe(HELLO);
    expect(digestHex(EMPTY)).toBe(EMPTY.slice(7));
  });

  it.each([
    'sha256:abc',
    'sha512:' + 'a'.repeat(64),
    'sha256:' + 'A'.repeat(64),
    'sha256:' + 'a'.repeat(63) + '/',
    'sha256:../../../../etc/passwd',
    '',
  ])('rejects %j', (d) => {
    expect(() => digestHex(d)).toThrow(ImageError);
    expect(() => digestHex(d)).toThrow(/invalid digest/);
  });
});

describe('verifyingStream', () => {
  it('passes matching bytes through unchanged', async () => {
    const out = await drain([Buffer.from('hel'), Buffer.from('lo')], { digest: HELLO, size: 5 });
    expect(out.toString()).toBe('hello');
  });

  it('fails on a digest mismatch, naming both digests', async () => {
    const p = drain([Buffer.from('hellO')], { digest: HELLO, size: 5 });
    await expect(p).rejects.toThrow(DigestMismatchError);
    await expect(p).rejects.toThrow(`blob x: digest mismatch, expected ${HELLO}, got ${sha256Digest('hellO')}`);
  });

  it('fails on a short blob', async () => {
    const p = drain([Buffer.from('hell')], { digest: HELLO, size: 5 });
    await expect(p).rejects.toThrow(DigestMismatchError);
    await expect(p).rejects.toThrow('blob x: size mismatch, expected 5 bytes, got 4');
  });

  it('fails as soon as a blob is too long', async () => {
    const p = drain([Buffer.from('hello'), Buffer.from('!')], { digest: HELLO, size: 5 });
    await expect(p).rejects.toThrow(DigestMismatchError);
    await expect(p).rejects.toThrow('size mismatch, expected 5 bytes, got more');
  });

  it('refuses a malformed expected digest up front', () => {
    expect(() => verifyingStream({ digest: 'md5:x', size: 1 }, 'blob x')).toThrow(ImageError);
  });
});

describe('verifyBytes', () => {
  // The same verdicts, word for word, as verifyingStream gives a stream.
  it('accepts matching bytes', () => {
    expect(() => verifyBytes({ digest: HELLO, size: 5 }, Buffer.from('hello'), 'blob x')).not.toThrow();
    expect(() => verifyBytes({ digest: EMPTY, size: 0 }, Buffer.alloc(0), 'blob x')).not.toThrow();
  });

  it.each([
    ['hellO', 5, `blob x: digest mismatch, expected ${HELLO}, got ${sha256Digest('hellO')}`],
    ['hell', 5, 'blob x: size mismatch, expected 5 bytes, got 4'],
    ['hello!', 5, 'blob x: size mismatch, expected 5 bytes, got more'],
  ])('refuses %j for a %i-byte descriptor', (data, size, message) => {
    expect(() => verifyBytes({ digest: HELLO, size }, Buffer.from(data), 'blob x')).toThrow(DigestMismatchError);
    expect(() => verifyBytes({ digest: HELLO, size }, Buffer.from(data), 'blob x')).toThrow(message);
  });

  it('refuses a malformed descriptor before looking at the bytes', () => {
    expect(() => verifyBytes({ digest: 'md5:x', size: 1 }, Buffer.from('x'), 'blob x')).toThrow(/invalid digest/);
    expect(() => verifyBytes({ digest: HELLO, size: -1 }, Buffer.from('x'), 'blob x')).toThrow('blob x: invalid size -1');
  });
});

describe('digestFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tugboat-digest-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hashes a file and reports its size', async () => {
    await writeFile(join(dir, 'f'), 'hello');
    expect(await digestFile(join(dir, 'f'))).toEqual({ digest: HELLO, size: 5 });
  });
});
