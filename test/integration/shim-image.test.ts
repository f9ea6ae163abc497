// containerd-shim-tugboat-v1 detects the workload with image facts from
// containerd's own API (architecture.md, Detection rules 2–3): container →
// image → manifest → config platform, read from the content store. The
// reason the shim records ("workload detected", in containerd's log, which
// relays the shim's) shows which rule decided. A private containerd and a
// non-default namespace (the API calls must carry it); all torn down after.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatPlatform, hostPlatform } from '../../src/oci/platform.js';
import { startContainerd, type ContainerdHandle } from './daemons/containerd.js';
import { sleep } from './daemons/process.js';
import { EXAMPLES, FIXTURES, REPO } from './helpers.js';

const RT = 'io.containerd.tugboat.v1';
const NS = 'tb-image';
const BUSYBOX = 'tugboat.local/busybox:latest';
/** the fixtures' busybox is built for the host */
const HOST = hostPlatform();

interface Detected {
  id: string;
  workload: { kind: string; reason: string };
  image?: { name: string; platform: { os: string; architecture: string }; wasmLayer: boolean };
}

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))('shim: workload detection with image facts from containerd', () => {
  let c: ContainerdHandle | undefined;
  let tmp: string;
  const savedRoot = process.env.TUGBOAT_ROOT;

  const ctr = (args: string[]) => c!.ctr(['-n', NS, ...args]);
  const run = (id: string, image: string, args: string[] = [], opts: string[] = []) => ctr(['run', '--rm', '--runtime', RT, ...opts, image, id, ...args]);

  /** The shim's "workload detected" record for `id` (bounded by attempts, not time). */
  async function detected(id: string): Promise<Detected> {
    for (let i = 0; i < 50; i++) {
      for (const line of c!.logs().split('\n')) {
        if (!line.includes('"msg":"workload detected"') || !line.includes(`"id":"${id}"`)) continue;
        const json = line.slice(line.indexOf('{'), line.lastIndexOf('}') + 1);
        return JSON.parse(json) as Detected;
      }
      await sleep(100);
    }
    throw new Error(`no "workload detected" record for ${id} in containerd's log`);
  }

  beforeAll(async () => {
    tmp = mkdtempSync('/tmp/tugboat-shim-image-');
    process.env.TUGBOAT_ROOT = join(tmp, 'root');
    c = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
    const importLayout = async (layout: string, base: string) => {
      const tar = join(tmp, `${base.replace(/\W/g, '_')}.tar`);
      execFileSync('tar', ['-C', layout, '-cf', tar, '.']);
      return ctr(['images', 'import', '--all-platforms', '--base-name', base, tar]);
    };
    const w = await importLayout(join(FIXTURES, 'wasm'), 'tugboat.local/wasm');
    if (w.code !== 0) throw new Error(`import wasm: ${w.stderr}`);
    const m = await importLayout(join(FIXTURES, 'mixed'), 'tugboat.local/mixed');
    if (m.code !== 0) throw new Error(`import mixed: ${m.stderr}`);
    const b = await ctr(['images', 'import', join(FIXTURES, 'busybox.docker.tar')]);
    if (b.code !== 0) throw new Error(`import busybox: ${b.stderr}`);
  });

  afterAll(async () => {
    try {
      if (c) {
        const tasks = await ctr(['tasks', 'ls', '-q']);
        for (const id of tasks.stdout.split('\n').filter(Boolean)) await ctr(['tasks', 'delete', '--force', id]);
        const cs = await ctr(['containers', 'ls', '-q']);
        for (const id of cs.stdout.split('\n').filter(Boolean)) await ctr(['containers', 'rm', id]);
        await c.stop();
      }
    } finally {
      if (savedRoot === undefined) delete process.env.TUGBOAT_ROOT;
      else process.env.TUGBOAT_ROOT = savedRoot;
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('a wasi/wasm image is Wasm by its image platform (rule 2 decides before the entrypoint bytes)', async () => {
    const r = await run('img-wasm', 'tugboat.local/wasm:hello', ['/hello.wasm', 'x'], ['--platform', 'wasi/wasm']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^hello from wasm\nargs: \S*hello\.wasm x\n/);
    const d = await detected('img-wasm');
    expect(d.workload).toEqual({ kind: 'wasm-module', reason: 'image platform wasi/wasm' });
    expect(d.image).toEqual({ name: 'tugboat.local/wasm:hello', platform: { os: 'wasi', architecture: 'wasm' }, wasmLayer: false });
  });

  it('a linux busybox image: Linux, with its linux platform known from containerd', async () => {
    const r = await run('img-linux', BUSYBOX, ['sh', '-c', 'echo linux']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('linux\n');
    const d = await detected('img-linux');
    expect(d.workload.kind).toBe('linux');
    expect(d.image?.name).toBe(BUSYBOX);
    expect(d.image?.platform).toMatchObject({ os: HOST.os, architecture: HOST.architecture });
    expect(d.image?.wasmLayer).toBe(false);
  });

  it("an index with Wasm and Linux manifests: the manifest the container's snapshot was made from decides", async () => {
    // containerd does not record the platform a container was made for; the
    // parent of its snapshot (Snapshots/Stat) is the chain ID of one manifest's layers.
    const l = await run('img-mixed-l', 'tugboat.local/mixed:app', ['sh', '-c', 'echo native'], ['--platform', formatPlatform(HOST)]);
    expect(l.code, l.stderr).toBe(0);
    expect(l.stdout).toBe('native\n');
    const dl = await detected('img-mixed-l');
    expect(dl.workload).toEqual({ kind: 'linux', reason: 'entrypoint /bin/sh is an ELF binary' });
    expect(dl.image?.platform).toMatchObject({ os: HOST.os, architecture: HOST.architecture });

    const w = await run('img-mixed-w', 'tugboat.local/mixed:app', [], ['--platform', 'wasi/wasm']);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toMatch(/^hello from wasm\n/);
    const dw = await detected('img-mixed-w');
    expect(dw.workload).toEqual({ kind: 'wasm-module', reason: 'image platform wasi/wasm' });
    expect(dw.image?.name).toBe('tugboat.local/mixed:app');
  });

  it("crun's annotations decide first (rule 1), for manifests written for crun", async () => {
    // A module renamed without .wasm, in a bare rootfs: only the annotation says Wasm.
    const rootfs = join(tmp, 'annot-rootfs');
    mkdirSync(rootfs);
    copyFileSync(join(EXAMPLES, 'hello.wasm'), join(rootfs, 'app'));
    const r = await ctr(['run', '--rm', '--runtime', RT, '--annotation', 'run.oci.handler=wasm', '--rootfs', rootfs, 'img-annot', '/app']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^hello from wasm\n/);
    expect((await detected('img-annot')).workload).toEqual({ kind: 'wasm-module', reason: 'annotation run.oci.handler=wasm' });
    // compat-smart applies only to .wasm entrypoints: a busybox sidecar in the same pod stays Linux.
    const b = await run('img-smart', BUSYBOX, ['sh', '-c', 'echo sidecar'], ['--annotation', 'module.wasm.image/variant=compat-smart']);
    expect(b.stdout).toBe('sidecar\n');
    expect((await detected('img-smart')).workload.kind).toBe('linux');
  });

  it('a container without an image (--rootfs) falls back to the entrypoint bytes', async () => {
    const rootfs = join(tmp, 'bare-rootfs');
    mkdirSync(rootfs);
    copyFileSync(join(EXAMPLES, 'hello.wasm'), join(rootfs, 'hello.wasm'));
    const r = await ctr(['run', '--rm', '--runtime', RT, '--rootfs', rootfs, 'img-bare', '/hello.wasm']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^hello from wasm\n/);
    const d = await detected('img-bare');
    expect(d.workload.reason).toBe('entrypoint /hello.wasm is a Wasm module');
    expect(d.image).toBeUndefined();
  });

  it('containerd 1.6 refuses a CNCF Wasm artifact before any shim sees it (unpack: mismatched rootfs)', async () => {
    // config application/vnd.wasm.config.v0+json has no rootfs.diff_ids and the
    // application/wasm layer is no tar: the content lands in the store, but
    // neither `ctr images import` (unpack) nor `ctr run` can make a snapshot.
    const tar = join(tmp, 'artifact.tar');
    execFileSync('tar', ['-C', join(FIXTURES, 'artifact'), '-cf', tar, '.']);
    const imp = await ctr(['images', 'import', '--all-platforms', '--base-name', 'tugboat.local/artifact', tar]);
    expect(imp.code).not.toBe(0);
    expect(imp.stderr).toContain('mismatched image rootfs and manifest layers');
    const r = await run('img-artifact', 'tugboat.local/artifact:hello');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('mismatched image rootfs and manifest layers');
    expect(c!.logs()).not.toContain('"id":"img-artifact"');
  });
});
