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

/**
 * A tar entry whose name (and link target) are raw bytes, as GNU tar and Go
 * write them for names that are not UTF-8: in the ustar header itself, or in
 * a PAX record ("path=<bytes>"). tar-stream's packer can only write UTF-8.
 */
export interface RawEntry {
  name: Buffer;
  content?: Buffer;
  type?: 'file' | 'directory' | 'symlink';
  linkname?: Buffer;
  /** Put name and linkname in a PAX header instead of the ustar fields. */
  pax?: boolean;
}

/** Writes a ustar header's checksum (after its fields change). */
export function setChecksum(h: Buffer): Buffer {
  h.write('        ', 148, 'latin1');
  let sum = 0;
  for (const b of h.subarray(0, 512)) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

export function ustarHeader(name: Buffer, typeflag: string, size: number, linkname: Buffer = Buffer.alloc(0), mode = 0o644): Buffer {
  const h = Buffer.alloc(512);
  name.copy(h, 0, 0, Math.min(100, name.length));
  h.write(mode.toString(8).padStart(7, '0') + '\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(typeflag, 156, 'latin1');
  linkname.copy(h, 157, 0, Math.min(100, linkname.length));
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  return setChecksum(h);
}

function padded(data: Buffer): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), value, Buffer.from('\n', 'latin1')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

export function rawTar(entries: readonly RawEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'file';
    const flag = type === 'directory' ? '5' : type === 'symlink' ? '2' : '0';
    const content = type === 'file' ? (e.content ?? Buffer.alloc(0)) : Buffer.alloc(0);
    let name = e.name;
    let linkname = e.linkname;
    if (e.pax) {
      const records = Buffer.concat([paxRecord('path', e.name), ...(e.linkname ? [paxRecord('linkpath', e.linkname)] : [])]);
      parts.push(ustarHeader(Buffer.from('PaxHeaders/x', 'latin1'), 'x', records.length), padded(records));
      name = Buffer.from('placeholder', 'latin1');
      linkname = e.linkname ? Buffer.from('placeholder', 'latin1') : undefined;
    }
    parts.push(ustarHeader(name, flag, content.length, linkname, type === 'directory' ? 0o755 : 0o644), padded(content));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
