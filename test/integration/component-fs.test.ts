// wasi:filesystem for components, end to end: the probe guest of the preview1
// tests (test/guests/probe.rs), wrapped into a component with jco's preview1
// adapter, transpiled by jco and run by the host bundle directly on a root
// directory (no runc), so that every preview1 call the probe makes becomes
// wasi:filesystem calls through jco's glue into Tugboat's own filesystem.
// The results are the preview1 host's (preview1.test.ts), except where the
// adapter itself decides differently (noted below); with openat2 and with the
// component-by-component walk.
import { existsSync, lstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuestComponent } from '../../src/wasi-host/guest-config.js';
import { GUESTS, lines } from '../helpers/guest-run.js';
import { E, makeProbeRoot, PROBE_PREOPENS } from '../helpers/probe-root.js';
import { runComponentHost, transpiledComponent } from './component-helpers.js';

let cache: string;
let probe: GuestComponent;

beforeAll(async () => {
  cache = mkdtempSync(join(tmpdir(), 'tugboat-cfs-cache-'));
  probe = await transpiledComponent(join(GUESTS, 'probe.component.wasm'), cache);
});
afterAll(() => rmSync(cache, { recursive: true, force: true }));

describe.each([
  ['openat2', false],
  ['the component walk (openat2 refused)', true],
])('a component\'s files with %s', (_name, noOpenat2) => {
  let root: string;
  let r: Record<string, string>;
  beforeAll(async () => {
    root = makeProbeRoot();
    const run = await runComponentHost({ args: ['/probe.wasm', 'checks', 'adapter'], env: [], root, cwd: '/', preopens: PROBE_PREOPENS, component: probe }, { noOpenat2 });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    r = lines(run.stdout);
    expect(r.done).toBe('1');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('dangling symlinks, O_NOFOLLOW, loops', () => {
    expect(r['dangling.file']).toBe(String(E.NOENT));
    expect(r['dangling.dir']).toBe(String(E.NOENT));
    expect(r['dangling.nofollow']).toBe(String(E.LOOP));
    expect(r['dangling.creat']).toBe('0');
    expect(existsSync(join(root, 'nowhere'))).toBe(true);
    expect(r['dangling.excl']).toBe(String(E.EXIST));
    expect(r['nofollow.file']).toBe(String(E.LOOP));
    expect(r['follow.file']).toBe('0');
    expect(r['nofollow.dir']).toBe(String(E.NOTDIR));
    expect(r['follow.dir']).toBe('0');
    expect(r['nofollow.intermediate']).toBe('0');
    expect(r.loop).toBe(String(E.LOOP));
  });

  it('the root keeps absolute links and ".." inside; any other preopen is confined beneath itself', () => {
    expect(r['abs.inroot']).toBe('hello file');
    expect(r['dotdot.inroot']).toBe('0');
    for (const k of ['abs.beneath', 'dotdot.beneath', 'up.beneath', 'absolute.beneath', 'symlink.escape.read']) expect(r[k], k).toBe(String(E.PERM));
    expect(r['inside.beneath']).toBe('0');
  });

  it('paths: NUL, trailing slash, empty, not UTF-8', () => {
    expect(r['path.nul']).toBe(String(E.INVAL));
    expect(r['path.slash.file']).toBe(String(E.NOTDIR));
    expect(r['path.slash.dir']).toBe('0');
    expect(r['path.empty']).toBe(String(E.NOENT));
    // The adapter hands the bytes on as a string; jco's glue decodes them lossily: no such name.
    expect(r['path.badutf8']).toBe(String(E.NOENT));
  });

  it('directory listings: an empty one, a large one read in small pieces, resumed from a cookie', () => {
    expect(r['readdir.empty']).toBe('.,..');
    expect(r['readdir.empty.cookies']).toBe('1,2');
    expect(r['readdir.big.count']).toBe('1002');
    expect(r['readdir.big.unique']).toBe('1002');
    expect(r['readdir.big.resume']).toBe('true');
  });

  it('readlink, times, file types', () => {
    expect(r['readlink.small']).toBe('0 2 fi');
    expect(r['readlink.full']).toBe('0 file');
    expect(r['readlink.notlink']).toBe(String(E.INVAL));
    expect(r['times.set']).toBe('0');
    expect(r['times.get']).toBe('1000000123 2000000456');
    expect(r['times.both']).toBe(String(E.INVAL));
    expect(r['times.get2']).toBe('1000000123 3000000789');
    expect(r['times.now.recent']).toBe('true');
    expect(r['times.path.nofollow']).toBe('0');
    expect(r['times.path.link_vs_target']).toBe('6000000000 false');
    expect(lstatSync(join(root, 'ltimes'), { bigint: true }).mtimeNs).toBe(6_000_000_000n);
    expect(statSync(join(root, 'times2'), { bigint: true }).mtimeNs).not.toBe(6_000_000_000n);
    expect(r['filestat.type.link']).toBe('7');
    expect(r['filestat.type.follow']).toBe('4');
  });

  it('a read-only preopen refuses every change with EROFS (the adapter has no rights, the host says read-only)', () => {
    expect(r['ro.read']).toBe('0');
    for (const k of ['ro.write', 'ro.create', 'ro.mkdir', 'ro.unlink', 'truncate.ro.trunc']) expect(r[k], k).toBe(String(E.ROFS));
    expect(existsSync(join(root, 'ro', 'new'))).toBe(false);
    expect(existsSync(join(root, 'ro', 'rofile'))).toBe(true);
    // preview1 rights are the adapter's business, and it keeps none: truncation needs no right.
    expect(r['truncate.noright']).toBe('0');
    expect(r['truncate.size']).toBe('5');
  });

  it('append, positional reads and writes, advice, syncs', () => {
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

  it('an op on the wrong kind of descriptor', () => {
    expect(r['dir.read']).toBe(String(E.BADF));
    expect(r['dir.seek']).toBe(String(E.BADF));
    expect(r['dir.setsize']).toBe(String(E.BADF));
    // The adapter looks a directory up itself and says ENOTDIR where the preview1 host says EBADF.
    expect(r['file.readdir']).toBe(String(E.NOTDIR));
    expect(r['file.path_open']).toBe(String(E.NOTDIR));
    expect(r['file.mkdir']).toBe(String(E.NOTDIR));
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
    expect(r['close.twice']).toBe(`0 ${E.BADF}`);
  });
});

describe('a component run directly on a root directory', () => {
  it('a preopen that does not exist is a host failure before the guest runs, with one line naming it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tugboat-cfs-'));
    try {
      const run = await runComponentHost({ args: ['/probe.wasm', 'checks'], env: [], root, preopens: [{ guest: '/', path: '/' }, { guest: '/data', path: '/missing' }], component: probe });
      expect(run.stderr).toBe("tugboat: /probe.wasm: cannot set up the guest: cannot open /missing (the guest's /data): ENOENT\n");
      expect(run.code).toBe(125);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
