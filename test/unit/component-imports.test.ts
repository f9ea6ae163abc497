// A component's files never go through preview2-shim's filesystem (which joins
// guest paths onto host paths and calls Node's path-based fs APIs): loading
// the shim's filesystem module, its index or its WASIShim (which imports the
// index) fails this file, and a real component's file I/O is served by
// Tugboat's Descriptor. The bundle is checked the same way when it is built
// (scripts/bundle-host.mjs).
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { COMPONENT_ENTRY, ensureTranspiled } from '../../src/linux-runtime/component-cache.js';
import { runCommandInstance } from '../../src/wasi-host/component-run.js';
import { componentShim, loadComponent } from '../../src/wasi-host/component-shim.js';
import type { GuestConfig } from '../../src/wasi-host/guest-config.js';
import { Descriptor } from '../../src/wasi-host/p2/index.js';

const { refuse } = vi.hoisted(() => ({
  refuse: (what: string) => () => {
    throw new Error(`${what} was loaded: a component's files must not go through preview2-shim's filesystem`);
  },
}));
vi.mock('@bytecodealliance/preview2-shim', refuse("preview2-shim's index"));
vi.mock('@bytecodealliance/preview2-shim/filesystem', refuse("preview2-shim's filesystem"));
vi.mock('@bytecodealliance/preview2-shim/instantiation', refuse("preview2-shim's WASIShim"));

const FILEIO = join(import.meta.dirname, '..', '..', 'examples', 'components', 'out', 'fileio.wasm');

describe('a component\'s import object', () => {
  let dir: string;
  let root: string;
  let entry: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tugboat-cimp-'));
    root = join(dir, 'root');
    entry = (await ensureTranspiled(FILEIO, join(dir, 'cache'))).dir;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves wasi:filesystem with Tugboat\'s own types', () => {
    const imports = componentShim({ args: ['x'], env: [], root: dir }).getImportObject();
    const types = imports['wasi:filesystem/types'] as { Descriptor: unknown };
    expect(types.Descriptor).toBe(Descriptor);
    const dirs = (imports['wasi:filesystem/preopens'] as { getDirectories(): Array<[unknown, string]> }).getDirectories();
    expect(dirs.map(([d, name]) => [d instanceof Descriptor, name])).toEqual([[true, '/']]);
  });

  it('runs a real component\'s file I/O through Tugboat\'s Descriptor', async () => {
    mkdirSync(root);
    const openAt = vi.spyOn(Descriptor.prototype, 'openAt');
    const config: GuestConfig = { args: ['/fileio.wasm', 'append', '/note.txt', 'through our host'], env: [], root, cwd: '/', component: { dir: entry, entry: COMPONENT_ENTRY, world: 'command' } };
    const outcome = await runCommandInstance(await loadComponent(config, componentShim(config).getImportObject()));
    expect(outcome).toEqual({ kind: 'exit', code: 0 });
    expect(readFileSync(join(root, 'note.txt'), 'utf8')).toBe('through our host\n');
    expect(openAt).toHaveBeenCalled();
    openAt.mockRestore();
  });
});
