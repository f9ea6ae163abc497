// Tugboat's preview1 host against a probe guest making raw preview1 calls
// (test/guests/probe.rs), in this process with no runc around it: every path
// op, symlinks (dangling, loops, absolute, nofollow), readdir cookies,
// readlink truncation, times, append, rights, sockets and poll on files, and
// ops on the wrong kind of descriptor. The same matrix runs with openat2 and
// with the component-by-component walk that replaces it where it is refused.
import { rmSync, existsSync, lstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setOpenat2 } from '../../src/wasi-host/preview1/index.js';
import { GUESTS, lines, runGuest } from '../helpers/guest-run.js';
import { E, makeProbeRoot, PROBE_PREOPENS } from '../helpers/probe-root.js';

const PROBE = join(GUESTS, 'probe.wasm');

const preopens = PROBE_PREOPENS;

describe.each([
  ['openat2', true],
  ['component walk (openat2 refused)', false],
])('preview1 semantics with %s', (_name, useOpenat2) => {
  let root: string;
  let r: Record<string, string>;
  beforeAll(async () => {
    setOpenat2(useOpenat2);
    root = makeProbeRoot();
    const run = await runGuest(PROBE, ['checks'], { root, preopens });
    expect(run.stderr).toBe('');
    expect(run.outcome).toEqual({ kind: 'exit', code: 0 });
    r = lines(run.stdout);
    expect(r.done).toBe('1');
  });
  afterAll(() => {
    setOpenat2(undefined);
    rmSync(root, { recursive: true, force: true });
  });

  it('dangling symlinks: as a file, as a directory, unfollowed, created through', () => {
    expect(r['dangling.file']).toBe(String(E.NOENT));
    expect(r['dangling.dir']).toBe(String(E.NOENT));
    expect(r['dangling.nofollow']).toBe(String(E.LOOP));
    expect(r['dangling.creat']).toBe('0');
    expect(r['dangling.created']).toBe('0');
    expect(existsSync(join(root, 'nowhere'))).toBe(true);
    expect(r['dangling.excl']).toBe(String(E.EXIST));
  });

  it('O_NOFOLLOW on a symlink to a file and to a directory; intermediate links are followed', () => {
    expect(r['nofollow.file']).toBe(String(E.LOOP));
    expect(r['follow.file']).toBe('0');
    expect([String(E.LOOP), String(E.NOTDIR)]).toContain(r['nofollow.dir']);
    expect(r['follow.dir']).toBe('0');
    expect(r['nofollow.intermediate']).toBe('0');
  });

  it('symlink loops, absolute links and escapes', () => {
    expect(r.loop).toBe(String(E.LOOP));
    // The root preopen is a container root: absolute links and ".." stay in it.
    expect(r['abs.inroot']).toBe('hello file');
    expect(r['dotdot.inroot']).toBe('0');
    // Any other preopen is confined beneath itself: escapes are EPERM (as wasmtime).
    expect(r['abs.beneath']).toBe(String(E.PERM));
    expect(r['dotdot.beneath']).toBe(String(E.PERM));
    expect(r['up.beneath']).toBe(String(E.PERM));
    expect(r['absolute.beneath']).toBe(String(E.PERM));
    expect(r['symlink.escape.read']).toBe(String(E.PERM));
    expect(r['inside.beneath']).toBe('0');
  });

  it('paths: trailing NUL, trailing slash on a file, empty, not UTF-8', () => {
    expect(r['path.nul']).toBe(String(E.INVAL));
    expect(r['path.slash.file']).toBe(String(E.NOTDIR));
    expect(r['path.slash.dir']).toBe('0');
    expect(r['path.empty']).toBe(String(E.NOENT));
    expect(r['path.badutf8']).toBe(String(E.ILSEQ));
  });

  it('fd_readdir: an empty directory, a large one read in small pieces, resumed from a cookie', () => {
    expect(r['readdir.empty']).toBe('.,..');
    expect(r['readdir.empty.cookies']).toBe('1,2');
    expect(r['readdir.big.count']).toBe('1002');
    expect(r['readdir.big.unique']).toBe('1002');
    expect(r['readdir.big.resume']).toBe('true');
  });

  it('path_readlink truncates into a small buffer (never ENOBUFS)', () => {
    expect(r['readlink.small']).toBe('0 2 fi');
    expect(r['readlink.full']).toBe('0 file');
    expect(r['readlink.notlink']).toBe(String(E.INVAL));
  });

  it('filestat times: nanoseconds, flags, and path_filestat_set_times without following', () => {
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

  it('truncation needs the truncate right; a read-only preopen denies writes', () => {
    expect(r['truncate.noright']).toBe(String(E.NOTCAPABLE));
    expect(r['truncate.right']).toBe('0');
    expect(r['truncate.size']).toBe('5');
    expect(r['truncate.ro.trunc']).toBe(String(E.NOTCAPABLE));
    expect(r['ro.read']).toBe('0');
    for (const k of ['ro.write', 'ro.create', 'ro.mkdir', 'ro.unlink']) expect(r[k], k).toBe(String(E.NOTCAPABLE));
  });

  it('fdflags append: writes go to the end whatever the offset', () => {
    expect(r['append.flags']).toBe('1');
    expect(r['append.content']).toBe('XbcZ');
  });

  it('positional reads and writes, advice, syncs', () => {
    expect(r.pwrite).toBe('0 6');
    expect(r.pread).toBe('0 4 bcde');
    expect(r['pread.eof']).toBe('0 0');
    expect(r['pfile.size']).toBe('8');
    expect(r.advise).toBe('0');
    expect(r.sync).toBe('0');
    expect(r.datasync).toBe('0');
  });

  it('sock_shutdown on a bad fd and on a file; poll_oneoff on a regular file', () => {
    expect(r['shutdown.badf']).toBe(String(E.BADF));
    expect(r['shutdown.file']).toBe(String(E.NOTSOCK));
    // Both subscriptions ready at once: read with the 10 bytes left, write.
    expect(r['poll.file']).toBe('0 2 7:0:10 8:0');
  });

  it('an op on a directory that needs a file, and the reverse', () => {
    expect(r['dir.read']).toBe(String(E.BADF));
    expect(r['dir.seek']).toBe(String(E.BADF));
    expect(r['dir.setsize']).toBe(String(E.BADF));
    expect(r['file.readdir']).toBe(String(E.BADF));
    expect(r['file.path_open']).toBe(String(E.NOTDIR));
    expect(r['file.mkdir']).toBe(String(E.BADF));
  });

  it('every path op', () => {
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

  it('descriptors: renumber, double close; proc_raise is refused', () => {
    expect(r.renumber).toBe('0');
    expect(r['renumber.closed']).toBe(String(E.BADF));
    expect(r['close.twice']).toBe(`0 ${E.BADF}`);
    expect(r.proc_raise).toBe(String(E.NOTSUP));
  });
});
