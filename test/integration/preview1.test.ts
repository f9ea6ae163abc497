// Tugboat's preview1 host against a probe guest making raw preview1 calls
// (test/guests/probe.rs), in this process with no runc around it: every path
// op, symlinks (dangling, loops, absolute, nofollow), readdir cookies,
// readlink truncation, times, append, rights, sockets and poll on files, and
// ops on the wrong kind of descriptor. The same matrix runs with openat2 and
// with the component-by-component walk that replaces it where it is refused.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setOpenat2 } from '../../src/wasi-host/preview1/index.js';
import { GUESTS, lines, runGuest } from '../helpers/guest-run.js';
import { E, itAgreesWithEveryHost, makeProbeRoot, PROBE_PREOPENS } from '../helpers/probe-checks.js';

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

  itAgreesWithEveryHost(() => ({ r, root }));

  it('a path that is not UTF-8 is EILSEQ', () => {
    expect(r['path.badutf8']).toBe(String(E.ILSEQ));
  });

  it('truncation needs the truncate right; a read-only preopen denies writes', () => {
    expect(r['truncate.noright']).toBe(String(E.NOTCAPABLE));
    expect(r['truncate.ro.trunc']).toBe(String(E.NOTCAPABLE));
    for (const k of ['ro.write', 'ro.create', 'ro.mkdir', 'ro.unlink']) expect(r[k], k).toBe(String(E.NOTCAPABLE));
  });

  it('poll_oneoff on a regular file', () => {
    // Both subscriptions ready at once: read with the 10 bytes left, write.
    expect(r['poll.file']).toBe('0 2 7:0:10 8:0');
  });

  it('a directory op on a file is EBADF', () => {
    expect(r['file.readdir']).toBe(String(E.BADF));
    expect(r['file.mkdir']).toBe(String(E.BADF));
  });

  it('proc_raise is refused', () => {
    expect(r.proc_raise).toBe(String(E.NOTSUP));
  });
});
