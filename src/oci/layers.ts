// The layer applier: unpacks one image layer (tar, tar+gzip, tar+zstd) onto a
// root filesystem directory, treating the archive as hostile.
//
// Safety model (the bar is containerd's archive/tar.go applier):
// - entry names are normalized and must stay inside the root;
// - the parent directory of every entry is resolved component by component
//   inside the root, following symlinks that already exist there as the
//   container would see them (an absolute target restarts at the root), and a
//   link whose target climbs above the root is refused;
// - the final component is never followed: whatever is there is removed (or,
//   for directory over directory, kept) and the new object is created fresh,
//   files with O_EXCL|O_NOFOLLOW.
//
// Names are handled as bytes (see tar-names.ts): every path below is a
// "byte string" (latin1, one character per byte) and reaches the file system
// as a Buffer, so names that are not UTF-8 stay distinct.
//
// Work is bounded: entries, bytes written, and how far the layer may expand
// beyond its compressed size (a small gzip of zeros can otherwise fill the
// disk). The digest of the uncompressed tar (the layer's diff_id) is computed
// on the way for the caller to check.
//
// Failure leaves partial output in the target. That is by design: callers
// extract into a temporary directory and rename it into place only when
// applyLayer resolves, so a half-applied layer is never used.

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Extract, Header } from 'tar-stream';
import { describeFsError, ImageError, isSystemError, LayerError, TugboatError } from '../errors.js';
import { decompressStream } from './compression.js';
import { byteNameExtract, displayName, nameBytes } from './tar-names.js';

export interface LayerLimits {
  /** Entries in one layer. Real images have a few thousand per layer; the largest seen ~100k. */
  maxEntries: number;
  /** Bytes of file content written by one layer. */
  maxBytes: number;
  /**
   * How many times its compressed size a layer may expand to (uncompressed
   * tar bytes, headers included), beyond a fixed allowance of
   * EXPANSION_ALLOWANCE. Real layers compress 2–10×; gzip's own limit is ~1000×.
   */
  maxRatio: number;
}

export const DEFAULT_LAYER_LIMITS: LayerLimits = Object.freeze({
  maxEntries: 200_000,
  maxBytes: 32 * 1024 ** 3,
  maxRatio: 100,
});

/** Uncompressed bytes any layer may expand to whatever its compressed size. */
export const EXPANSION_ALLOWANCE = 64 * 1024 * 1024;

/** How each limit is named on the command line (`--layer-limits KEY=VALUE,...`), for messages. */
const LIMIT_FLAG = '--layer-limits';

export interface ApplyLayerOptions {
  limits?: Partial<LayerLimits>;
  /** The compressed size, when known up front (a descriptor's size); otherwise bytes are counted as they arrive. */
  inputSize?: number;
  /** Create character and block devices (otherwise they are refused). Default false. */
  allowDevices?: boolean;
  /** chown entries to the uid/gid in the archive. Default: running as root. */
  preserveOwner?: boolean;
}

export interface LayerStats {
  entries: number;
  bytes: number;
  whiteouts: number;
  /** sha256 of the uncompressed tar: what a config's rootfs.diff_ids lists. */
  diffId: string;
}

/**
 * Applies one image layer (tar, tar+gzip or tar+zstd; sniffed) onto `target`,
 * an existing directory. On failure the input is destroyed and the target may
 * hold partial output (see the header comment).
 */
export async function applyLayer(target: string, input: Readable, opts: ApplyLayerOptions = {}): Promise<LayerStats> {
  const settings = settingsFrom(opts);
  const meter = new ExpansionMeter(settings.limits.maxRatio, opts.inputSize);
  const plain = decompressStream(meter.countInput(input));
  // Old V7 archives lack the ustar magic; headers are still checksummed.
  const parser = byteNameExtract({ allowUnknownFormat: true });
  // Failures below the parser (codec, input) are delivered through it. Each
  // side's first failure is remembered, because entry streams torn down by
  // it only report a generic "Stream was destroyed".
  let sourceFailure: unknown;
  let parserFailure: unknown;
  plain.on('error', (err) => {
    sourceFailure ??= err;
    parser.destroy(err);
  });
  parser.on('error', (err: unknown) => {
    parserFailure ??= err;
  });
  try {
    const root = await openTarget(target);
    const applier = new LayerApplier(root, settings);
    plain.pipe(parser);
    meter.watch(plain); // in the same tick as pipe(), so both see every chunk
    for await (const entry of parser) await applier.apply(entry);
    await applier.finish();
    return { ...applier.stats, diffId: await meter.digest() };
  } catch (err) {
    parser.destroy();
    plain.destroy();
    input.destroy();
    await closed(parser); // its 'error' event, if any, comes before 'close'
    if (isOwnVerdict(err)) throw err;
    // Codec errors are already ImageErrors and input errors are the caller's own.
    if (sourceFailure !== undefined) throw sourceFailure;
    if (parserFailure !== undefined) throw describeParserFailure(parserFailure);
    throw err;
  }
}

/**
 * The diff_id of a layer blob (sha256 of its uncompressed tar) without
 * applying it, under the same expansion bound.
 */
export async function layerDiffId(input: Readable, what: string, opts: Pick<ApplyLayerOptions, 'limits' | 'inputSize'> = {}): Promise<string> {
  const meter = new ExpansionMeter(settingsFrom(opts).limits.maxRatio, opts.inputSize);
  const plain = decompressStream(meter.countInput(input));
  meter.watch(plain);
  try {
    return await meter.digest();
  } catch (err) {
    if (err instanceof ImageError) throw new ImageError(`${what}: ${err.message}`, { cause: err });
    throw err;
  } finally {
    plain.destroy();
  }
}

// ---------------------------------------------------------------------------
// Settings and failures

type Entry = Extract extends AsyncIterable<infer E> ? E : never;

/**
 * The header as the parser really produces it: unknown typeflags come through
 * as null, and fields absent from the archive may be null or undefined.
 */
type Headers = Omit<Header, 'type' | 'linkname' | 'pax'> & {
  type: Header['type'] | 'pax-header' | 'pax-global-header' | 'gnu-long-path' | 'gnu-long-link-path' | null | undefined;
  linkname: string | null | undefined;
  pax?: Record<string, string> | null;
};

function headerOf(entry: Entry): Headers {
  return entry.header as Headers;
}

function closed(stream: Extract): Promise<void> {
  if (stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

/** A failure decided by the applier or the file system, as opposed to a stream being torn down. */
function isOwnVerdict(err: unknown): boolean {
  return err instanceof TugboatError || isSystemError(err);
}

interface Settings {
  limits: LayerLimits;
  allowDevices: boolean;
  preserveOwner: boolean;
}

function settingsFrom(opts: ApplyLayerOptions): Settings {
  return {
    limits: { ...DEFAULT_LAYER_LIMITS, ...opts.limits },
    allowDevices: opts.allowDevices ?? false,
    preserveOwner: opts.preserveOwner ?? process.getuid?.() === 0,
  };
}

/** The target as a byte string (see the header comment). */
async function openTarget(target: string): Promise<string> {
  const root = await fsp.realpath(target, { encoding: 'buffer' });
  if (!(await fsp.stat(root)).isDirectory()) {
    throw new TugboatError(`layer target ${target} is not a directory`);
  }
  return root.toString('latin1');
}

/** The file-system calls the applier makes, on byte-string paths. */
const bfs = {
  lstat: (p: string) => fsp.lstat(nameBytes(p)),
  mkdir: (p: string, mode: number) => fsp.mkdir(nameBytes(p), mode),
  chmod: (p: string, mode: number) => fsp.chmod(nameBytes(p), mode),
  lchown: (p: string, uid: number, gid: number) => fsp.lchown(nameBytes(p), uid, gid),
  lutimes: (p: string, atime: Date, mtime: Date) => fsp.lutimes(nameBytes(p), atime, mtime),
  open: (p: string, flags: number, mode: number) => fsp.open(nameBytes(p), flags, mode),
  symlink: (target: string, p: string) => fsp.symlink(nameBytes(target), nameBytes(p)),
  link: (existing: string, p: string) => fsp.link(nameBytes(existing), nameBytes(p)),
  unlink: (p: string) => fsp.unlink(nameBytes(p)),
  rm: (p: string) => fsp.rm(nameBytes(p), { recursive: true, force: true }),
  readlink: async (p: string) => (await fsp.readlink(nameBytes(p), { encoding: 'buffer' })).toString('latin1'),
  readdir: async (p: string) => (await fsp.readdir(nameBytes(p), { encoding: 'buffer' })).map((n) => n.toString('latin1')),
};

/** A refusal naming the entry readably (names are byte strings here). */
function layerError(name: string, reason: string): LayerError {
  return new LayerError(displayName(name), reason);
}

/** System errors about the target as a whole (a full disk) are the caller's to report; the rest are this entry's. */
const TARGET_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'ENOMEM', 'EMFILE', 'ENFILE']);

/**
 * Counts the compressed bytes coming in and the uncompressed bytes going to
 * the parser, hashing the latter (the diff_id), and stops a layer that
 * expands beyond its ratio.
 */
class ExpansionMeter {
  private compressed = 0;
  private plain = 0;
  private readonly hash = createHash('sha256');
  private ended: Promise<void> | undefined;

  constructor(
    private readonly maxRatio: number,
    private readonly inputSize: number | undefined,
  ) {}

  countInput(input: Readable): Readable {
    const self = this;
    async function* counted(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of input as AsyncIterable<Buffer | string>) {
          const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          self.compressed += b.length;
          yield b;
        }
      } finally {
        input.destroy();
      }
    }
    return Readable.from(counted(), { objectMode: false });
  }

  watch(plain: Readable): void {
    this.ended = finished(plain);
    this.ended.catch(() => undefined); // reported by whoever consumes `plain`
    plain.on('data', (chunk: Buffer) => {
      this.plain += chunk.length;
      this.hash.update(chunk);
      const allowed = this.maxRatio * Math.max(this.inputSize ?? 0, this.compressed) + EXPANSION_ALLOWANCE;
      if (this.plain > allowed) {
        plain.destroy(
          new ImageError(
            `layer expands to more than ${this.maxRatio} times its compressed size (limit ${LIMIT_FLAG} ratio=${this.maxRatio})`,
          ),
        );
      }
    });
  }

  /** The diff_id, once the whole uncompressed stream has passed. */
  async digest(): Promise<string> {
    await this.ended;
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/** The tar parser gave up: the archive is malformed or truncated. */
function describeParserFailure(err: unknown): ImageError {
  const message = err instanceof Error ? err.message : String(err);
  const reason = message === 'Unexpected end of data' ? 'truncated layer tar (unexpected end of data)' : `corrupt layer tar: ${message}`;
  return new ImageError(reason, { cause: err });
}

// ---------------------------------------------------------------------------
// Names

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';
const MAX_SYMLINK_HOPS = 40;

type NameCheck = { parts: string[] } | { problem: string; outside: boolean };

/** Normalizes an archive name to root-relative components ([] is the root itself). */
function checkName(raw: string): NameCheck {
  if (raw.includes('\0')) return { problem: 'name contains NUL', outside: false };
  if (raw === '') return { problem: 'empty name', outside: false };
  if (raw.startsWith('/')) return { problem: 'absolute path', outside: true };
  const normal = path.posix.normalize(raw).replace(/\/+$/, '');
  if (normal === '..' || normal.startsWith('../')) return { problem: 'path escapes the root', outside: true };
  if (normal === '.' || normal === '') return { parts: [] };
  return { parts: normal.split('/') };
}

function entryParts(name: string): string[] {
  const checked = checkName(name);
  if ('problem' in checked) throw layerError(name, checked.problem);
  return checked.parts;
}

function hardlinkTargetParts(entry: string, linkname: string): string[] {
  const checked = checkName(linkname);
  if (!('problem' in checked)) return checked.parts;
  const verdict = checked.outside ? 'is outside the root' : 'is invalid';
  throw layerError(entry, `hardlink target ${JSON.stringify(displayName(linkname))} ${verdict} (${checked.problem})`);
}

// ---------------------------------------------------------------------------
// Attributes

interface Attrs {
  mode: number;
  uid: number;
  gid: number;
  atime: Date;
  mtime: Date;
}

type PaxRecords = Record<string, string>;

function paxOf(header: Headers): PaxRecords | undefined {
  return header.pax ?? undefined;
}

/** PAX records carry ids too large for the ustar fields and sub-second times. */
function paxNumber(pax: PaxRecords | undefined, key: string): number | undefined {
  const raw = pax?.[key];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}

function attrsOf(header: Headers, defaultMode: number): Attrs {
  const pax = paxOf(header);
  const paxMtime = paxNumber(pax, 'mtime');
  const mtime = paxMtime !== undefined ? new Date(paxMtime * 1000) : (header.mtime ?? new Date(0));
  const paxAtime = paxNumber(pax, 'atime');
  return {
    mode: (header.mode ?? defaultMode) & 0o7777,
    uid: paxNumber(pax, 'uid') ?? header.uid ?? 0,
    gid: paxNumber(pax, 'gid') ?? header.gid ?? 0,
    atime: paxAtime !== undefined ? new Date(paxAtime * 1000) : mtime,
    mtime,
  };
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await bfs.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

// ---------------------------------------------------------------------------
// What the applier knows about paths under the root

/**
 * One path under the root, keyed by its resolved (symlink-free) location.
 * Removing a path detaches its node, which forgets everything known below it
 * in O(1); that is what keeps the cached facts (`isDir`) truthful.
 */
class PathNode {
  private children: Map<string, PathNode> | undefined;
  /** An entry of this layer (or an implicit parent of one) was applied here. */
  created = false;
  /** Some descendant was created by this layer. */
  createdBelow = false;
  /** Verified to be a real directory on disk, so resolution may skip lstat. */
  isDir = false;
  /** Directory holds nothing from lower layers (made here, or already made opaque). */
  noLowerContent = false;
  /** Mode and times applied after the whole layer, since children change a directory's mtime. */
  pendingAttrs: Attrs | undefined;

  constructor(
    readonly name: string,
    readonly parent: PathNode | undefined,
  ) {}

  get(name: string): PathNode | undefined {
    return this.children?.get(name);
  }

  child(name: string): PathNode {
    this.children ??= new Map();
    let node = this.children.get(name);
    if (!node) {
      node = new PathNode(name, this);
      this.children.set(name, node);
    }
    return node;
  }

  forget(name: string): void {
    this.children?.delete(name);
  }

  markCreated(): void {
    this.created = true;
    for (let up = this.parent; up && !up.createdBelow; up = up.parent) up.createdBelow = true;
  }

  relativePath(): string {
    const names: string[] = [];
    for (let node: PathNode | undefined = this; node?.parent; node = node.parent) names.push(node.name);
    return names.reverse().join('/');
  }

  *descendantsPostOrder(): Generator<PathNode> {
    for (const child of this.children?.values() ?? []) yield* child.descendantsPostOrder();
    yield this;
  }
}

interface Slot {
  node: PathNode;
  host: string;
}

// ---------------------------------------------------------------------------
// The applier

class LayerApplier {
  readonly stats: Omit<LayerStats, 'diffId'> = { entries: 0, bytes: 0, whiteouts: 0 };
  private readonly tree = new PathNode('', undefined);

  constructor(
    private readonly root: string,
    private readonly settings: Settings,
  ) {
    this.tree.isDir = true;
  }

  async apply(entry: Entry): Promise<void> {
    try {
      await this.applyEntry(entry);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (isSystemError(err) && !TARGET_ERRORS.has(code ?? '')) throw layerError(headerOf(entry).name, describeFsError(err));
      throw err;
    }
  }

  private async applyEntry(entry: Entry): Promise<void> {
    const header = headerOf(entry);
    const name = header.name;
    this.countEntry(name);
    if (isMetadataType(header.type)) return this.discard(entry, name);

    const parts = entryParts(name);
    const base = parts.at(-1);
    if (base === undefined) {
      await this.applyRoot(header);
      return this.discard(entry, name);
    }
    const dirParts = parts.slice(0, -1);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      await this.applyWhiteout(name, dirParts, base);
      return this.discard(entry, name);
    }

    switch (header.type) {
      case 'file':
      case 'contiguous-file':
        return this.writeFile(entry, dirParts, base);
      case 'directory':
        await this.makeDirectory(header, dirParts, base);
        break;
      case 'symlink':
        await this.makeSymlink(header, dirParts, base);
        break;
      case 'link':
        await this.makeHardlink(header, dirParts, base);
        break;
      case 'character-device':
      case 'block-device':
        await this.makeDevice(header, dirParts, base);
        break;
      case 'fifo':
        await this.makeFifo(header, dirParts, base);
        break;
      default:
        throw layerError(name, `unsupported entry type ${String(header.type)}`);
    }
    return this.discard(entry, name);
  }

  /** Applies directory modes and times now that no child will change them again. */
  async finish(): Promise<void> {
    for (const node of this.tree.descendantsPostOrder()) {
      const attrs = node.pendingAttrs;
      if (!attrs) continue;
      const host = this.hostOf(node);
      // Nodes of replaced paths are detached, so this is a directory we made
      // or kept; the lstat is a last check before the link-following chmod.
      const st = await lstatOrUndefined(host);
      if (!st?.isDirectory()) continue;
      await bfs.chmod(host, attrs.mode);
      await bfs.lutimes(host, attrs.atime, attrs.mtime);
    }
  }

  // --- limits

  private countEntry(name: string): void {
    if (++this.stats.entries > this.settings.limits.maxEntries) {
      throw layerError(name, `layer has more than ${this.settings.limits.maxEntries} entries (limit ${LIMIT_FLAG} entries=${this.settings.limits.maxEntries})`);
    }
  }

  private countBytes(name: string, n: number): void {
    this.stats.bytes += n;
    this.checkBytes(name, 0);
  }

  private checkBytes(name: string, upcoming: number): void {
    if (this.stats.bytes + upcoming > this.settings.limits.maxBytes) {
      throw layerError(name, `layer holds more than ${this.settings.limits.maxBytes} bytes (limit ${LIMIT_FLAG} size=${this.settings.limits.maxBytes})`);
    }
  }

  /** Yields an entry's content while charging it to the byte budget. */
  private async *meteredContent(entry: Entry, name: string): AsyncGenerator<Buffer> {
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      this.countBytes(name, chunk.length);
      yield chunk;
    }
  }

  /** Reads past an entry's content (normally empty) so the parser can move on. */
  private async discard(entry: Entry, name: string): Promise<void> {
    for await (const chunk of this.meteredContent(entry, name)) void chunk;
  }

  // --- path resolution

  private hostOf(node: PathNode): string {
    const rel = node.relativePath();
    return rel === '' ? this.root : path.join(this.root, rel);
  }

  /**
   * Resolves directory components inside the root, following existing
   * symlinks as the container would (absolute targets restart at the root).
   * Missing directories are created 0755 when `create`, else undefined is
   * returned. A link climbing above the root is refused, never clamped: a
   * layer relying on that is hostile or broken.
   */
  private async resolveDir(parts: readonly string[], entry: string, create: boolean): Promise<PathNode | undefined> {
    let dir = this.tree;
    const pending = [...parts].reverse(); // a stack: the next component is last
    let hops = 0;
    let lastLink = '';
    while (pending.length > 0) {
      const part = pending.pop() as string;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        // Only symlink targets contribute "..": entry names are normalized.
        if (!dir.parent) throw layerError(entry, `parent path escapes the root through symlink ${displayName(lastLink)}`);
        dir = dir.parent;
        continue;
      }
      const known = dir.get(part);
      if (known?.isDir) {
        dir = known;
        continue;
      }
      const host = path.join(this.hostOf(dir), part);
      const st = await lstatOrUndefined(host);
      if (!st) {
        if (!create) return undefined;
        dir = await this.makeImplicitDir(dir, part, host);
      } else if (st.isDirectory()) {
        dir = dir.child(part);
        dir.isDir = true;
      } else if (st.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS) throw layerError(entry, 'too many levels of symbolic links');
        const target = await bfs.readlink(host);
        lastLink = `${joinRel(dir, part)} -> ${target}`;
        if (target.startsWith('/')) dir = this.tree;
        pending.push(...target.split('/').reverse());
      } else {
        throw layerError(entry, `parent ${displayName(joinRel(dir, part))} is not a directory`);
      }
    }
    return dir;
  }

  private async makeImplicitDir(parent: PathNode, name: string, host: string): Promise<PathNode> {
    await bfs.mkdir(host, 0o755);
    await bfs.chmod(host, 0o755); // mkdir's mode is filtered by the umask
    const node = parent.child(name);
    node.isDir = true;
    node.noLowerContent = true;
    node.markCreated();
    return node;
  }

  /**
   * Creates an entry's object at its final path. `create` must fail with
   * EEXIST rather than follow or overwrite whatever is there; only then is
   * the obstacle removed (recursively) and creation retried, so the common
   * case of a fresh path costs no extra lstat.
   */
  private async createAt(entry: string, dirParts: readonly string[], base: string, create: (host: string) => Promise<void>): Promise<Slot> {
    const parent = (await this.resolveDir(dirParts, entry, true)) as PathNode;
    const host = path.join(this.hostOf(parent), base);
    try {
      await create(host);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      await this.removePath(parent, base, host);
      await create(host);
    }
    parent.forget(base);
    const node = parent.child(base);
    node.markCreated();
    return { node, host };
  }

  /** Removes a path (recursively; symlinks themselves, never their targets) and forgets it. */
  private async removePath(parent: PathNode, name: string, host: string): Promise<void> {
    await bfs.rm(host);
    parent.forget(name);
  }

  // --- entry kinds

  private async applyRoot(header: Headers): Promise<void> {
    if (header.type !== 'directory') throw layerError(header.name, 'cannot replace the root directory');
    const attrs = attrsOf(header, 0o755);
    await this.chownPath(this.root, attrs);
    this.tree.pendingAttrs = attrs;
  }

  private async makeDirectory(header: Headers, dirParts: readonly string[], base: string): Promise<void> {
    const node = (await this.keepDirectory(header.name, dirParts, base)) ?? (await this.createDirectory(header.name, dirParts, base));
    node.markCreated();
    const attrs = attrsOf(header, 0o755);
    await this.chownPath(this.hostOf(node), attrs);
    node.pendingAttrs = attrs;
  }

  /** Directory over directory keeps the existing one (and its lower content). */
  private async keepDirectory(entry: string, dirParts: readonly string[], base: string): Promise<PathNode | undefined> {
    const parent = (await this.resolveDir(dirParts, entry, true)) as PathNode;
    const known = parent.get(base);
    if (known?.isDir) return known;
    if (!(await lstatOrUndefined(path.join(this.hostOf(parent), base)))?.isDirectory()) return undefined;
    const node = parent.child(base);
    node.isDir = true;
    return node;
  }

  private async createDirectory(entry: string, dirParts: readonly string[], base: string): Promise<PathNode> {
    // Final mode comes at finish(); until then the owner must be able to add children.
    const { node } = await this.createAt(entry, dirParts, base, (host) => bfs.mkdir(host, 0o755));
    node.isDir = true;
    node.noLowerContent = true;
    return node;
  }

  private async writeFile(entry: Entry, dirParts: readonly string[], base: string): Promise<void> {
    const header = headerOf(entry);
    this.checkBytes(header.name, header.size ?? 0);
    const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
    let opened: FileHandle | undefined;
    await this.createAt(header.name, dirParts, base, async (host) => {
      opened = await bfs.open(host, flags, 0o600);
    });
    const file = opened as FileHandle;
    try {
      await writeAll(file, this.meteredContent(entry, header.name));
      const attrs = attrsOf(header, 0o644);
      if (this.settings.preserveOwner) await file.chown(attrs.uid, attrs.gid);
      await file.chmod(attrs.mode); // after chown, which clears set-id bits
      await file.utimes(attrs.atime, attrs.mtime);
    } finally {
      await file.close();
    }
  }

  private async makeSymlink(header: Headers, dirParts: readonly string[], base: string): Promise<void> {
    const target = header.linkname;
    if (!target) throw layerError(header.name, 'symlink without a target');
    if (target.includes('\0')) throw layerError(header.name, 'symlink target contains NUL');
    // Written verbatim: the target is only ever interpreted inside the container's root.
    const { host } = await this.createAt(header.name, dirParts, base, (at) => bfs.symlink(target, at));
    await this.finishSpecial(host, attrsOf(header, 0o777));
  }

  private async makeHardlink(header: Headers, dirParts: readonly string[], base: string): Promise<void> {
    const name = header.name;
    const linkname = header.linkname;
    if (!linkname) throw layerError(name, 'hardlink without a target');
    const source = await this.resolveHardlinkSource(name, linkname, hardlinkTargetParts(name, linkname));
    const parent = (await this.resolveDir(dirParts, name, true)) as PathNode;
    if (path.join(this.hostOf(parent), base) === source) return; // a link to itself is already in place
    // link(2) does not follow a symlink source, so linking one never reaches outside.
    await this.createAt(name, dirParts, base, (host) => bfs.link(source, host));
  }

  private async resolveHardlinkSource(entry: string, linkname: string, parts: readonly string[]): Promise<string> {
    const quoted = JSON.stringify(displayName(linkname));
    const base = parts.at(-1);
    if (base === undefined) throw layerError(entry, `hardlink target ${quoted} is a directory`);
    const dir = await this.resolveDir(parts.slice(0, -1), entry, false);
    const host = dir && path.join(this.hostOf(dir), base);
    const st = host === undefined ? undefined : await lstatOrUndefined(host);
    if (!host || !st) throw layerError(entry, `hardlink target ${quoted} is missing`);
    if (st.isDirectory()) throw layerError(entry, `hardlink target ${quoted} is a directory`);
    return host;
  }

  private async makeDevice(header: Headers, dirParts: readonly string[], base: string): Promise<void> {
    if (!this.settings.allowDevices) throw layerError(header.name, `device node (${header.type}) not allowed`);
    const attrs = attrsOf(header, 0o600);
    const kind = header.type === 'block-device' ? 'b' : 'c';
    const args = [kind, String(header.devmajor ?? 0), String(header.devminor ?? 0)];
    const { host } = await this.createAt(header.name, dirParts, base, (at) =>
      runHelper(header.name, at, this.root, (tmp) => ['mknod', ['-m', octal(attrs.mode), tmp, ...args]]),
    );
    await this.finishSpecial(host, attrs, true);
  }

  private async makeFifo(header: Headers, dirParts: readonly string[], base: string): Promise<void> {
    const attrs = attrsOf(header, 0o644);
    const { host } = await this.createAt(header.name, dirParts, base, (at) =>
      runHelper(header.name, at, this.root, (tmp) => ['mkfifo', ['-m', octal(attrs.mode), tmp]]),
    );
    await this.finishSpecial(host, attrs, true);
  }

  /** Owner and times for objects that are not opened; the mode again after chown, which clears set-id bits. */
  private async finishSpecial(host: string, attrs: Attrs, chmodAfterChown = false): Promise<void> {
    if (this.settings.preserveOwner) {
      await bfs.lchown(host, attrs.uid, attrs.gid);
      // The object was just created by us and is not a symlink, so chmod cannot be led elsewhere.
      if (chmodAfterChown) await bfs.chmod(host, attrs.mode);
    }
    await bfs.lutimes(host, attrs.atime, attrs.mtime);
  }

  private async chownPath(host: string, attrs: Attrs): Promise<void> {
    if (this.settings.preserveOwner) await bfs.lchown(host, attrs.uid, attrs.gid);
  }

  // --- whiteouts (OCI image-spec layer.md)
  //
  // The spec says whiteouts apply only to lower layers, so entries this same
  // layer created are kept whatever the order of marker and entries.

  private async applyWhiteout(name: string, dirParts: readonly string[], base: string): Promise<void> {
    if (base === WHITEOUT_OPAQUE) {
      this.stats.whiteouts++;
      // The marker implies the directory exists in this layer.
      const dir = (await this.resolveDir(dirParts, name, true)) as PathNode;
      await this.hideLowerContent(dir);
      return;
    }
    // Other `.wh..wh.` names are reserved bookkeeping (aufs); they hide nothing.
    if (base.startsWith(WHITEOUT_META_PREFIX)) return;
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw layerError(name, 'invalid whiteout name');
    this.stats.whiteouts++;
    const dir = await this.resolveDir(dirParts, name, false);
    if (!dir) return; // nothing below to hide
    const host = path.join(this.hostOf(dir), hidden);
    if (await lstatOrUndefined(host)) await this.hideLowerChild(dir, hidden, host);
  }

  /**
   * Whiteouts only hide what lower layers put there; what this layer created
   * (before or after the marker) stays, so a directory holding some of this
   * layer's entries is pruned rather than removed.
   */
  private async hideLowerContent(dir: PathNode): Promise<void> {
    if (dir.noLowerContent) return;
    const host = this.hostOf(dir);
    for (const name of await bfs.readdir(host)) await this.hideLowerChild(dir, name, path.join(host, name));
    dir.noLowerContent = true;
  }

  private async hideLowerChild(dir: PathNode, name: string, host: string): Promise<void> {
    const child = dir.get(name);
    if (!child || !(child.created || child.createdBelow)) {
      await this.removePath(dir, name, host);
      return;
    }
    if ((await lstatOrUndefined(host))?.isDirectory()) {
      child.isDir = true;
      await this.hideLowerContent(child);
    }
  }
}

/**
 * Streams chunks into the file one write at a time: the next chunk is only
 * pulled once the previous one is on disk, which is the backpressure. (A
 * write stream would also do, but it insists on owning the descriptor, and
 * the file's owner, mode and times are set through the descriptor after the
 * content is written.)
 */
async function writeAll(file: FileHandle, chunks: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of chunks) {
    for (let offset = 0; offset < chunk.length; ) {
      const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
      offset += bytesWritten;
    }
  }
}

function isMetadataType(type: Headers['type']): boolean {
  return type === 'pax-header' || type === 'pax-global-header' || type === 'gnu-long-path' || type === 'gnu-long-link-path';
}

function joinRel(dir: PathNode, name: string): string {
  const rel = dir.relativePath();
  return rel === '' ? name : `${rel}/${name}`;
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/**
 * Runs mknod/mkfifo to create `host`. A command line is text, and `host` is
 * bytes, so the node is made under a plain temp name in the root (absolute,
 * so it cannot pose as an option) and hard-linked into place, which, like
 * the fs calls, fails with EEXIST when something is in the way.
 */
async function runHelper(entry: string, host: string, root: string, command: (tmp: string) => [string, string[]]): Promise<void> {
  const tmp = path.join(root, `.tugboat-node-${randomBytes(6).toString('hex')}`);
  const [file, args] = command(nameBytes(tmp).toString('utf8'));
  try {
    execFileSync(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw layerError(entry, `${file} failed: ${stderr || (err instanceof Error ? err.message : String(err))}`);
  }
  try {
    await bfs.link(tmp, host);
  } finally {
    await bfs.unlink(tmp);
  }
}
