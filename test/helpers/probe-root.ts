// The root directory the probe guest's `checks` run against (test/guests/probe.rs),
// shared by the preview1 host's tests and the component host's.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
