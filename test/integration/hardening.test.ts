// Issue 11: the store and the CLI cannot be turned against the host. Each
// test reproduces one attack or fault of the issue through the real CLI and
// asserts the fix.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, LayoutWriter, oneFileTar } from '../helpers/layout.js';
import { rawTar, setChecksum, ustarHeader } from '../unit/helpers/tar.js';
import { BUSYBOX, exec, FIXTURES, oneLine, TUGBOAT, TugboatSandbox, WASM } from './helpers.js';

const mode = (p: string) => statSync(p).mode & 0o777;

/** An uncompressed tar of one file of `size` zeros (LayoutWriter gzips it). */
function zeroTar(size: number): Buffer {
  return Buffer.concat([ustarHeader(Buffer.from('zeros'), '0', size), Buffer.alloc(size), Buffer.alloc(1024)]);
}

/**
 * Runs a shell command as the unprivileged uid 65534, the way a local
 * attacker would. Through sh: setpriv itself still holds root's capabilities
 * while it execs its program, which would walk into any directory.
 */
function asNobody(script: string): { code: number; out: string } {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', '/bin/sh', '-c', script], { encoding: 'utf8' });
  return { code: r.status ?? 128, out: `${r.stdout}${r.stderr}` };
}

/** A tar with busybox at suid/busybox and a directory `shared` (modes set by patchModes). */
function setuidTar(): Buffer {
  return rawTar([
    { name: Buffer.from('suid'), type: 'directory' },
    { name: Buffer.from('suid/busybox'), content: readFileSync('/bin/busybox') },
    { name: Buffer.from('shared'), type: 'directory' },
  ]);
}

describe('item 1: the data root is private', () => {
  let tb: TugboatSandbox;
  let work: string;
  let rootfs: string;
  beforeAll(async () => {
    tb = new TugboatSandbox('tugboat-h1-', { fresh: true });
    work = mkdtempSync(join(tmpdir(), 'tugboat-h1-img-'));
    // An image with a setuid-root program and a world-writable (1777) directory.
    const l = new LayoutWriter(join(work, 'img'));
    const tar = patchModes(setuidTar(), { 'suid/busybox': 0o4755, shared: 0o1777 });
    l.tag({ s: l.image([busyboxLayer(FIXTURES), tar]) });
    const imp = await tb.run(['image', 'import', `oci:${l.dir}:s`, '--name', 's']);
    expect(imp.code, imp.stderr).toBe(0);
    const run = await tb.run(['run', '--rm', 's', 'true']);
    expect(run.code, run.stderr).toBe(0);
    const [hex] = readdirSync(join(tb.root, 'rootfs'));
    rootfs = join(tb.root, 'rootfs', hex!);
    // The files are there as the image says (the store is not "fixed" by mangling images).
    expect(statSync(join(rootfs, 'suid', 'busybox')).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(rootfs, 'shared')).mode & 0o7777).toBe(0o1777);
  });
  afterAll(() => {
    tb.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('creates the root and every directory below it 0700', () => {
    for (const d of ['', 'images', 'rootfs', 'locks', 'containers', 'runc']) expect(mode(join(tb.root, d)), d || 'root').toBe(0o700);
  });

  it('another user can neither run the setuid binary, nor write into the image, nor read it', () => {
    const exe = asNobody(`${join(rootfs, 'suid', 'busybox')} true`);
    expect(exe.code).not.toBe(0);
    expect(exe.out).toMatch(/Permission denied/);
    const write = asNobody(`echo pwned > ${join(rootfs, 'shared', 'x')}`);
    expect(write.code).not.toBe(0);
    expect(existsSync(join(rootfs, 'shared', 'x'))).toBe(false);
    const read = asNobody(`cat ${join(tb.root, 'images', 'index.json')}`);
    expect(read.code).not.toBe(0);
    expect(read.out).toMatch(/Permission denied/);
  });

  it('repairs a store left 0755 by an older version on the next writing command', async () => {
    for (const d of ['', 'images', 'rootfs', 'containers']) chmodSync(join(tb.root, d), 0o755);
    // A reading command changes nothing…
    expect((await tb.run(['image', 'ls'])).code).toBe(0);
    expect(mode(tb.root)).toBe(0o755);
    // …the attack works again meanwhile…
    expect(asNobody(`${join(rootfs, 'suid', 'busybox')} true`).code).toBe(0);
    // …and any writing command closes it.
    expect((await tb.run(['image', 'import', WASM('hello'), '--name', 'hello'])).code).toBe(0);
    for (const d of ['', 'images', 'rootfs', 'containers']) expect(mode(join(tb.root, d)), d || 'root').toBe(0o700);
    expect(asNobody(`${join(rootfs, 'suid', 'busybox')} true`).code).not.toBe(0);
  });
});

/** Sets the mode of the named ustar entries (and fixes their checksums). */
function patchModes(tar: Buffer, modes: Record<string, number>): Buffer {
  const out = Buffer.from(tar);
  for (let off = 0; off + 512 <= out.length; ) {
    const h = out.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    if (modes[name] !== undefined) {
      h.write(modes[name].toString(8).padStart(7, '0') + '\0', 100, 'latin1');
      setChecksum(h);
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

describe('item 2: names are checked before they touch a path', () => {
  let work: string;
  let root: string;
  const tb = (args: string[]) => exec(TUGBOAT, ['--root', root, ...args]);
  beforeAll(async () => {
    // Deep enough that "containers/../.." is a canary of ours, never a system directory.
    work = mkdtempSync(join(tmpdir(), 'tugboat-h2-'));
    root = join(work, 'a', 'root');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(work, 'a', 'canary'), 'still here');
    const r = await tb(['run', '--name', 'live', BUSYBOX, 'true']);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    await tb(['rm', '-f', 'live']);
    rmSync(work, { recursive: true, force: true });
  });

  it.each([['..'], ['../..'], [''], ['.'], ['a/../..'], ['-x']])('rm %j is refused and deletes nothing', async (name) => {
    const r = await tb(['rm', '--', name]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/^tugboat: rm: (container id cannot be empty|invalid container id format)/);
    expect(readFileSync(join(work, 'a', 'canary'), 'utf8')).toBe('still here');
    expect(existsSync(join(root, 'images', 'index.json'))).toBe(true);
    expect(existsSync(join(root, 'containers', 'live', 'container.json'))).toBe(true);
  });

  it('checks every name of one rm before removing any', async () => {
    const r = await tb(['rm', 'live', '..']);
    expect(r.code).toBe(2);
    expect(existsSync(join(root, 'containers', 'live'))).toBe(true);
  });

  it.each([
    [['run', '--name', '..', BUSYBOX, 'true'], /--name: invalid container id format: "\.\."/],
    [['image', 'import', BUSYBOX, '--name', '../x'], /image import --name: invalid image name "\.\.\/x"/],
    [['image', 'rm', ''], /image rm: image name cannot be empty/],
    [['image', 'rm', '../../x'], /image rm: invalid image name/],
  ])('%j is refused with one line and status 2', async (args, message) => {
    const r = await tb(args);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(message);
    expect(readFileSync(join(work, 'a', 'canary'), 'utf8')).toBe('still here');
  });
});

describe('items 5, 10, 12, 13: hostile images and clear messages', () => {
  let tb: TugboatSandbox;
  let work: string;
  beforeAll(async () => {
    tb = new TugboatSandbox();
    work = mkdtempSync(join(tmpdir(), 'tugboat-h5-'));
    expect((await tb.run(['image', 'import', WASM('hello'), '--name', 'good'])).code).toBe(0);
  });
  afterAll(() => {
    tb.cleanup();
    rmSync(work, { recursive: true, force: true });
  });
  async function storeUnchanged(): Promise<void> {
    const ls = JSON.parse((await tb.run(['image', 'ls', '--format', 'json'])).stdout) as { name: string }[];
    expect(ls.map((i) => i.name)).toEqual(['good']);
  }

  it('5: never prints the content of a file a layout links to, and refuses links leaving the layout', async () => {
    const secret = join(work, 'shadow');
    writeFileSync(secret, 'root:$y$j9T$TOPSECRETHASH:19000:0:99999:7:::\n');
    const l = new LayoutWriter(join(work, 'linked'));
    symlinkSync(secret, join(l.dir, 'index.json'));
    const r = await tb.run(['image', 'import', `oci:${l.dir}`, '--name', 'x']);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toBe(`tugboat: oci:${l.dir}: index.json: refusing a link that leads outside ${l.dir}`);
    // The same bytes as the layout's own file: only the position is named.
    rmSync(join(l.dir, 'index.json'));
    writeFileSync(join(l.dir, 'index.json'), readFileSync(secret));
    const r2 = await tb.run(['run', '--rm', `oci:${l.dir}`]);
    expect(oneLine(r2.stderr)).toBe(`tugboat: oci:${l.dir}: index.json: invalid JSON at line 1, column 1`);
    expect(r.stderr + r2.stderr).not.toContain('TOPSECRET');
    await storeUnchanged();
  });

  it('10: imports (and removes) a fan-out 8 × depth 6 index quickly', { timeout: 30_000 }, async () => {
    const l = new LayoutWriter(join(work, 'dag'));
    let level = [l.image([oneFileTar('a', '1')])];
    for (let d = 0; d < 6; d++) level = Array.from({ length: 8 }, (_, i) => l.json({ schemaVersion: 2, manifests: level, annotations: { n: `${d}.${i}` } }, 'application/vnd.oci.image.index.v1+json'));
    l.tag({ dag: l.index(level) });
    const imp = await tb.run(['image', 'import', `oci:${l.dir}:dag`, '--name', 'dag']);
    expect(imp.code, imp.stderr).toBe(0);
    expect((await tb.run(['image', 'rm', 'dag'])).code).toBe(0);
    // Deeper than 8 is refused outright.
    let deep = l.image([oneFileTar('a', '1')]);
    for (let d = 0; d < 10; d++) deep = l.index([deep]);
    l.tag({ deep });
    const r = await tb.run(['image', 'import', `oci:${l.dir}:deep`, '--name', 'deep']);
    expect(oneLine(r.stderr)).toMatch(/image indexes nested more than 8 deep/);
    await storeUnchanged();
  });

  it('12: refuses a layer that does not match its diff_id, at import and at run', async () => {
    const l = new LayoutWriter(join(work, 'lying'));
    l.tag({ x: l.image([oneFileTar('a', 'hello')], { diffIds: [`sha256:${'0'.repeat(64)}`] }) });
    const blobs = readdirSync(join(tb.root, 'images', 'blobs', 'sha256')).sort();
    const imp = await tb.run(['image', 'import', `oci:${l.dir}:x`, '--name', 'lying']);
    expect(oneLine(imp.stderr)).toMatch(/does not match its diff_id: expected sha256:0{64}, got sha256:/);
    // Item 9: blobs are verified before the store sees them: not even the config of a failed import stays.
    expect(readdirSync(join(tb.root, 'images', 'blobs', 'sha256')).sort()).toEqual(blobs);
    const run = await tb.run(['run', '--rm', `oci:${l.dir}:x`]);
    expect(oneLine(run.stderr)).toMatch(/does not match its diff_id/);
    await storeUnchanged();
  });

  it('12: keeps names that are not UTF-8 apart inside the container', async () => {
    const l = new LayoutWriter(join(work, 'bytes'));
    const names = rawTar([
      { name: Buffer.from('d'), type: 'directory' },
      { name: Buffer.from([0x64, 0x2f, 0x61, 0xff]), content: Buffer.from('one') },
      { name: Buffer.from([0x64, 0x2f, 0x61, 0xfe]), content: Buffer.from('two'), pax: true },
    ]);
    l.tag({ x: l.image([busyboxLayer(FIXTURES), names]) });
    const r = await tb.run(['run', '--rm', `oci:${l.dir}:x`, 'sh', '-c', 'ls /d | wc -l; for f in /d/*; do cat "$f"; echo; done | sort | tr "\\n" " "']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('2\none two ');
  });

  it('11: bounds how far a layer may expand and how many entries it may hold; --layer-limits sets both', async () => {
    const l = new LayoutWriter(join(work, 'bomb'));
    // 96 MiB of zeros gzip to ~100 KiB: allowed would be 100 × that + 64 MiB.
    const zeros = zeroTar(96 * 1024 * 1024);
    const many = Buffer.concat([...Array.from({ length: 60 }, (_, i) => oneFileTar(`f${i}`, '').subarray(0, 512)), Buffer.alloc(1024)]);
    l.tag({ zeros: l.image([zeros]), many: l.image([many]) });
    const bomb = await tb.run(['run', '--rm', `oci:${l.dir}:zeros`]);
    expect(oneLine(bomb.stderr)).toMatch(/layer expands to more than 100 times its compressed size \(limit --layer-limits ratio=100\)$/);
    const raised = await tb.run(['--layer-limits', 'ratio=2000', 'run', '--rm', `oci:${l.dir}:zeros`]);
    expect(raised.stderr).not.toMatch(/expands/);
    const entries = await tb.run(['--layer-limits', 'entries=50', 'run', '--rm', `oci:${l.dir}:many`]);
    expect(oneLine(entries.stderr)).toBe('tugboat: refusing layer entry "f50": layer has more than 50 entries (limit --layer-limits entries=50)');
    const bad = await tb.run(['--layer-limits', 'ratio=lots', 'run', '--rm', `oci:${l.dir}:many`]);
    expect(bad.code).toBe(2);
    expect(oneLine(bad.stderr)).toBe('tugboat: --layer-limits: ratio needs a positive integer, got "lots"');
    await storeUnchanged();
  });

  it('13: names an empty layout instead of "image tag undefined"', async () => {
    const l = new LayoutWriter(join(work, 'empty'));
    l.tag({});
    const r = await tb.run(['image', 'import', `oci:${l.dir}`, '--name', 'e']);
    expect(oneLine(r.stderr)).toBe(`tugboat: no images in oci:${l.dir}`);
  });

  it('13: a name too long for the file system names the entry, not a temp path', async () => {
    const l = new LayoutWriter(join(work, 'long'));
    // A PAX name may be longer than a file system allows for one component (255).
    const long = 'L'.repeat(300);
    l.tag({ x: l.image([rawTar([{ name: Buffer.from(long), content: Buffer.from('x'), pax: true }])]) });
    const r = await tb.run(['run', '--rm', `oci:${l.dir}:x`]);
    expect(oneLine(r.stderr)).toBe(`tugboat: refusing layer entry "${long}": name too long`);
    expect(r.stderr).not.toMatch(/\.tmp-/);
  });

  it('13: a full disk is reported as such, for the store and for archives', async () => {
    const small = join(work, 'small');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small]);
    try {
      const root = join(small, 'root');
      const r = await exec(TUGBOAT, ['--root', root, 'image', 'import', BUSYBOX, '--name', 'bb']);
      expect(r.code).toBe(1);
      expect(oneLine(r.stderr)).toBe(`tugboat: cannot write to the image store in ${root}: no space left on device`);
      // Archives are unpacked into the root's temp space: a full one is not "not a valid tar"…
      const root2 = join(small, 'root2');
      const a = await exec(TUGBOAT, ['--root', root2, 'image', 'import', `docker-archive:${join(FIXTURES, 'busybox.docker.tar')}`, '--name', 'bb']);
      expect(a.code).toBe(1);
      expect(oneLine(a.stderr)).toBe(`tugboat: docker-archive:${join(FIXTURES, 'busybox.docker.tar')}: cannot unpack the archive: no space left on device`);
      // …and the failure leaves nothing there.
      expect(readdirSync(join(root2, 'tmp'))).toEqual([]);
    } finally {
      execFileSync('umount', ['-l', small]);
    }
    await storeUnchanged();
  });
});

describe('item 6: unpacked roots that containers use are kept', () => {
  let tb: TugboatSandbox;
  let work: string;
  beforeAll(async () => {
    tb = new TugboatSandbox();
    work = mkdtempSync(join(tmpdir(), 'tugboat-h6-'));
    for (const [ref, name] of [[BUSYBOX, 'bb'], [WASM('hello'), 'hello']] as const) expect((await tb.run(['image', 'import', ref, '--name', name])).code).toBe(0);
  });
  afterAll(() => {
    tb.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('an unrelated image rm does not collect the root of a container run by reference', async () => {
    // An image that is in no name of the store: its root is only a cache, and was collected under the container.
    const l = new LayoutWriter(join(work, 'byref'));
    l.tag({ x: l.image([busyboxLayer(FIXTURES), oneFileTar('marker', 'by reference')]) });
    const running = tb.run(['run', '--rm', `oci:${l.dir}:x`, 'sh', '-c', 'sleep 2; cat /marker; echo; ls /bin/busybox']);
    // Wait until the container exists, then remove another image (which collects garbage).
    for (let i = 0; i < 100 && !(existsSync(join(tb.root, 'containers')) && readdirSync(join(tb.root, 'containers')).length > 0); i++) await new Promise((r) => setTimeout(r, 50));
    const roots = readdirSync(join(tb.root, 'rootfs'));
    expect((await tb.run(['image', 'rm', 'hello'])).code).toBe(0);
    for (const hex of roots.filter((h) => !h.includes('.tmp-'))) expect(existsSync(join(tb.root, 'rootfs', hex))).toBe(true);
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('by reference\n/bin/busybox\n');
  });

  it('image rm of an image a container uses is refused, naming it; --force forgets the name and keeps the root', async () => {
    expect((await tb.run(['run', '--name', 'kept', 'bb', 'true'])).code).toBe(0);
    const r = await tb.run(['image', 'rm', 'bb']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe('tugboat: image bb is used by container kept: remove it first (tugboat rm), or use image rm --force to forget the name now (its files stay until no container uses them)');
    const bb = (JSON.parse((await tb.run(['image', 'ls', '--format', 'json'])).stdout) as { name: string; digest: string }[]).find((i) => i.name === 'bb')!;
    expect((await tb.run(['image', 'rm', '--force', 'bb'])).code).toBe(0);
    expect(existsSync(join(tb.root, 'rootfs', bb.digest.slice(7)))).toBe(true);
    expect((await tb.run(['rm', 'kept'])).code).toBe(0);
  });
});

describe('item 8: one name, one container', () => {
  let tb: TugboatSandbox;
  beforeAll(async () => {
    tb = new TugboatSandbox();
    expect((await tb.run(['image', 'import', BUSYBOX, '--name', 'bb'])).code).toBe(0);
  });
  afterAll(() => tb.cleanup());

  it('four runs of one name at once: exactly one wins, the losers touch nothing of it (40 trials, 5 at a time)', { timeout: 300_000 }, async () => {
    const trials = 40;
    const perTrial = 4;
    let lost = 0;
    for (let batch = 0; batch < trials; batch += 5) {
      await Promise.all(
        Array.from({ length: 5 }, async (_, k) => {
          const t = batch + k;
          const name = `same${t}`;
          // The winner is still running while the losers fail: their cleanup must leave it whole.
          const runs = await Promise.all(Array.from({ length: perTrial }, (_, j) => tb.run(['run', '--name', name, 'bb', 'sh', '-c', `sleep 0.3; echo run${j}; hostname`])));
          const won = runs.filter((r) => r.code === 0);
          expect(won, runs.map((r) => r.stderr).join('')).toHaveLength(1);
          expect(won[0]!.stdout).toMatch(new RegExp(`^run\\d\\n${name}\\n$`));
          for (const r of runs.filter((x) => x.code !== 0)) {
            expect(r.code).toBe(2);
            expect(oneLine(r.stderr)).toBe(`tugboat: container name ${name} is already in use (tugboat rm ${name})`);
            lost++;
          }
        }),
      );
    }
    expect(lost).toBe(trials * (perTrial - 1));
    // Every winner's container is there, whole, and removable.
    const ps = JSON.parse((await tb.run(['ps', '--format', 'json'])).stdout) as { id: string; status: string }[];
    expect(ps.map((c) => c.id).sort()).toEqual(Array.from({ length: trials }, (_, t) => `same${t}`).sort());
    for (const c of ps) expect(c.status).toBe('exited (0)');
    for (let t = 0; t < trials; t++) expect(existsSync(join(tb.root, 'containers', `same${t}`, 'config.json'))).toBe(true);
    expect((await tb.run(['rm', ...ps.map((c) => c.id)])).code).toBe(0);
    expect(readdirSync(join(tb.root, 'containers'))).toEqual([]);
    expect(readdirSync(join(tb.root, 'tmp'))).toEqual([]);
    expect(tb.mounts()).toEqual([]);
  });
});

describe('item 9: temp files live under the data root', () => {
  it('archives are unpacked in <root>/tmp, never in the system temp dir, and removed after use or failure', async () => {
    const tb = new TugboatSandbox();
    const sysTmp = mkdtempSync(join(tmpdir(), 'tugboat-h9-tmp-'));
    try {
      const env = { TMPDIR: sysTmp };
      const archive = `docker-archive:${join(FIXTURES, 'busybox.docker.tar')}`;
      expect((await exec(TUGBOAT, ['--root', tb.root, 'run', '--rm', archive, 'true'], { env })).code).toBe(0);
      expect((await exec(TUGBOAT, ['--root', tb.root, 'image', 'import', archive, '--name', 'a'], { env })).code).toBe(0);
      // A failed import from an archive (an image name that does not exist in it).
      expect((await exec(TUGBOAT, ['--root', tb.root, 'image', 'import', `${archive}:nosuchtag`, '--name', 'b'], { env })).code).toBe(1);
      expect(readdirSync(sysTmp)).toEqual([]);
      expect(readdirSync(join(tb.root, 'tmp'))).toEqual([]);
    } finally {
      tb.cleanup();
      rmSync(sysTmp, { recursive: true, force: true });
    }
  });
});
