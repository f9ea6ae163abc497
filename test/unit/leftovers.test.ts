// Issue 11, items 8 and 9 in process: owned temp names and their sweep, the
// undo registry of interrupted commands, runner locks and name claims. The
// same through the real CLI, with real kills: test/integration/faults.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContainerClaim, RUNNER_LOCK, runnerState } from '../../src/cli/containers.js';
import { runUndos, undoOnInterrupt } from '../../src/interrupt.js';
import { lockFileWithin, tryLockFile } from '../../src/oci/file-lock.js';
import { makeTempDir, sweepTempSpace } from '../../src/oci/temp-space.js';
import { ownedName, ownerGone, ownerOf, ownerTag, processStartTime } from '../../src/owner.js';

/** The pid of a process that has ended (and been reaped). */
function deadPid(): number {
  const r = spawnSync('/bin/true');
  return r.pid!;
}

let root: string;
const savedTmp = process.env.TMPDIR;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tugboat-left-'));
  // The sweep also looks at the system temp dir: this test's own.
  process.env.TMPDIR = join(root, 'systmp');
});
afterEach(() => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  rmSync(root, { recursive: true, force: true });
});

describe('owned names', () => {
  it('name their owner by pid and start time', () => {
    const name = ownedName('archive-');
    expect(name).toMatch(new RegExp(`^archive-${process.pid}-\\d+-[0-9a-f]{8}$`));
    expect(ownerOf(name)).toEqual({ pid: process.pid, start: processStartTime(process.pid) });
    expect(ownerTag()).toBe(`${process.pid}-${processStartTime(process.pid)}`);
    expect(ownerGone(name)).toBe(false);
  });

  it('tell a dead owner, and a reused pid, from a live one', () => {
    expect(ownerGone(`archive-${deadPid()}-12345-0123abcd`)).toBe(true);
    // Our pid, another start time: the pid was reused.
    expect(ownerGone(`x.tmp-${process.pid}-1-0123abcd`)).toBe(true);
  });

  it('are never mistaken for other names', () => {
    for (const n of ['a'.repeat(64), `${'b'.repeat(64)}.tmp-0123456789abcdef-0123456789ab`, 'index.json', 'hello', 'tugboat-transpile-1234-abcd1234']) {
      expect(ownerOf(n), n).toBeUndefined();
      expect(ownerGone(n)).toBe(false);
    }
  });
});

describe('the sweep of what killed commands left', () => {
  it('removes entries of dead owners everywhere it looks, and nothing else', async () => {
    const dead = `${deadPid()}-777-0badf00d`;
    const live = ownerTag() + '-00c0ffee';
    const hex = 'a'.repeat(64);
    const layout = {
      tmp: [`archive-${dead}`, `pull-${live}`, 'unrelated'],
      rootfs: [hex, `${hex}.tmp-${dead}`, `${hex}.tmp-${live}`],
      'images/blobs/sha256': [hex, `${hex}.tmp-${dead}`, `${hex}.tmp-0123456789abcdef-0123456789ab`],
      images: [`index.json.tmp-${dead}`, 'index.json'],
      components: [`.tmp-${dead}`, `.old-${dead}`, `.tmp-${live}`, hex],
      'registry-staging': [dead, live],
    };
    for (const [dir, names] of Object.entries(layout)) {
      mkdirSync(join(root, dir), { recursive: true });
      for (const n of names) mkdirSync(join(root, dir, n), { recursive: true });
    }
    writeFileSync(join(root, 'tmp', `archive-${dead}`, 'f'), 'x');
    expect(await sweepTempSpace(root)).toBe(7);
    const left = (dir: string) => readdirSync(join(root, dir)).sort();
    expect(left('tmp')).toEqual([`pull-${live}`, 'unrelated']);
    expect(left('rootfs')).toEqual([hex, `${hex}.tmp-${live}`]);
    expect(left('images/blobs/sha256')).toEqual([hex, `${hex}.tmp-0123456789abcdef-0123456789ab`]);
    expect(left('images')).toEqual(['blobs', 'index.json']);
    expect(left('components')).toEqual([`.tmp-${live}`, hex]);
    expect(left('registry-staging')).toEqual([live]);
  });

  it('removes what older versions left (names without an owner) once untouched for a day', async () => {
    const sysTmp = join(root, 'systmp');
    const hex = 'c'.repeat(64);
    const old = [join(sysTmp, 'tugboat-archive-abc123'), join(root, 'rootfs', `${hex}.tmp-0123456789ab`), join(root, 'images/blobs/sha256', `${hex}.tmp-0123456789ab`), join(root, 'components', '.tmp-0123456789abcdef-0123456789ab')];
    const fresh = [join(sysTmp, 'tugboat-archive-def456'), join(root, 'rootfs', `${hex}.tmp-ba9876543210`)];
    for (const p of [...old, ...fresh]) mkdirSync(p, { recursive: true });
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    for (const p of old) utimesSync(p, twoDaysAgo, twoDaysAgo);
    expect(await sweepTempSpace(root)).toBe(4);
    for (const p of old) expect(existsSync(p), p).toBe(false);
    for (const p of fresh) expect(existsSync(p), p).toBe(true);
  });

  it('makes temp dirs private, under the root, removed on an interruption', async () => {
    const t = await makeTempDir(root, 'archive');
    expect(t.path.startsWith(join(root, 'tmp', `archive-${process.pid}-`))).toBe(true);
    runUndos();
    expect(existsSync(t.path)).toBe(false);
    const u = await makeTempDir(root, 'archive');
    await u.remove();
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });
});

describe('undo on interrupt', () => {
  it('undoes newest first, skips what was forgotten, and goes on after a failing undo', () => {
    const done: string[] = [];
    undoOnInterrupt(() => done.push('first'));
    const forget = undoOnInterrupt(() => done.push('forgotten'));
    undoOnInterrupt(() => {
      throw new Error('boom');
    });
    undoOnInterrupt(() => done.push('last'));
    forget();
    runUndos();
    expect(done).toEqual(['last', 'first']);
    runUndos();
    expect(done).toEqual(['last', 'first']);
  });
});

describe('runner locks and name claims', () => {
  it('two opens of one lock file exclude each other, as two processes do', async () => {
    const file = join(root, 'lock');
    const a = tryLockFile(file, 'exclusive')!;
    expect(tryLockFile(file, 'shared')).toBeUndefined();
    expect(await lockFileWithin(file, 'exclusive', 'test', 30)).toBeUndefined();
    a.release();
    const b = await lockFileWithin(file, 'exclusive', 'test', 30);
    expect(b).toBeDefined();
    b!.release();
    expect(await lockFileWithin(join(root, 'missing'), 'exclusive', 'test', 30)).toBeUndefined();
  });

  it('claims a name once among many concurrent claims; the losers leave nothing of theirs', async () => {
    const paths = { root };
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => ContainerClaim.claim(paths, 'same')));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 'rejected')) {
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/container name same is already in use/);
    }
    const claim = (won[0] as PromiseFulfilledResult<ContainerClaim>).value;
    expect(readdirSync(join(root, 'containers'))).toEqual(['same']);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(runnerState(claim.dir, undefined)).toBe('alive');
    claim.started();
    await claim.remove();
    expect(readdirSync(join(root, 'containers'))).toEqual([]);
  });

  it('tells a live runner from a dead one and from one that ended', async () => {
    const claim = await ContainerClaim.claim({ root }, 'c1');
    const record = { id: 'c1', image: 'i', digest: 'd', platform: 'p', workload: 'linux', reason: 'r', created: 'now' };
    expect(runnerState(claim.dir, record)).toBe('alive');
    // Lock released without the record saying how it ended: the runner died.
    const dir = claim.dir;
    claim.started();
    (claim as unknown as { lock: { release(): void } }).lock.release();
    expect(runnerState(dir, record)).toBe('dead');
    expect(runnerState(dir, { ...record, exitCode: 0 })).toBe('ended');
    rmSync(join(dir, RUNNER_LOCK));
    expect(runnerState(dir, record)).toBe('unknown');
  });
});
