// Unpacks an untrusted image archive (oci-archive, docker save output) into a
// private directory so it can then be read as a layout. Only regular files
// and directories are written. Member names are validated (no absolute
// paths, no `..`), nothing is ever written through a link, and entry count
// and total size are capped. Links inside the archive (older `docker save`
// writes symlinks for repeated layers) are honoured only as aliases of a
// regular file in the archive, materialised as a copy.

import { constants, createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, stat } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { asFsFailure, ImageError, isSystemError, NotFoundError, TugboatError } from '../errors.js';
import { testPause } from '../test-pause.js';
import { DEFAULT_LAYER_LIMITS, EXPANSION_ALLOWANCE } from './layers.js';

export interface ArchiveLimits {
  maxBytes: number;
  maxEntries: number;
  /** A gzip'd archive may expand to this many times its size (plus EXPANSION_ALLOWANCE), as layers may. */
  maxRatio: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = { maxBytes: 32 * 1024 ** 3, maxEntries: 100_000, maxRatio: DEFAULT_LAYER_LIMITS.maxRatio };

/** Archive member name → normalised relative path; '' for the root itself. Throws on unsafe names. */
export function safeMemberName(raw: string, what: string): string {
  const refuse = (why: string): never => {
    throw new ImageError(`${what}: refusing archive member ${JSON.stringify(raw)}: ${why}`);
  };
  if (raw.includes('\0')) refuse('NUL in name');
  if (raw.startsWith('/')) refuse('absolute path');
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) refuse('path contains ..');
  return parts.join('/');
}

/** Resolves a link target to an archive-relative path, or undefined if it leaves the archive. */
function linkTarget(name: string, linkname: string, hard: boolean): string | undefined {
  if (linkname.startsWith('/')) return undefined;
  const joined = hard ? posix.normalize(linkname) : posix.normalize(posix.join(posix.dirname(name), linkname));
  if (joined === '..' || joined.startsWith('../') || joined === '.') return undefined;
  return joined.replace(/^\.\//, '').replace(/\/$/, '');
}

interface Budget {
  left: number;
  /** Why the budget is what it is, for the message when it runs out. */
  limit: string;
}

function overBudget(budget: Budget, what: string, name: string): ImageError {
  return new ImageError(`${what}: archive exceeds ${budget.limit} at member ${JSON.stringify(name)}`);
}

function byteCap(budget: Budget, what: string, name: string): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      budget.left -= chunk.length;
      if (budget.left < 0) cb(overBudget(budget, what, name));
      else cb(null, chunk);
    },
  });
}

/** Extracts `file` into the existing empty directory `dest`; returns the regular files written. */
export async function extractArchive(
  file: string,
  dest: string,
  what: string,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<Set<string>> {
  const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOENT' ? new NotFoundError(`${what}: no such file`) : new ImageError(`${what}: ${err.message}`);
  });
  let gzipped: boolean;
  let size: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new ImageError(`${what}: not a regular file`);
    size = st.size;
    const head = Buffer.alloc(2);
    await fh.read(head, 0, 2, 0);
    gzipped = head[0] === 0x1f && head[1] === 0x8b; // `docker save | gzip` is common
  } finally {
    await fh.close();
  }

  const files = new Set<string>();
  const dirs = new Set<string>(['']);
  const aliases: { name: string; target: string }[] = [];
  const expansion = limits.maxRatio * size + EXPANSION_ALLOWANCE;
  const budget: Budget =
    gzipped && expansion < limits.maxBytes
      ? { left: expansion, limit: `${limits.maxRatio} times its compressed size` }
      : { left: limits.maxBytes, limit: `the size limit (${limits.maxBytes} bytes)` };
  let entries = 0;

  const extract = tar.extract();
  const input = createReadStream(file);
  const feeding = gzipped ? pipeline(input, createGunzip(), extract) : pipeline(input, extract);
  // The consumer below reports the first, clearer error; this one is only observed.
  feeding.catch(() => {});

  try {
    for await (const entry of extract) {
      const h = entry.header;
      if (++entries > limits.maxEntries) throw new ImageError(`${what}: more than ${limits.maxEntries} archive members`);
      const name = safeMemberName(h.name, what);
      const refuse = (why: string): never => {
        throw new ImageError(`${what}: refusing archive member ${JSON.stringify(h.name)}: ${why}`);
      };
      if (name === '') {
        if (h.type !== 'directory') refuse('not a directory');
        entry.resume();
        continue;
      }
      if (files.has(name) || (dirs.has(name) && h.type !== 'directory')) refuse('duplicate member');
      // A parent that is a file would make mkdir fail obscurely; say so instead.
      for (let d = posix.dirname(name); d !== '.'; d = posix.dirname(d)) {
        if (files.has(d)) refuse('parent is a file');
        dirs.add(d);
      }
      switch (h.type) {
        case 'directory':
          await mkdir(join(dest, name), { recursive: true, mode: 0o700 });
          dirs.add(name);
          entry.resume();
          break;
        case 'file':
        case 'contiguous-file': {
          if ((h.size ?? 0) > budget.left) throw overBudget(budget, what, h.name);
          await mkdir(join(dest, posix.dirname(name)), { recursive: true, mode: 0o700 });
          await pipeline(entry, byteCap(budget, what, h.name), createWriteStream(join(dest, name), { flags: 'wx', mode: 0o600 }));
          files.add(name);
          testPause('archive');
          break;
        }
        case 'symlink':
        case 'link': {
          const target = linkTarget(name, h.linkname ?? '', h.type === 'link');
          if (target === undefined) refuse(`link target ${JSON.stringify(h.linkname)} is outside the archive`);
          aliases.push({ name, target: target as string });
          entry.resume();
          break;
        }
        default:
          refuse(`${h.type ?? 'unknown'} entries are not allowed`);
      }
    }
    await feeding;
  } catch (err) {
    input.destroy();
    extract.destroy();
    if (err instanceof TugboatError) throw err;
    // A full disk or a name too long for it is not a broken archive.
    if (isSystemError(err)) throw asFsFailure(err, `${what}: cannot unpack the archive`);
    throw new ImageError(`${what}: not a valid tar archive: ${(err as Error).message}`, { cause: err });
  }

  await materialiseAliases(aliases, files, dirs, dest, budget, what);
  return files;
}

async function materialiseAliases(
  aliases: { name: string; target: string }[],
  files: Set<string>,
  dirs: Set<string>,
  dest: string,
  budget: Budget,
  what: string,
): Promise<void> {
  const byName = new Map(aliases.map((a) => [a.name, a.target]));
  for (const { name } of aliases) {
    // Follow alias chains a few hops; anything else (a directory, a loop, a
    // missing member) is refused rather than guessed at.
    let target = byName.get(name) as string;
    for (let hops = 0; !files.has(target) && byName.has(target) && hops < 8; hops++) target = byName.get(target) as string;
    if (!files.has(target)) {
      throw new ImageError(`${what}: refusing archive member ${JSON.stringify(name)}: link does not point to a regular file in the archive`);
    }
    if (files.has(name) || dirs.has(name)) throw new ImageError(`${what}: refusing archive member ${JSON.stringify(name)}: duplicate member`);
    for (let d = posix.dirname(name); d !== '.'; d = posix.dirname(d)) {
      if (files.has(d)) throw new ImageError(`${what}: refusing archive member ${JSON.stringify(name)}: parent is a file`);
    }
    const size = (await stat(join(dest, target))).size;
    budget.left -= size;
    if (budget.left < 0) throw overBudget(budget, what, name);
    await mkdir(join(dest, dirname(name)), { recursive: true, mode: 0o700 });
    await copyFile(join(dest, target), join(dest, name), constants.COPYFILE_EXCL);
    files.add(name);
  }
}
