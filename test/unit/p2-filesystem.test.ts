// wasi:filesystem on the kernel-resolved host (src/wasi-host/p2/), called the
// way jco's glue calls it (flags as objects, u64 as bigint, errors thrown as
// error-code strings), on real files in a temp root with no runc around:
// every descriptor function, the directory stream, the streams, read-only
// preopens, the escapes, and that every host descriptor is released.
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { GuestConfig } from '../../src/wasi-host/guest-config.js';
import { createFilesystem, filesystemErrorCode, type ComponentFilesystem, type Descriptor } from '../../src/wasi-host/p2/index.js';
import { setOpenat2 } from '../../src/wasi-host/preview1/index.js';

interface In {
  read(n: bigint): Uint8Array;
  blockingRead(n: bigint): Uint8Array;
  skip(n: bigint): bigint;
  [Symbol.dispose](): void;
}
interface Out {
  checkWrite(): bigint;
  write(b: Uint8Array): void;
  blockingWriteAndFlush(b: Uint8Array): void;
  blockingFlush(): void;
  writeZeroes(n: bigint): void;
  blockingSplice(src: In, n: bigint): bigint;
  [Symbol.dispose](): void;
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const RO = { read: true };
const RW = { read: true, write: true };
const FOLLOW = { symlinkFollow: true };
const NOFOLLOW = {};

/** The error code a call throws (jco's result::err), or 'ok'. */
function code(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (typeof err === 'string') return err;
    throw err;
  }
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Everything an input stream has, until stream-error::closed. */
function drain(s: In): string {
  let out = '';
  for (;;) {
    try {
      out += dec(s.blockingRead(4096n));
    } catch (err) {
      expect(err).toEqual({ tag: 'closed' });
      return out;
    }
  }
}

let root: string;
let fs: ComponentFilesystem;
let dirs: Map<string, Descriptor>;
const dir = (name: string) => dirs.get(name)!;
const secret = join(tmpdir(), `tugboat-p2-secret-${process.pid}`);
let server: Server;

function makeRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'tugboat-p2-'));
  writeFileSync(join(r, 'file'), 'hello file');
  mkdirSync(join(r, 'data', 'sub'), { recursive: true });
  writeFileSync(join(r, 'data', 'd.txt'), 'data');
  symlinkSync('/file', join(r, 'data', 'abs'));
  symlinkSync('..', join(r, 'data', 'up'));
  symlinkSync(secret, join(r, 'data', 'host'));
  symlinkSync('/file', join(r, 'abs'));
  symlinkSync('/', join(r, 'rootlink'));
  symlinkSync(secret, join(r, 'hostlink'));
  symlinkSync('file', join(r, 'lfile'));
  mkdirSync(join(r, 'ro', 'inner'), { recursive: true });
  writeFileSync(join(r, 'ro', 'r.txt'), 'read me');
  mkdirSync(join(r, 'w'));
  writeFileSync(join(r, 'w', 'here.txt'), 'in the working directory');
  execFileSync('mkfifo', [join(r, 'fifo')]);
  return r;
}

beforeAll(async () => {
  writeFileSync(secret, 'host secret');
  root = makeRoot();
  server = createServer();
  await new Promise<void>((resolve) => server.listen(join(root, 'sock'), resolve));
  const config: GuestConfig = {
    args: ['x'],
    env: [],
    root,
    cwd: '/w',
    preopens: [
      { guest: '/', path: '/' },
      { guest: '/data', path: '/data' },
      { guest: '/ro', path: '/ro', readonly: true },
      { guest: '.', path: '/w' },
    ],
  };
  fs = createFilesystem(config);
  dirs = new Map(fs.preopens.getDirectories().map(([d, name]) => [name, d]));
});

afterAll(() => {
  fs.close();
  server.close();
  rmSync(root, { recursive: true, force: true });
  rmSync(secret, { force: true });
});

describe('preopens', () => {
  it('are the configuration\'s, in order, each a directory', () => {
    expect(fs.preopens.getDirectories().map(([, name]) => name)).toEqual(['/', '/data', '/ro', '.']);
    for (const [d] of fs.preopens.getDirectories()) expect(d.getType()).toBe('directory');
    expect(dir('/').getFlags()).toEqual({ read: true, mutateDirectory: true });
    expect(dir('/ro').getFlags()).toEqual({ read: true, mutateDirectory: false });
  });

  it('default to the root as "/", then the working directory as "."', () => {
    const names = (cwd: string) => {
      const f = createFilesystem({ args: ['x'], env: [], root, cwd });
      try {
        return f.preopens.getDirectories().map(([, n]) => n);
      } finally {
        f.close();
      }
    };
    expect(names('/')).toEqual(['/']);
    expect(names('/w')).toEqual(['/', '.']);
  });

  it('a directory that cannot be opened fails the set-up with its name, and leaves nothing open', () => {
    const before = openFds();
    expect(() => createFilesystem({ args: ['x'], env: [], root, preopens: [{ guest: '/', path: '/' }, { guest: '/m', path: '/missing' }] })).toThrow(
      "cannot open /missing (the guest's /m): ENOENT",
    );
    expect(openFds()).toBe(before);
  });

  it('stay open when the guest drops them', () => {
    const [d] = fs.preopens.getDirectories()[0]!;
    d[Symbol.dispose]();
    expect(dir('/').statAt(NOFOLLOW, 'file').size).toBe(10n);
  });
});

describe('files', () => {
  it('read-via-stream reads from an offset to stream-error::closed', () => {
    const f = dir('/').openAt(NOFOLLOW, 'file', {}, RO);
    expect(f.getType()).toBe('regular-file');
    expect(drain(f.readViaStream(6n) as unknown as In)).toBe('file');
    const s = f.readViaStream(0n) as unknown as In;
    expect(s.skip(6n)).toBe(6n);
    expect(dec(s.read(100n))).toBe('file');
    expect(() => s.read(1n)).toThrow(expect.objectContaining({ tag: 'closed' }));
    expect(s.read(0n)).toEqual(new Uint8Array(0));
    f[Symbol.dispose]();
  });

  it('write-via-stream writes at its offset; append-via-stream at the end; both only with write', () => {
    const f = dir('/').openAt(NOFOLLOW, 'w1', { create: true, truncate: true }, RW);
    const w = f.writeViaStream(0n) as unknown as Out;
    expect(w.checkWrite()).toBeGreaterThan(0n);
    w.write(enc('0123456789'));
    w.blockingFlush();
    w[Symbol.dispose]();
    const at = f.writeViaStream(2n) as unknown as Out;
    at.blockingWriteAndFlush(enc('ab'));
    at.writeZeroes(2n);
    at[Symbol.dispose]();
    const app = f.appendViaStream() as unknown as Out;
    app.blockingWriteAndFlush(enc('END'));
    app[Symbol.dispose]();
    expect(readFileSync(join(root, 'w1'), 'latin1')).toBe('01ab\0\x006789END');
    f[Symbol.dispose]();
    const ro = dir('/').openAt(NOFOLLOW, 'w1', {}, RO);
    expect(code(() => ro.appendViaStream())).toBe('bad-descriptor');
    // The kernel refuses the write on a descriptor opened for reading only; the stream error says so.
    const ws = ro.writeViaStream(0n) as unknown as Out;
    let failure: unknown;
    try {
      ws.write(enc('x'));
    } catch (err) {
      failure = err;
    }
    expect(failure).toMatchObject({ tag: 'last-operation-failed' });
    expect(filesystemErrorCode((failure as { val: unknown }).val)).toBe('bad-descriptor');
    expect(filesystemErrorCode(new Error('someone else\'s'))).toBeUndefined();
    ws[Symbol.dispose]();
    ro[Symbol.dispose]();
  });

  it('splices one stream into another', () => {
    const src = dir('/').openAt(NOFOLLOW, 'file', {}, RO);
    const dst = dir('/').openAt(NOFOLLOW, 'spliced', { create: true, truncate: true }, RW);
    const out = dst.writeViaStream(0n) as unknown as Out;
    const inp = src.readViaStream(0n) as unknown as In;
    expect(out.blockingSplice(inp, 5n)).toBe(5n);
    expect(out.blockingSplice(inp, 100n)).toBe(5n);
    expect(() => out.blockingSplice(inp, 1n)).toThrow(expect.objectContaining({ tag: 'closed' }));
    expect(readFileSync(join(root, 'spliced'), 'utf8')).toBe('hello file');
    for (const r of [out, inp, src, dst]) r[Symbol.dispose]();
  });

  it('read and write at offsets, with end of file', () => {
    const f = dir('/').openAt(NOFOLLOW, 'pos', { create: true, truncate: true }, RW);
    expect(f.write(enc('abcdef'), 2n)).toBe(6n);
    const [bytes, eof] = f.read(4n, 3n);
    expect([dec(bytes), eof]).toEqual(['bcde', false]);
    const [none, end] = f.read(4n, 100n);
    expect([none.length, end]).toEqual([0, true]);
    expect(f.stat().size).toBe(8n);
    f.setSize(3n);
    expect(f.stat().size).toBe(3n);
    for (const a of ['normal', 'sequential', 'random', 'will-need', 'dont-need', 'no-reuse'] as const) f.advise(0n, 3n, a);
    f.sync();
    f.syncData();
    expect(f.getFlags()).toEqual({ read: true, write: true });
    f[Symbol.dispose]();
  });

  it('a stream outlives its descriptor safely (it holds its own)', () => {
    const f = dir('/').openAt(NOFOLLOW, 'file', {}, RO);
    const s = f.readViaStream(0n) as unknown as In;
    f[Symbol.dispose]();
    // Whatever now has f's old number, the stream still reads its own file.
    const other = dir('/data').openAt(NOFOLLOW, 'd.txt', {}, RO);
    expect(drain(s)).toBe('hello file');
    other[Symbol.dispose]();
    s[Symbol.dispose]();
  });

  it('opens with the sync flags it is asked for', () => {
    const f = dir('/').openAt(NOFOLLOW, 'synced', { create: true }, { ...RW, dataIntegritySync: true, fileIntegritySync: true });
    expect(f.getFlags()).toEqual({ read: true, write: true, dataIntegritySync: true, fileIntegritySync: true });
    f[Symbol.dispose]();
  });
});

describe('metadata', () => {
  it('stat and stat-at: types, sizes, link counts, nanosecond times; follow or not', () => {
    utimesSync(join(root, 'file'), 1_000_000_000.5, 2_000_000_000.25);
    const st = dir('/').statAt(NOFOLLOW, 'file');
    expect(st).toMatchObject({ type: 'regular-file', size: 10n, linkCount: 1n });
    expect(st.dataModificationTimestamp).toEqual({ seconds: 2_000_000_000n, nanoseconds: 250_000_000 });
    expect(st.dataAccessTimestamp).toEqual({ seconds: 1_000_000_000n, nanoseconds: 500_000_000 });
    expect(st.statusChangeTimestamp!.seconds).toBeGreaterThan(1_600_000_000n);
    expect(dir('/').statAt(NOFOLLOW, 'lfile').type).toBe('symbolic-link');
    expect(dir('/').statAt(FOLLOW, 'lfile').type).toBe('regular-file');
    expect(dir('/').statAt(NOFOLLOW, 'fifo').type).toBe('fifo');
    expect(dir('/').statAt(NOFOLLOW, 'sock').type).toBe('socket');
    expect(dir('/').statAt(NOFOLLOW, 'data').type).toBe('directory');
    expect(dir('/data').stat().type).toBe('directory');
  });

  it('set-times and set-times-at: a timestamp, now, or no change; a symlink itself without follow', () => {
    const f = dir('/').openAt(NOFOLLOW, 'times', { create: true }, RW);
    f.setTimes({ tag: 'timestamp', val: { seconds: 5n, nanoseconds: 123 } }, { tag: 'timestamp', val: { seconds: 6n, nanoseconds: 456 } });
    expect(statSync(join(root, 'times'), { bigint: true }).mtimeNs).toBe(6_000_000_456n);
    f.setTimes({ tag: 'no-change' }, { tag: 'now' });
    const s = statSync(join(root, 'times'), { bigint: true });
    expect(s.atimeNs).toBe(5_000_000_123n);
    expect(s.mtimeNs).toBeGreaterThan(1_600_000_000_000_000_000n);
    f[Symbol.dispose]();
    symlinkSync('times', join(root, 'ltimes'));
    dir('/').setTimesAt(NOFOLLOW, 'ltimes', { tag: 'no-change' }, { tag: 'timestamp', val: { seconds: 7n, nanoseconds: 0 } });
    expect(lstatSync(join(root, 'ltimes'), { bigint: true }).mtimeNs).toBe(7_000_000_000n);
    expect(statSync(join(root, 'times'), { bigint: true }).mtimeNs).not.toBe(7_000_000_000n);
    dir('/').setTimesAt(FOLLOW, 'ltimes', { tag: 'no-change' }, { tag: 'timestamp', val: { seconds: 8n, nanoseconds: 0 } });
    expect(statSync(join(root, 'times'), { bigint: true }).mtimeNs).toBe(8_000_000_000n);
    // Nanoseconds beyond a second carry into the seconds; seconds a time_t cannot hold overflow.
    dir('/').setTimesAt(FOLLOW, 'times', { tag: 'no-change' }, { tag: 'timestamp', val: { seconds: 1n, nanoseconds: 2_000_000_001 } });
    expect(statSync(join(root, 'times'), { bigint: true }).mtimeNs).toBe(3_000_000_001n);
    expect(code(() => dir('/').setTimesAt(FOLLOW, 'times', { tag: 'no-change' }, { tag: 'timestamp', val: { seconds: 1n << 63n, nanoseconds: 0 } }))).toBe('overflow');
  });

  it('metadata-hash is the object\'s identity: stable across writes, the same by path, different for another file', () => {
    const f = dir('/').openAt(NOFOLLOW, 'hashed', { create: true }, RW);
    const h = f.metadataHash();
    f.write(enc('changed'), 0n);
    expect(f.metadataHash()).toEqual(h);
    expect(dir('/').metadataHashAt(NOFOLLOW, 'hashed')).toEqual(h);
    expect(dir('/').metadataHashAt(NOFOLLOW, 'file')).not.toEqual(h);
    expect(h.lower).toBe(statSync(join(root, 'hashed'), { bigint: true }).ino);
    f[Symbol.dispose]();
  });

  it('is-same-object: two descriptors of one file, not of two', () => {
    const a = dir('/').openAt(NOFOLLOW, 'file', {}, RO);
    const b = dir('/').openAt(FOLLOW, 'lfile', {}, RO);
    const c = dir('/data').openAt(NOFOLLOW, 'd.txt', {}, RO);
    expect(a.isSameObject(b)).toBe(true);
    expect(a.isSameObject(c)).toBe(false);
    expect(dir('/').isSameObject(dir('/'))).toBe(true);
    for (const d of [a, b, c]) d[Symbol.dispose]();
  });
});

describe('directories', () => {
  it('read-directory lists every entry once with its type, without "." and ".."', () => {
    mkdirSync(join(root, 'many'));
    for (let i = 0; i < 3000; i++) writeFileSync(join(root, 'many', `entry-${i}`), '');
    const d = dir('/').openAt(NOFOLLOW, 'many', { directory: true }, RO);
    const s = d.readDirectory();
    const names: string[] = [];
    for (let e = s.readDirectoryEntry(); e; e = s.readDirectoryEntry()) {
      expect(e.type).toBe('regular-file');
      names.push(e.name);
    }
    expect(s.readDirectoryEntry()).toBeUndefined();
    expect(new Set(names).size).toBe(3000);
    s[Symbol.dispose]();
    d[Symbol.dispose]();
    const types = new Map<string, string>();
    const r = dir('/').readDirectory();
    for (let e = r.readDirectoryEntry(); e; e = r.readDirectoryEntry()) types.set(e.name, e.type);
    r[Symbol.dispose]();
    expect(Object.fromEntries([...types].filter(([n]) => ['file', 'data', 'lfile', 'fifo', 'sock'].includes(n)))).toEqual({
      file: 'regular-file', data: 'directory', lfile: 'symbolic-link', fifo: 'fifo', sock: 'socket',
    });
    expect(types.has('.')).toBe(false);
  });

  it('two listings of one directory do not disturb each other', () => {
    const a = dir('/data').readDirectory();
    const b = dir('/data').readDirectory();
    const first = a.readDirectoryEntry()!.name;
    expect(b.readDirectoryEntry()!.name).toBe(first);
    a[Symbol.dispose]();
    b[Symbol.dispose]();
  });

  it('a name that is not UTF-8 is illegal-byte-sequence, and the listing goes on', () => {
    mkdirSync(join(root, 'odd'));
    writeFileSync(Buffer.concat([Buffer.from(join(root, 'odd') + '/'), Buffer.from([0xff, 0xfe])]), '');
    writeFileSync(join(root, 'odd', 'fine'), '');
    const s = dir('/').openAt(NOFOLLOW, 'odd', { directory: true }, RO).readDirectory();
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) seen.push(code(() => s.readDirectoryEntry()) === 'ok' ? 'entry' : 'illegal-byte-sequence');
    expect(seen.sort()).toEqual(['entry', 'illegal-byte-sequence']);
    expect(s.readDirectoryEntry()).toBeUndefined();
    s[Symbol.dispose]();
  });

  it('create, link, symlink, readlink, rename, unlink, remove', () => {
    const d = dir('/data');
    d.createDirectoryAt('made');
    expect(code(() => d.createDirectoryAt('made'))).toBe('exist');
    d.linkAt(NOFOLLOW, 'd.txt', d, 'made/hard');
    expect(statSync(join(root, 'data', 'd.txt')).nlink).toBe(2);
    d.symlinkAt('../d.txt', 'made/soft');
    expect(d.readlinkAt('made/soft')).toBe('../d.txt');
    expect(code(() => d.readlinkAt('d.txt'))).toBe('invalid');
    d.linkAt(FOLLOW, 'made/soft', d, 'made/hard2');
    expect(lstatSync(join(root, 'data', 'made', 'hard2')).isFile()).toBe(true);
    d.renameAt('made/hard', dir('/'), 'moved');
    expect(readFileSync(join(root, 'moved'), 'utf8')).toBe('data');
    expect(code(() => d.removeDirectoryAt('made'))).toBe('not-empty');
    expect(code(() => d.unlinkFileAt('made'))).toBe('is-directory');
    for (const n of ['made/soft', 'made/hard2']) d.unlinkFileAt(n);
    d.removeDirectoryAt('made');
    expect(existsSync(join(root, 'data', 'made'))).toBe(false);
    expect(code(() => d.unlinkFileAt('missing'))).toBe('no-entry');
    dir('/').unlinkFileAt('moved');
  });

  it('the symlink target is stored as given, even an absolute one, and resolves inside the root', () => {
    dir('/').symlinkAt('/file', 'abs2');
    expect(readlinkSync(join(root, 'abs2'))).toBe('/file');
    const f = dir('/').openAt(FOLLOW, 'abs2', {}, RO);
    expect(drain(f.readViaStream(0n) as unknown as In)).toBe('hello file');
    f[Symbol.dispose]();
    dir('/').unlinkFileAt('abs2');
  });
});

describe('errors', () => {
  it.each([
    ['a missing file', () => dir('/').openAt(NOFOLLOW, 'missing', {}, RO), 'no-entry'],
    ['an empty path', () => dir('/').openAt(NOFOLLOW, '', {}, RO), 'no-entry'],
    ['a NUL in the path', () => dir('/').openAt(NOFOLLOW, 'file\0x', {}, RO), 'invalid'],
    ['directory with create', () => dir('/').openAt(NOFOLLOW, 'x', { directory: true, create: true }, RO), 'invalid'],
    ['a directory for writing', () => dir('/').openAt(NOFOLLOW, 'data', {}, RW), 'is-directory'],
    ['a file as a directory', () => dir('/').openAt(NOFOLLOW, 'file', { directory: true }, RO), 'not-directory'],
    ['a file with a trailing slash', () => dir('/').openAt(NOFOLLOW, 'file/', {}, RO), 'not-directory'],
    ['exclusive on an existing file', () => dir('/').openAt(NOFOLLOW, 'file', { create: true, exclusive: true }, RW), 'exist'],
    ['a symlink without follow', () => dir('/').openAt(NOFOLLOW, 'lfile', {}, RO), 'loop'],
    ['read on a directory', () => dir('/').read(1n, 0n), 'bad-descriptor'],
    ['read-via-stream on a directory', () => dir('/').readViaStream(0n), 'is-directory'],
    ['set-size on a directory', () => dir('/').setSize(0n), 'bad-descriptor'],
    ['advise on a directory', () => dir('/').advise(0n, 0n, 'normal'), 'bad-descriptor'],
  ])('%s', (_what, fn, expected) => {
    expect(code(fn)).toBe(expected);
  });

  it('path calls on a file are not-directory', () => {
    const f = dir('/').openAt(NOFOLLOW, 'file', {}, RO);
    expect(code(() => f.openAt(NOFOLLOW, 'x', {}, RO))).toBe('not-directory');
    expect(code(() => f.readDirectory())).toBe('not-directory');
    expect(code(() => f.createDirectoryAt('x'))).toBe('not-directory');
    f[Symbol.dispose]();
  });
});

describe('a read-only preopen', () => {
  it('reads, and refuses every change with read-only before the kernel is asked', () => {
    const d = dir('/ro');
    const f = d.openAt(NOFOLLOW, 'r.txt', {}, RO);
    expect(drain(f.readViaStream(0n) as unknown as In)).toBe('read me');
    const changes: Array<[string, () => unknown]> = [
      ['open for writing', () => d.openAt(NOFOLLOW, 'r.txt', {}, RW)],
      ['create', () => d.openAt(NOFOLLOW, 'new', { create: true }, RO)],
      ['truncate', () => d.openAt(NOFOLLOW, 'r.txt', { truncate: true }, RO)],
      ['mutate-directory', () => d.openAt(NOFOLLOW, 'inner', { directory: true }, { read: true, mutateDirectory: true })],
      ['mkdir', () => d.createDirectoryAt('x')],
      ['unlink', () => d.unlinkFileAt('r.txt')],
      ['rmdir', () => d.removeDirectoryAt('inner')],
      ['symlink', () => d.symlinkAt('r.txt', 'l')],
      ['rename out', () => d.renameAt('r.txt', dir('/data'), 'stolen')],
      ['rename in', () => dir('/data').renameAt('d.txt', d, 'planted')],
      ['link in', () => dir('/data').linkAt(NOFOLLOW, 'd.txt', d, 'planted')],
      ['set-times-at', () => d.setTimesAt(NOFOLLOW, 'r.txt', { tag: 'now' }, { tag: 'now' })],
      ['set-times', () => f.setTimes({ tag: 'now' }, { tag: 'now' })],
      ['set-size', () => f.setSize(0n)],
      ['write', () => f.write(enc('x'), 0n)],
      ['write-via-stream', () => f.writeViaStream(0n)],
      ['append-via-stream', () => f.appendViaStream()],
      ['set-times on the directory', () => d.setTimes({ tag: 'now' }, { tag: 'now' })],
    ];
    for (const [what, fn] of changes) expect(code(fn), what).toBe('read-only');
    // What is opened through it is read-only too.
    const inner = d.openAt(NOFOLLOW, 'inner', { directory: true }, RO);
    expect(inner.getFlags()).toEqual({ read: true, mutateDirectory: false });
    expect(code(() => inner.createDirectoryAt('x'))).toBe('read-only');
    inner[Symbol.dispose]();
    f[Symbol.dispose]();
    expect(readdirSync(join(root, 'ro')).sort()).toEqual(['inner', 'r.txt']);
    expect(readFileSync(join(root, 'ro', 'r.txt'), 'utf8')).toBe('read me');
  });
});

describe.each([
  ['openat2', true],
  ['the component walk', false],
])('confinement with %s', (_name, useOpenat2) => {
  beforeAll(() => setOpenat2(useOpenat2));
  afterAll(() => setOpenat2(undefined));

  it('a preopen other than the root is confined beneath itself: escapes are not-permitted', () => {
    const d = dir('/data');
    for (const p of ['../file', '/file', 'abs', 'up/file', 'host', 'sub/../../file']) {
      expect(code(() => d.openAt(FOLLOW, p, {}, RO)), p).toBe('not-permitted');
    }
    for (const p of ['../pwned', 'up/pwned', '/pwned']) {
      expect(code(() => d.openAt(FOLLOW, p, { create: true }, RW)), p).toBe('not-permitted');
      expect(code(() => d.createDirectoryAt(p)), p).toBe('not-permitted');
    }
    expect(code(() => d.statAt(FOLLOW, 'host'))).toBe('not-permitted');
    expect(code(() => d.symlinkAt('/etc/passwd', 'sub/pl'))).toBe('ok');
    expect(code(() => d.openAt(FOLLOW, 'sub/pl', {}, RO))).toBe('not-permitted');
    d.unlinkFileAt('sub/pl');
    expect(existsSync(join(root, 'pwned'))).toBe(false);
  });

  it('the root keeps absolute links, "..", and links to "/" inside itself (RESOLVE_IN_ROOT)', () => {
    const d = dir('/');
    const read = (p: string) => {
      const f = d.openAt(FOLLOW, p, {}, RO);
      try {
        return drain(f.readViaStream(0n) as unknown as In);
      } finally {
        f[Symbol.dispose]();
      }
    };
    expect(read('abs')).toBe('hello file');
    expect(read('../../../file')).toBe('hello file');
    expect(read('rootlink/rootlink/file')).toBe('hello file');
    expect(read('/file')).toBe('hello file');
    // A link to a host file names a path inside the root, where it does not exist.
    expect(code(() => read('hostlink'))).toBe('no-entry');
    expect(code(() => read(`rootlink${secret}`))).toBe('no-entry');
    expect(code(() => d.openAt(FOLLOW, `rootlink${secret}.pwned`, { create: true }, RW))).toBe('no-entry');
    expect(existsSync(`${secret}.pwned`)).toBe(false);
  });

  it('"." is the working directory, resolved from the root', () => {
    const d = dir('.');
    const f = d.openAt(NOFOLLOW, 'here.txt', {}, RO);
    expect(drain(f.readViaStream(0n) as unknown as In)).toBe('in the working directory');
    f[Symbol.dispose]();
    expect(d.statAt(NOFOLLOW, '../file').size).toBe(10n);
    expect(d.statAt(NOFOLLOW, '../../../file').size).toBe(10n);
    const l = d.readDirectory();
    expect(l.readDirectoryEntry()).toBeDefined();
    l[Symbol.dispose]();
  });
});

describe('FIFOs', () => {
  it('an open for writing waits for a reader, as open(2) does', async () => {
    const out = join(root, 'fifo-out');
    const reader = spawn('sh', ['-c', `sleep 0.3; cat '${join(root, 'fifo')}' > '${out}'`], { stdio: 'ignore' });
    const done = new Promise((resolve) => reader.once('exit', resolve));
    const f = dir('/').openAt(NOFOLLOW, 'fifo', {}, { write: true });
    expect(f.getType()).toBe('fifo');
    const w = f.writeViaStream(0n) as unknown as Out;
    w.blockingWriteAndFlush(enc('through the fifo\n'));
    w[Symbol.dispose]();
    // No end to append at: appending writes to the FIFO as it is.
    const a = f.appendViaStream() as unknown as Out;
    a.blockingWriteAndFlush(enc('and appended\n'));
    a[Symbol.dispose]();
    f[Symbol.dispose]();
    await done;
    expect(readFileSync(out, 'utf8')).toBe('through the fifo\nand appended\n');
  });
});

describe('host descriptors', () => {
  let before: number;
  beforeEach(() => {
    before = openFds();
  });

  it('are released when the guest drops what it opened', () => {
    const f = dir('/').openAt(NOFOLLOW, 'file', {}, RO);
    const s = f.readViaStream(0n) as unknown as In;
    const l = dir('/').readDirectory();
    l.readDirectoryEntry();
    expect(openFds()).toBe(before + 3);
    for (const r of [s, l, f]) r[Symbol.dispose]();
    expect(openFds()).toBe(before);
  });

  it('are all released when the filesystem is closed, whatever the guest kept', () => {
    const other = createFilesystem({ args: ['x'], env: [], root });
    const [[d]] = other.preopens.getDirectories() as [[Descriptor, string]];
    const f = d.openAt(NOFOLLOW, 'file', {}, RO);
    f.readViaStream(0n);
    d.readDirectory().readDirectoryEntry();
    expect(openFds()).toBeGreaterThan(before);
    other.close();
    expect(openFds()).toBe(before);
  });

  it('a descriptor dropped twice closes nothing of anyone else\'s', () => {
    const f = dir('/').openAt(NOFOLLOW, 'file', {}, RO);
    f[Symbol.dispose]();
    const g = dir('/').openAt(NOFOLLOW, 'file', {}, RO);
    f[Symbol.dispose]();
    expect(g.stat().size).toBe(10n);
    g[Symbol.dispose]();
    expect(openFds()).toBe(before);
  });
});
