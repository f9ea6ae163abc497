// Dense hosting through containerd (issue 9): Wasm containers at the `pod`
// and `process` isolation levels, driven by ctr against a private containerd.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, type ContainerdHandle } from './daemons/containerd.js';
import type { ExecResult } from './daemons/process.js';
import { REPO } from './helpers.js';
import { importFixtureImages, removeNamespaceDirs } from './shim-helpers.js';

const RT = 'io.containerd.tugboat.v1';
const NS = `tb-dense-${process.pid}`;
const WASM = (tag: string) => `tugboat.local/wasm:${tag}`;

describe.skipIf(process.getuid?.() !== 0 || !existsSync(join(REPO, 'dist', 'shim.mjs')))('dense hosting through containerd', () => {
  let c: ContainerdHandle | undefined;
  let tmp: string | undefined;
  const savedRoot = process.env.TUGBOAT_ROOT;
  const ctr = (args: string[], timeoutMs?: number): Promise<ExecResult> => c!.ctr(['-n', NS, ...args], timeoutMs === undefined ? {} : { timeoutMs });

  beforeAll(async () => {
    tmp = mkdtempSync('/tmp/tugboat-dense-');
    process.env.TUGBOAT_ROOT = join(tmp, 'root');
    c = await startContainerd({ pathPrepend: [join(REPO, 'bin')] });
    await importFixtureImages(ctr, tmp);
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
      removeNamespaceDirs(NS);
      if (savedRoot === undefined) delete process.env.TUGBOAT_ROOT;
      else process.env.TUGBOAT_ROOT = savedRoot;
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  });

  for (const level of ['process', 'pod'] as const) {
    it(`${level}: runs a module: stdout, stderr, exit status`, async () => {
      const r = await ctr(['run', '--rm', '--runtime', RT, '--platform', 'wasi/wasm', '--annotation', `io.tugboat.isolation=${level}`, WASM('hello'), `hello-${level}`, '/hello.wasm', 'one']);
      console.log(r, c!.logs().split('\n').filter((l) => /error|warn/i.test(l)).slice(-20).join('\n'));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^hello from wasm\nargs: \/hello.wasm one\n/);
      const e = await ctr(['run', '--rm', '--runtime', RT, '--platform', 'wasi/wasm', '--annotation', `io.tugboat.isolation=${level}`, WASM('exitcode'), `exit-${level}`, '/exitcode.wasm', '3']);
      expect(e.code, e.stderr).toBe(3);
    });
  }
});
