// Smoke test for the daemon harness: a private dockerd (on a private
// containerd) loads our fixture images, runs busybox, publishes a port on
// loopback, and leaves no process, mount or directory behind.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, type ContainerdHandle } from './daemons/containerd.js';
import { harnessDir, startDockerd, type DockerdHandle } from './daemons/dockerd.js';
import { listProcesses, mountsUnder, sleep } from './daemons/process.js';
import { startRegistry, type RegistryHandle } from './daemons/registry.js';
import { FIXTURES } from './helpers.js';

const BUSYBOX = 'tugboat.local/busybox:latest';

function leftovers(dir: string): { procs: string[]; mounts: string[]; exists: boolean } {
  return {
    procs: listProcesses()
      .filter((p) => p.argv.some((a) => a.includes(dir)))
      .map((p) => `${p.pid} ${p.argv.join(' ')}`),
    mounts: mountsUnder(dir),
    exists: existsSync(dir),
  };
}

describe('private dockerd', () => {
  let d: DockerdHandle;
  let reg: RegistryHandle;
  beforeAll(async () => {
    [d, reg] = await Promise.all([startDockerd(), startRegistry()]);
  });
  afterAll(async () => {
    await Promise.all([d?.stop(), reg?.stop()]);
  });

  it('answers with a negotiated API version', async () => {
    const v = await d.docker(['version', '--format', '{{.Client.APIVersion}}/{{.Server.APIVersion}}/{{.Server.Version}}']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toMatch(/^1\.41\/1\.41\/20\.10\./);
    const info = await d.docker(['info', '--format', '{{.DockerRootDir}} {{.CgroupDriver}} {{.Driver}}']);
    expect(info.stdout.trim()).toBe(`${d.dataRoot} cgroupfs overlay2`);
  });

  it('loads busybox and runs it', async () => {
    const load = await d.docker(['load', '-i', join(FIXTURES, 'busybox.docker.tar')]);
    expect(load.code, load.stderr).toBe(0);
    expect(load.stdout).toContain(BUSYBOX);
    const r = await d.docker(['run', '--rm', BUSYBOX, 'echo', 'hi']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('hi\n');
  });

  it('loads the Wasm image', async () => {
    const load = await d.docker(['load', '-i', join(FIXTURES, 'hello-wasm.docker.tar')]);
    expect(load.code, load.stderr).toBe(0);
    expect(load.stdout).toContain('tugboat.local/hello-wasm:latest');
  });

  it('publishes a port on loopback', async () => {
    const r = await d.docker(['run', '-d', '-p', '127.0.0.1:18081:8080', BUSYBOX, 'sh', '-c', 'echo ok > /index.html; exec httpd -f -p 8080 -h /']);
    expect(r.code, r.stderr).toBe(0);
    let body = '';
    let last: unknown;
    for (let i = 0; i < 50 && body === ''; i++) {
      try {
        const res = await fetch('http://127.0.0.1:18081/');
        body = await res.text();
      } catch (e) {
        last = e;
        await sleep(100);
      }
    }
    expect(body, String(last)).toBe('ok\n');
  });

  it('pushes to and pulls from the private registry', async () => {
    const ref = `${reg.host}/smoke/busybox:1`;
    for (const args of [['tag', BUSYBOX, ref], ['push', ref], ['rmi', ref], ['pull', ref]]) {
      const r = await d.docker(args);
      expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    const tags = (await (await fetch(`${reg.url}/v2/smoke/busybox/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).toEqual(['1']);
  });

  it('has the docker containers on its own containerd', async () => {
    const r = await d.containerd.ctr(['namespaces', 'ls', '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toContain('moby');
  });

  it('leaves nothing behind after stop()', async () => {
    const dir = harnessDir(d);
    const regDir = join(reg.root, '..', '..');
    const bridge = `/sys/class/net/${d.bridge}/ifindex`;
    const ifindex = readFileSync(bridge, 'utf8');
    await d.stop();
    await d.stop(); // idempotent
    await reg.stop();
    expect(leftovers(dir)).toEqual({ procs: [], mounts: [], exists: false });
    expect(leftovers(regDir)).toEqual({ procs: [], mounts: [], exists: false });
    // gone, or (another harness running concurrently) a new bridge of the same name
    expect(existsSync(bridge) ? readFileSync(bridge, 'utf8') : 'deleted').not.toBe(ifindex);
  });
});

describe('bare containerd', () => {
  let c: ContainerdHandle;
  beforeAll(async () => {
    c = await startContainerd();
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('lists namespaces and has CRI disabled', async () => {
    const ns = await c.ctr(['namespaces', 'ls']);
    expect(ns.code, ns.stderr).toBe(0);
    expect(ns.stdout).toMatch(/^NAME\s+LABELS/);
    const plugins = await c.ctr(['plugins', 'ls']);
    expect(plugins.code, plugins.stderr).toBe(0);
    expect(plugins.stdout).not.toMatch(/io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/);
  });

  it('runs a task through containerd-shim-runc-v2', async () => {
    const imp = await c.ctr(['-n', 'smoke', 'images', 'import', join(FIXTURES, 'busybox.docker.tar')]);
    expect(imp.code, imp.stderr).toBe(0);
    const r = await c.ctr(['-n', 'smoke', 'run', '--rm', BUSYBOX, 'smoke1', 'echo', 'hi']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('hi\n');
    // a detached one that stop() has to kill
    const bg = await c.ctr(['-n', 'smoke', 'run', '-d', BUSYBOX, 'smoke2', 'sleep', '1000']);
    expect(bg.code, bg.stderr).toBe(0);
  });

  it('leaves nothing behind after stop()', async () => {
    const dir = join(c.root, '..', '..');
    await c.stop();
    await c.stop();
    expect(leftovers(dir)).toEqual({ procs: [], mounts: [], exists: false });
  });
});
