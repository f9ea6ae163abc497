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
// Failure leaves partial output in the target. That is by design: callers
// extract into a temporary directory and rename it into place only when
// applyLayer resolves, so a half-applied layer is never used.

import { execFileSync } from 'node:child_process';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import type { Extract, Header } from 'tar-stream';
import { ImageError, LayerError, TugboatError } from '../errors.js';
import { decompressStream } from './compression.js';

export interface LayerLimits {
  maxEntries: number;
  maxBytes: number;
}

export const DEFAULT_LAYER_LIMITS: LayerLimits = Object.freeze({
  maxEntries: 1_000_000,
  maxBytes: 32 * 1024 ** 3,
});

export interface ApplyLayerOptions {
  limits?: Partial<LayerLimits>;
  /** Create character and block devices (otherwise they are refused). Default false. */
  allowDevices?: boolean;
  /** chown entries to the uid/gid in the archive. Default: running as root. */
  preserveOwner?: boolean;
}

export interface LayerStats {
  entries: number;
  bytes: number;
  whiteouts: number;
}

/**
 * Applies one image layer (tar, tar+gzip or tar+zstd; sniffed) onto `target`,
 * an existing directory. On failure the input is destroyed and the target may
 * hold partial output (see the header comment).
 */
export async function applyLayer(target: string, input: Readable, opts: ApplyLayerOptions = {}): Promise<LayerStats> {
  const plain = decompressStream(input);
  // Old V7 archives lack the ustar magic; headers are still checksummed.
  // (tar-stream's own types omit the option.)
  const parser = extract({ allowUnknownFormat: true } as Parameters<typeof extract>[0]);
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
    const applier = new LayerApplier(root, settingsFrom(opts));
    plain.pipe(parser);
    for await (const entry of parser) await applier.apply(entry);
    await applier.finish();
    return applier.stats;
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

function isSystemError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
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

async function openTarget(target: string): Promise<string> {
  const root = await fsp.realpath(target);
  if (!(await fsp.stat(root)).isDirectory()) {
    throw new TugboatError(`layer target ${target} is not a directory`);
  }
  return root;
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
  if ('problem' in checked) throw new LayerError(name, checked.problem);
  return checked.parts;
}

function hardlinkTargetParts(entry: string, linkname: string): string[] {
  const checked = checkName(linkname);
  if (!('problem' in checked)) return checked.parts;
  const verdict = checked.outside ? 'is outside the root' : 'is invalid';
  throw new LayerError(entry, `hardlink target ${JSON.stringify(linkname)} ${verdict} (${checked.problem})`);
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
    return await fsp.lstat(p);
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
  readonly stats: LayerStats = { entries: 0, bytes: 0, whiteouts: 0 };
  private readonly tree = new PathNode('', undefined);

  constructor(
    private readonly root: string,
    private readonly settings: Settings,
  ) {
    this.tree.isDir = true;
  }

  async apply(entry: Entry): Promise<void> {
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
        throw new LayerError(name, `unsupported entry type ${String(header.type)}`);
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
      await fsp.chmod(host, attrs.mode);
      await fsp.lutimes(host, attrs.atime, attrs.mtime);
    }
  }

  // --- limits

  private countEntry(name: string): void {
    if (++this.stats.entries > this.settings.limits.maxEntries) {
      throw new LayerError(name, `layer exceeds ${this.settings.limits.maxEntries} entries limit`);
    }
  }

  private countBytes(name: string, n: number): void {
    this.stats.bytes += n;
    this.checkBytes(name, 0);
  }

  private checkBytes(name: string, upcoming: number): void {
    if (this.stats.bytes + upcoming > this.settings.limits.maxBytes) {
      throw new LayerError(name, `layer exceeds ${this.settings.limits.maxBytes} bytes limit`);
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
        if (!dir.parent) throw new LayerError(entry, `parent path escapes the root through symlink ${lastLink}`);
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
        if (++hops > MAX_SYMLINK_HOPS) throw new LayerError(entry, 'too many levels of symbolic links');
        const target = await fsp.readlink(host);
        lastLink = `${joinRel(dir, part)} -> ${target}`;
        if (target.startsWith('/')) dir = this.tree;
        pending.push(...target.split('/').reverse());
      } else {
        throw new LayerError(entry, `parent ${joinRel(dir, part)} is not a directory`);
      }
    }
    return dir;
  }

  private async makeImplicitDir(parent: PathNode, name: string, host: string): Promise<PathNode> {
    await fsp.mkdir(host, 0o755);
    await fsp.chmod(host, 0o755); // mkdir's mode is filtered by the umask
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
    await fsp.rm(host, { recursive: true, force: true });
    parent.forget(name);
  }

  // --- entry kinds

  private async applyRoot(header: Headers): Promise<void> {
    if (header.type !== 'directory') throw new LayerError(header.name, 'cannot replace the root directory');
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
    const { node } = await this.createAt(entry, dirParts, base, (host) => fsp.mkdir(host, 0o755));
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
      opened = await fsp.open(host, flags, 0o600);
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
    if (!target) throw new LayerError(header.name, 'symlink without a target');
    if (target.includes('\0')) throw new LayerError(header.name, 'symlink target contains NUL');
    // Written verbatim: the target is only ever interpreted inside the container's root.
    const { host } = await this.createAt(header.name, dirParts, base, (at) => fsp.symlink(target, at));
    await this.finishSpecial(host, attrsOf(header, 0o777));
  }

  private async makeHardlink(header: Headers, dirParts: readonly string[], base: string): Promise<void> {
    const name = header.name;
    const linkname = header.linkname;
    if (!linkname) throw new LayerError(name, 'hardlink without a target');
    const source = await this.resolveHardlinkSource(name, linkname, hardlinkTargetParts(name, linkname));
    const parent = (await this.resolveDir(dirParts, name, true)) as PathNode;
    if (path.join(this.hostOf(parent), base) === source) return; // a link to itself is already in place
    // link(2) does not follow a symlink source, so linking one never reaches outside.
    await this.createAt(name, dirParts, base, (host) => fsp.link(source, host));
  }

  private async resolveHardlinkSource(entry: string, linkname: string, parts: readonly string[]): Promise<string> {
    const quoted = JSON.stringify(linkname);
    const base = parts.at(-1);
    if (base === undefined) throw new LayerError(entry, `hardlink target ${quoted} is a directory`);
    const dir = await this.resolveDir(parts.slice(0, -1), entry, false);
    const host = dir && path.join(this.hostOf(dir), base);
    const st = host === undefined ? undefined : await lstatOrUndefined(host);
    if (!host || !st) throw new LayerError(entry, `hardlink target ${quoted} is missing`);
    if (st.isDirectory()) throw new LayerError(entry, `hardlink target ${quoted} is a directory`);
    return host;
  }

  private async makeDevice(header: Headers, dirParts: readonly string[], base: string): Promise<void> {
    if (!this.settings.allowDevices) throw new LayerError(header.name, `device node (${header.type}) not allowed`);
    const attrs = attrsOf(header, 0o600);
    const kind = header.type === 'block-device' ? 'b' : 'c';
    const args = [kind, String(header.devmajor ?? 0), String(header.devminor ?? 0)];
    const { host } = await this.createAt(header.name, dirParts, base, (at) =>
      runHelper(header.name, at, 'mknod', ['-m', octal(attrs.mode), at, ...args]),
    );
    await this.finishSpecial(host, attrs, true);
  }

  private async makeFifo(header: Headers, dirParts: readonly string[], base: string): Promise<void> {
    const attrs = attrsOf(header, 0o644);
    const { host } = await this.createAt(header.name, dirParts, base, (at) =>
      runHelper(header.name, at, 'mkfifo', ['-m', octal(attrs.mode), at]),
    );
    await this.finishSpecial(host, attrs, true);
  }

  /** Owner and times for objects that are not opened; the mode again after chown, which clears set-id bits. */
  private async finishSpecial(host: string, attrs: Attrs, chmodAfterChown = false): Promise<void> {
    if (this.settings.preserveOwner) {
      await fsp.lchown(host, attrs.uid, attrs.gid);
      // The object was just created by us and is not a symlink, so chmod cannot be led elsewhere.
      if (chmodAfterChown) await fsp.chmod(host, attrs.mode);
    }
    await fsp.lutimes(host, attrs.atime, attrs.mtime);
  }

  private async chownPath(host: string, attrs: Attrs): Promise<void> {
    if (this.settings.preserveOwner) await fsp.lchown(host, attrs.uid, attrs.gid);
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
    if (hidden === '' || hidden === '.' || hidden === '..') throw new LayerError(name, 'invalid whiteout name');
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
    for (const name of await fsp.readdir(host)) await this.hideLowerChild(dir, name, path.join(host, name));
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
 * Runs mknod/mkfifo to create `host` (absolute, so it cannot pose as an
 * option). Like the fs calls it fails with EEXIST when something is in the way.
 */
async function runHelper(entry: string, host: string, command: string, args: string[]): Promise<void> {
  if (await lstatOrUndefined(host)) throw Object.assign(new Error(`${host} exists`), { code: 'EEXIST' });
  try {
    execFileSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new LayerError(entry, `${command} failed: ${stderr || (err instanceof Error ? err.message : String(err))}`);
  }
}
