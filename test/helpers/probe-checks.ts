// The probe guest's `checks` (test/guests/probe.rs): the root they run
// against, and the results every host gives alike, whether the probe runs on
// Tugboat's preview1 host (integration/preview1.test.ts) or, wrapped by the
// preview1 adapter, as a component on Tugboat's wasi:filesystem
// (integration/component-fs.test.ts). Each test file adds what is its host's
// own (rights, and the adapter's choices).
import { existsSync, lstatSync, mkdirSync, mkdtempSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { Preopen } from '../../src/wasi-host/guest-config.js';

/** errno values of wasi_snapshot_preview1. */
export const E = {
  BADF: 8, EXIST: 20, ILSEQ: 25, INVAL: 28, ISDIR: 31, LOOP: 32, NOENT: 44, NOTDIR: 54, NOTEMPTY: 55, NOTSOCK: 57,
  NOTSUP: 58, PERM: 63, ROFS: 69, NOTCAPABLE: 76,
};

/** Preopens 3 ("/"), 4 ("/b") and 5 ("/ro", read-only), as `probe checks` expects them. */
export const PROBE_PREOPENS: Preopen[] = [
  { guest: '/', path: '/' },
  { guest: '/b', path: '/b' },
  { guest: '/ro', path: '/ro', readonly: true },
];

export function makeProbeRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'tugboat-p1-'));
  writeFileSync(join(root, 'file'), 'hello file');
  mkdirSync(join(root, 'dir'));
  writeFileSync(join(root, 'dir', 'inner'), 'inner');
  symlinkSync('nowhere', join(root, 'dangling'));
  symlinkSync('nowhere2', join(root, 'dangling2'));
  symlinkSync('file', join(root, 'lfile'));
  symlinkSync('dir', join(root, 'ldir'));
  symlinkSync('loop2', join(root, 'loop1'));
  symlinkSync('loop1', join(root, 'loop2'));
  symlinkSync('/file', join(root, 'abs'));
  mkdirSync(join(root, 'empty'));
  mkdirSync(join(root, 'big'));
  for (let i = 0; i < 1000; i++) writeFileSync(join(root, 'big', `entry-with-a-longish-name-${i}`), '');
  writeFileSync(join(root, 'times2'), '');
  symlinkSync('times2', join(root, 'ltimes'));
  mkdirSync(join(root, 'b'));
  mkdirSync(join(root, 'b', 'x'));
  writeFileSync(join(root, 'b', 'bfile'), 'b');
  symlinkSync('/file', join(root, 'b', 'absb'));
  symlinkSync('..', join(root, 'b', 'upb'));
  symlinkSync('../file', join(root, 'b', 'tofile'));
  mkdirSync(join(root, 'ro'));
  writeFileSync(join(root, 'ro', 'rofile'), 'ro');
  return root;
}

export interface ProbeRun {
  /** "name value" lines of `probe checks`. */
  r: Record<string, string>;
  /** The root it ran on. */
  root: string;
}

/** The `it`s whose results every host gives alike; `run` is read when they run (after beforeAll). */
export function itAgreesWithEveryHost(run: () => ProbeRun): void {
  it('dangling symlinks: as a file, as a directory, unfollowed, created through', () => {
    const { r, root } = run();
    expect(r['dangling.file']).toBe(String(E.NOENT));
    expect(r['dangling.dir']).toBe(String(E.NOENT));
    expect(r['dangling.nofollow']).toBe(String(E.LOOP));
    expect(r['dangling.creat']).toBe('0');
    expect(r['dangling.created']).toBe('0');
    expect(existsSync(join(root, 'nowhere'))).toBe(true);
    expect(r['dangling.excl']).toBe(String(E.EXIST));
  });

  it('O_NOFOLLOW on a symlink to a file and to a directory; intermediate links are followed', () => {
    const { r } = run();
    expect(r['nofollow.file']).toBe(String(E.LOOP));
    expect(r['follow.file']).toBe('0');
    expect([String(E.LOOP), String(E.NOTDIR)]).toContain(r['nofollow.dir']);
    expect(r['follow.dir']).toBe('0');
    expect(r['nofollow.intermediate']).toBe('0');
  });

  it('symlink loops, absolute links and escapes', () => {
    const { r } = run();
    expect(r.loop).toBe(String(E.LOOP));
    // The root preopen is a container root: absolute links and ".." stay in it.
    expect(r['abs.inroot']).toBe('hello file');
    expect(r['dotdot.inroot']).toBe('0');
    // Any other preopen is confined beneath itself: escapes are EPERM (as wasmtime).
    for (const k of ['abs.beneath', 'dotdot.beneath', 'up.beneath', 'absolute.beneath', 'symlink.escape.read']) expect(r[k], k).toBe(String(E.PERM));
    expect(r['inside.beneath']).toBe('0');
  });

  it('paths: trailing NUL, trailing slash on a file, empty', () => {
    const { r } = run();
    expect(r['path.nul']).toBe(String(E.INVAL));
    expect(r['path.slash.file']).toBe(String(E.NOTDIR));
    expect(r['path.slash.dir']).toBe('0');
    expect(r['path.empty']).toBe(String(E.NOENT));
  });

  it('fd_readdir: an empty directory, a large one read in small pieces, resumed from a cookie', () => {
    const { r } = run();
    expect(r['readdir.empty']).toBe('.,..');
    expect(r['readdir.empty.cookies']).toBe('1,2');
    expect(r['readdir.big.count']).toBe('1002');
    expect(r['readdir.big.unique']).toBe('1002');
    expect(r['readdir.big.resume']).toBe('true');
  });

  it('path_readlink truncates into a small buffer (never ENOBUFS)', () => {
    const { r } = run();
    expect(r['readlink.small']).toBe('0 2 fi');
    expect(r['readlink.full']).toBe('0 file');
    expect(r['readlink.notlink']).toBe(String(E.INVAL));
  });

  it('filestat times: nanoseconds, flags, and path_filestat_set_times without following', () => {
    const { r, root } = run();
    expect(r['times.set']).toBe('0');
    expect(r['times.get']).toBe('1000000123 2000000456');
    expect(r['times.both']).toBe(String(E.INVAL));
    expect(r['times.mtimonly']).toBe('0');
    expect(r['times.get2']).toBe('1000000123 3000000789');
    expect(r['times.now']).toBe('0');
    expect(r['times.now.recent']).toBe('true');
    expect(r['times.path.nofollow']).toBe('0');
    expect(r['times.path.link_vs_target']).toBe('6000000000 false');
    expect(lstatSync(join(root, 'ltimes'), { bigint: true }).mtimeNs).toBe(6_000_000_000n);
    expect(statSync(join(root, 'times2'), { bigint: true }).mtimeNs).not.toBe(6_000_000_000n);
    expect(r['filestat.type.link']).toBe('7');
    expect(r['filestat.type.follow']).toBe('4');
  });

  it('truncation with the right, append whatever the offset, positional reads and writes, advice, syncs', () => {
    const { r } = run();
    expect(r['truncate.right']).toBe('0');
    expect(r['truncate.size']).toBe('5');
    expect(r['ro.read']).toBe('0');
    expect(r['append.flags']).toBe('1');
    expect(r['append.content']).toBe('XbcZ');
    expect(r.pwrite).toBe('0 6');
    expect(r.pread).toBe('0 4 bcde');
    expect(r['pread.eof']).toBe('0 0');
    expect(r['pfile.size']).toBe('8');
    expect(r.advise).toBe('0');
    expect(r.sync).toBe('0');
    expect(r.datasync).toBe('0');
  });

  it('sock_shutdown on a bad fd and on a file; a file op on a directory', () => {
    const { r } = run();
    expect(r['shutdown.badf']).toBe(String(E.BADF));
    expect(r['shutdown.file']).toBe(String(E.NOTSOCK));
    expect(r['dir.read']).toBe(String(E.BADF));
    expect(r['dir.seek']).toBe(String(E.BADF));
    expect(r['dir.setsize']).toBe(String(E.BADF));
    expect(r['file.path_open']).toBe(String(E.NOTDIR));
  });

  it('every path op', () => {
    const { r, root } = run();
    expect(r.mkdir).toBe('0');
    expect(r['mkdir.exists']).toBe(String(E.EXIST));
    expect(r['mkdir.dotdot']).toBe(String(E.EXIST));
    expect(r.symlink).toBe('0');
    expect(r.link).toBe('0');
    expect(r['link.follow']).toBe('0');
    expect(r['link.follow.type']).toBe('4');
    expect(r.rename).toBe('0');
    expect(r['rmdir.notempty']).toBe(String(E.NOTEMPTY));
    expect(r['unlink.dir']).toBe(String(E.ISDIR));
    expect(r['unlink.slash']).toBe(String(E.NOTDIR));
    expect(r.rmdir).toBe('0');
    expect(r['rmdir.dot']).toBe(String(E.INVAL));
    expect(r['unlink.missing']).toBe(String(E.NOENT));
    expect(existsSync(join(root, 'newdir'))).toBe(false);
  });

  it('descriptors: renumber, double close', () => {
    const { r } = run();
    expect(r.renumber).toBe('0');
    expect(r['renumber.closed']).toBe(String(E.BADF));
    expect(r['close.twice']).toBe(`0 ${E.BADF}`);
  });
}
