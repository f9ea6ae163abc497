// Builds tar archives in memory for layer tests.
import { Readable } from 'node:stream';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { pack } from 'tar-stream';
import type { Header } from 'tar-stream';

export interface TarEntry {
  name: string;
  type?: Header['type'];
  /** File content; only for files. */
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  mtime?: Date;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
}

export async function buildTar(entries: readonly TarEntry[]): Promise<Buffer> {
  const archive = pack();
  const collected = collect(archive);
  for (const { content, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (content === undefined) archive.entry(header, done);
      else archive.entry(header, content, done);
    });
  }
  archive.finalize();
  return collected;
}

async function collect(source: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export const file = (name: string, content: string | Buffer = '', extra: Partial<TarEntry> = {}): TarEntry => ({
  name,
  content,
  ...extra,
});
export const dir = (name: string, extra: Partial<TarEntry> = {}): TarEntry => ({ name, type: 'directory', ...extra });
export const symlink = (name: string, linkname: string, extra: Partial<TarEntry> = {}): TarEntry => ({
  name,
  type: 'symlink',
  linkname,
  ...extra,
});
export const hardlink = (name: string, linkname: string): TarEntry => ({ name, type: 'link', linkname });

export const gzip = (tar: Buffer): Buffer => gzipSync(tar);
export const zstd = (tar: Buffer): Buffer => zstdCompressSync(tar);

/** A stream delivering `bytes` in small chunks, so parsing spans many reads. */
export function streamOf(bytes: Buffer, chunkSize = 1000): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
  return Readable.from(chunks, { objectMode: false });
}
