// `tugboat seccomp-profile --format oci` handed to containerd: `ctr run
// --seccomp --seccomp-profile FILE` of an HTTP component (its own container,
// through the shim). containerd reads the file as the runtime spec's
// linux.seccomp, as it is; the shim sees the userfaultfd rule there and the
// host opens its watch, so resets copy back only the pages a request wrote.
// Under containerd's own default profile (`--seccomp` alone) it opens none.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KERNEL_TELLS_WRITTEN_PAGES } from '../unit/helpers/kernel.js';
import { sleep } from './daemons/process.js';
import { fdLinks, freePort, REPO, seccompMode, TUGBOAT, wasmHostBelow } from './helpers.js';
import { startShimContainerd, type ShimContainerd } from './shim-helpers.js';

const RT = 'io.containerd.tugboat.v1';
const NS = `tb-seccomp-profile-${process.pid}`;
const HTTP = 'tugboat.local/wasm:component-http';
const UFFD = 'anon_inode:[userfaultfd]';

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))('tugboat seccomp-profile --format oci under containerd', () => {
  let d: ShimContainerd | undefined;
  const ctr = (args: string[]) => d!.ctr(args);

  beforeAll(async () => {
    d = await startShimContainerd(NS, '/tmp/tugboat-seccomp-profile-');
  });
  afterAll(async () => {
    await d?.stop();
  });

  /** Runs the component in a container of its own with `seccomp` (ctr's options), on the host's network; its host process once it answers. */
  async function serve(id: string, seccomp: string[]): Promise<{ port: number; host: number }> {
    const port = await freePort();
    const r = await ctr(['run', '-d', '--net-host', '--runtime', RT, '--platform', 'wasi/wasm', ...seccomp, '--env', `PORT=${port}`, HTTP, id]);
    expect(r.code, r.stderr).toBe(0);
    for (let i = 0; ; i++) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/first`);
        expect(await res.text()).toBe('hello from a wasm component: /first\n');
        break;
      } catch (err) {
        if (i > 300) throw err;
        await sleep(100);
      }
    }
    const init = Number(/^\S+\s+(\d+)/m.exec((await ctr(['tasks', 'ls'])).stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '')?.[1]);
    return { port, host: wasmHostBelow(init) };
  }


  it("lets the host open its userfaultfd under the printed profile, and not under containerd's default", async () => {
    const profile = join(d!.tmp, 'wasm-host.oci.json');
    writeFileSync(profile, execFileSync(TUGBOAT, ['seccomp-profile', '--format', 'oci'], { encoding: 'utf8' }));

    const fast = await serve('sp-fast', ['--seccomp', '--seccomp-profile', profile]);
    // Many requests, each on an instance put back as it was made: none sees what another left.
    const bodies = await Promise.all(Array.from({ length: 100 }, (_, i) => fetch(`http://127.0.0.1:${fast.port}/id/${i}`).then((res) => res.text())));
    expect(bodies).toEqual(Array.from({ length: 100 }, (_, i) => `id ${i}\n`));
    expect(seccompMode(fast.host)).toBe('2');
    if (KERNEL_TELLS_WRITTEN_PAGES) expect(fdLinks(fast.host)).toContain(UFFD);

    const plain = await serve('sp-default', ['--seccomp']);
    expect(seccompMode(plain.host)).toBe('2');
    expect(fdLinks(plain.host)).not.toContain(UFFD);
  });
});
