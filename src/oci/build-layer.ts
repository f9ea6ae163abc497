// Builds one image layer from host files, deterministically: entries sorted
// by name, mtime 0, uid/gid 0, no user/group names. The same inputs always
// give the same bytes, so image digests are reproducible.

import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import * as tar from 'tar-stream';
import { NotFoundError, UsageError } from '../errors.js';
import type { FileToAdd } from './image-build.js';

export interface LayerEntry {
  /** Relative path inside the layer, no leading or trailing slash. */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  hostPath?: string;
  linkname?: string;
}

/** "/app/x.wasm" → "app/x.wasm"; "/" → "". Refuses relative paths and `..`. */
export function containerRelPath(p: string): string {
  if (!p.startsWith('/')) throw new UsageError(`container path ${JSON.stringify(p)} must be absolute`);
  if (p.includes('\0') || p.split('/').includes('..')) throw new UsageError(`container path ${JSON.stringify(p)} must not contain ..`);
  return posix.normalize(p).replace(/^\/+/, '').replace(/\/+$/, '');
}

function kindOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): LayerEntry['type'] | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  return undefined;
}

/** Expands `files` (directories recursively; symlinks inside them kept as symlinks) into sorted layer entries. */
export async function collectLayerEntries(files: FileToAdd[]): Promise<LayerEntry[]> {
  const entries = new Map<string, LayerEntry>();

  const put = (e: LayerEntry): void => {
    // Parents become 0755 directories unless given; a parent that is a file or link is a conflict.
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const existing = entries.get(dir);
      if (existing && existing.type !== 'directory') {
        throw new UsageError(`cannot add /${e.path}: /${dir} is not a directory in the image`);
      }
      if (!existing) entries.set(dir, { path: dir, type: 'directory', mode: 0o755 });
    }
    const existing = entries.get(e.path);
    if (existing?.type === 'directory' && e.type !== 'directory') {
      throw new UsageError(`cannot add /${e.path}: a directory of that name is already in the image`);
    }
    entries.set(e.path, e); // later files win, like COPY
  };

  const walk = async (hostDir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(hostDir)).sort()) {
      const hostPath = join(hostDir, name);
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(hostPath);
      const type = kindOf(st);
      if (!type) throw new UsageError(`${hostPath}: unsupported file type (only files, directories and symlinks can be added)`);
      if (type === 'symlink') put({ path, type, mode: 0o777, linkname: await readlink(hostPath) });
      else put({ path, type, mode: st.mode & 0o777, hostPath });
      if (type === 'directory') await walk(hostPath, path);
    }
  };

  for (const f of files) {
    const rel = containerRelPath(f.containerPath);
    // The named path itself is followed (like COPY); links inside directories are kept.
    const st = await stat(f.hostPath).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new NotFoundError(`${f.hostPath}: no such file or directory`) : err;
    });
    if (st.isDirectory()) {
      if (rel !== '') put({ path: rel, type: 'directory', mode: st.mode & 0o777 });
      await walk(f.hostPath, rel);
    } else if (st.isFile()) {
      if (rel === '') throw new UsageError(`cannot add file ${f.hostPath} as /`);
      put({ path: rel, type: 'file', mode: st.mode & 0o777, hostPath: f.hostPath });
    } else {
      throw new UsageError(`${f.hostPath}: unsupported file type (only files, directories and symlinks can be added)`);
    }
  }
  return [...entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A deterministic tar of named in-memory entries (for archives, not layers). */
export interface TarMember {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  data?: Buffer;
  linkname?: string;
}

/** Packs members in the given order with fixed metadata; returns the tar bytes. */
export async function packTar(members: Iterable<TarMember>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  try {
    for (const m of members) {
      const header: Partial<tar.Header> & { name: string } = {
        name: m.type === 'directory' ? `${m.name}/` : m.name,
        type: m.type,
        mode: m.mode,
        mtime: new Date(0),
        uid: 0,
        gid: 0,
        size: m.type === 'file' ? (m.data?.length ?? 0) : 0,
      };
      if (m.type === 'symlink') header.linkname = m.linkname ?? '';
      await new Promise<void>((resolve, reject) => {
        const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
        if (m.type === 'file') pack.entry(header, m.data ?? Buffer.alloc(0), cb);
        else pack.entry(header, cb);
      });
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    throw err;
  }
  await collected;
  return Buffer.concat(chunks);
}

/** The uncompressed layer tar for `entries` (from collectLayerEntries). */
export async function packLayer(entries: LayerEntry[]): Promise<Buffer> {
  const members: TarMember[] = [];
  for (const e of entries) {
    const m: TarMember = { name: e.path, type: e.type, mode: e.mode };
    if (e.type === 'file') m.data = await readFile(e.hostPath as string);
    if (e.linkname !== undefined) m.linkname = e.linkname;
    members.push(m);
  }
  return packTar(members);
}
