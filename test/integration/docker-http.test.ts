// A wasi:http component as a Docker container: served on the container's own
// network namespace, reached through `-p`, from another container on the
// bridge by its IP, and from a process sharing its network namespace; and
// under the profile `tugboat seccomp-profile` prints, resets that copy back
// only the pages a request wrote.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KERNEL_TELLS_WRITTEN_PAGES } from '../unit/helpers/kernel.js';
import { startDockerd, type DockerdHandle } from './daemons/dockerd.js';
import { fdLinks, FIXTURES, seccompMode, TUGBOAT, wasmHostBelow } from './helpers.js';

const HTTP = 'tugboat.local/component-http:latest';
const BUSYBOX = 'tugboat.local/busybox:latest';
const PORT = 18080;

describe('docker run --runtime tugboat: wasi:http component', () => {
  let d: DockerdHandle;
  let c: string;
  const docker = (args: string[]) => d.docker(args, { timeoutMs: 60_000 });

  async function get(url: string): Promise<{ status: number; body: string }> {
    for (let i = 0; i < 200; i++) {
      try {
        const r = await fetch(url);
        return { status: r.status, body: await r.text() };
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // not listening yet
      }
    }
    throw new Error(`${url} never answered`);
  }

  beforeAll(async () => {
    d = await startDockerd({ runtimes: { tugboat: { path: TUGBOAT } } });
    for (const f of ['component-http.docker.tar', 'busybox.docker.tar']) {
      const r = await d.docker(['load', '-i', join(FIXTURES, f)]);
      expect(r.code, r.stderr).toBe(0);
    }
    const r = await docker(['run', '-d', '--runtime', 'tugboat', '-p', `127.0.0.1:${PORT}:8080`, HTTP]);
    expect(r.code, r.stderr).toBe(0);
    c = r.stdout.trim();
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('answers through a -p port mapping on the host', async () => {
    expect(await get(`http://127.0.0.1:${PORT}/from-host`)).toEqual({ status: 200, body: 'hello from a wasm component: /from-host\n' });
  });

  it('answers 200 concurrent requests with the right bodies', async () => {
    await get(`http://127.0.0.1:${PORT}/warm`);
    const bodies = await Promise.all(Array.from({ length: 200 }, (_, i) => fetch(`http://127.0.0.1:${PORT}/id/${i}`).then((r) => r.text())));
    expect(bodies).toEqual(Array.from({ length: 200 }, (_, i) => `id ${i}\n`));
  });

  it('answers another container on the bridge, by IP', async () => {
    await get(`http://127.0.0.1:${PORT}/warm`);
    const ip = (await docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', c])).stdout.trim();
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const r = await docker(['run', '--rm', BUSYBOX, 'wget', '-qO-', `http://${ip}:8080/from-bridge`]);
    expect(r.stdout, r.stderr).toBe('hello from a wasm component: /from-bridge\n');
  });

  it('answers a process in the same network namespace on loopback', async () => {
    const r = await docker(['run', '--rm', '--network', `container:${c}`, BUSYBOX, 'wget', '-qO-', 'http://127.0.0.1:8080/from-netns']);
    expect(r.stdout, r.stderr).toBe('hello from a wasm component: /from-netns\n');
  });

  it('turns a failing request into a 500 and keeps serving', async () => {
    expect((await get(`http://127.0.0.1:${PORT}/error`)).status).toBe(500);
    expect((await get(`http://127.0.0.1:${PORT}/after`)).body).toBe('hello from a wasm component: /after\n');
  });

  it("resets by written pages: userfaultfd's under `tugboat seccomp-profile`'s profile, the memory's image under Docker's default, which refuses userfaultfd", async () => {
    const hostOf = async (id: string) => wasmHostBelow(Number((await docker(['inspect', '-f', '{{.State.Pid}}', id])).stdout.trim()));
    await get(`http://127.0.0.1:${PORT}/warm`);
    // The host opens its watch as its first instance is made: userfaultfd refused (EPERM), each memory mapped on its image, an unnamed file in the container's /dev/shm.
    const links = fdLinks(await hostOf(c));
    expect(links).not.toContain('anon_inode:[userfaultfd]');
    expect(links.some((l) => /^\/dev\/shm\/#\d+ \(deleted\)$/.test(l)), links.join(' ')).toBe(true);
    const defaults = await Promise.all(Array.from({ length: 100 }, (_, i) => fetch(`http://127.0.0.1:${PORT}/id/${i}`).then((res) => res.text())));
    expect(defaults).toEqual(Array.from({ length: 100 }, (_, i) => `id ${i}\n`));
    const dir = mkdtempSync(join(tmpdir(), 'tugboat-docker-seccomp-'));
    try {
      const profile = join(dir, 'wasm-host.json');
      writeFileSync(profile, execFileSync(TUGBOAT, ['seccomp-profile'], { encoding: 'utf8' }));
      const r = await docker(['run', '-d', '--runtime', 'tugboat', '--security-opt', `seccomp=${profile}`, '-p', `127.0.0.1:${PORT + 1}:8080`, HTTP]);
      expect(r.code, r.stderr).toBe(0);
      const fast = r.stdout.trim();
      try {
        expect(await get(`http://127.0.0.1:${PORT + 1}/first`)).toEqual({ status: 200, body: 'hello from a wasm component: /first\n' });
        // Many resets: what one request left never reaches the next.
        const bodies = await Promise.all(Array.from({ length: 100 }, (_, i) => fetch(`http://127.0.0.1:${PORT + 1}/id/${i}`).then((res) => res.text())));
        expect(bodies).toEqual(Array.from({ length: 100 }, (_, i) => `id ${i}\n`));
        expect(seccompMode(await hostOf(fast))).toBe('2');
        if (KERNEL_TELLS_WRITTEN_PAGES) expect(fdLinks(await hostOf(fast))).toContain('anon_inode:[userfaultfd]');
      } finally {
        await docker(['rm', '-f', fast]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drains on docker stop and exits 143', async () => {
    const slow = fetch(`http://127.0.0.1:${PORT}/slow?ms=1500`).then((r) => r.text());
    // The request is in flight once the guest logs it.
    for (let i = 0; i < 100 && !(await docker(['logs', c])).stdout.includes('slow request started'); i++) await new Promise((r) => setTimeout(r, 50));
    const stop = docker(['stop', '-t', '30', c]);
    expect(await slow).toBe('slept 1500\n');
    expect((await stop).code).toBe(0);
    expect((await docker(['inspect', '-f', '{{.State.ExitCode}}', c])).stdout.trim()).toBe('143');
  });
});
