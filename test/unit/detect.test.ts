import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectWorkload, findEntrypoint } from '../../src/oci/detect.js';

const MODULE = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
const COMPONENT = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);
const ELF = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);

describe('detectWorkload', () => {
  let root: string;
  let outside: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'detect-'));
    outside = mkdtempSync(join(tmpdir(), 'detect-outside-'));
    mkdirSync(join(root, 'bin'));
    writeFileSync(join(root, 'app.wasm'), MODULE);
    writeFileSync(join(root, 'comp.wasm'), COMPONENT);
    writeFileSync(join(root, 'bin', 'tool'), MODULE);
    writeFileSync(join(root, 'bin', 'busybox'), ELF);
    writeFileSync(join(root, 'bin', 'script'), '#!/bin/sh\n');
    writeFileSync(join(outside, 'evil'), MODULE);
    symlinkSync(join(outside, 'evil'), join(root, 'bin', 'hostlink'));
    symlinkSync('/app.wasm', join(root, 'bin', 'inlink'));
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('honours crun annotations', () => {
    expect(detectWorkload({ args: ['/x'], env: [], annotations: { 'run.oci.handler': 'wasm' } }).kind).toBe('wasm-module');
    expect(detectWorkload({ args: ['/x'], env: [], annotations: { 'module.wasm.image/variant': 'compat' } }).reason).toMatch(/module\.wasm\.image\/variant=compat/);
  });

  it('applies -smart annotations only to .wasm/.wat entrypoints', () => {
    expect(detectWorkload({ args: ['/x.wasm'], env: [], annotations: { 'run.oci.handler': 'wasm-smart' } }).kind).toBe('wasm-module');
    expect(detectWorkload({ args: ['/bin/sh'], env: [], annotations: { 'module.wasm.image/variant': 'compat-smart' } }).kind).toBe('linux');
  });

  it('never treats a pod sandbox as Wasm', () => {
    const w = detectWorkload({ args: ['/pause'], env: [], annotations: { 'io.kubernetes.cri.container-type': 'sandbox', 'run.oci.handler': 'wasm' } });
    expect(w).toEqual({ kind: 'linux', reason: 'pod sandbox container' });
  });

  it.each([
    [{ os: 'wasi', architecture: 'wasm' }],
    [{ os: 'wasip1', architecture: 'wasm' }],
    [{ os: 'wasip2', architecture: 'wasm' }],
    [{ os: 'wasi', architecture: 'wasm32' }],
  ])('detects a Wasm image platform %j', (platform) => {
    expect(detectWorkload({ args: ['/x'], env: [], image: { platform } }).kind).toBe('wasm-module');
  });

  it('detects an OCI Wasm artifact layer', () => {
    expect(detectWorkload({ args: [], env: [], image: { platform: { os: 'linux', architecture: 'amd64' }, wasmLayer: true } }).reason).toMatch(/artifact/);
  });

  it('sniffs the entrypoint bytes', () => {
    expect(detectWorkload({ args: ['/app.wasm'], env: [], rootfs: root })).toMatchObject({ kind: 'wasm-module', entrypoint: '/app.wasm' });
    expect(detectWorkload({ args: ['/comp.wasm'], env: [], rootfs: root }).kind).toBe('wasm-component');
    expect(detectWorkload({ args: ['tool'], env: ['PATH=/bin'], rootfs: root })).toMatchObject({ kind: 'wasm-module', entrypoint: '/bin/tool' });
    expect(detectWorkload({ args: ['busybox'], env: ['PATH=/bin'], rootfs: root }).reason).toMatch(/ELF/);
    expect(detectWorkload({ args: ['/bin/script'], env: [], rootfs: root }).reason).toMatch(/script/);
  });

  it('resolves links inside the root only', () => {
    expect(detectWorkload({ args: ['/bin/inlink'], env: [], rootfs: root }).kind).toBe('wasm-module');
    // The host file the link names is a module, but inside the root the path does not exist.
    expect(detectWorkload({ args: ['/bin/hostlink'], env: [], rootfs: root })).toEqual({ kind: 'linux', reason: 'no Wasm marker found' });
  });

  it('falls back to linux', () => {
    expect(detectWorkload({ args: ['/missing'], env: [], rootfs: root }).kind).toBe('linux');
    expect(detectWorkload({ args: [], env: [] }).kind).toBe('linux');
  });

  it('resolves the entrypoint once, for every rule, against the working directory', () => {
    // Decided by annotation or platform, the module is still located (and told from a component).
    expect(detectWorkload({ args: ['tool'], env: ['PATH=/bin'], rootfs: root, annotations: { 'run.oci.handler': 'wasm' } })).toEqual({ kind: 'wasm-module', reason: 'annotation run.oci.handler=wasm', entrypoint: '/bin/tool' });
    expect(detectWorkload({ args: ['/comp.wasm'], env: [], rootfs: root, image: { platform: { os: 'wasi', architecture: 'wasm' } } }).kind).toBe('wasm-component');
    expect(detectWorkload({ args: ['./tool'], env: [], cwd: '/bin', rootfs: root })).toMatchObject({ kind: 'wasm-module', entrypoint: '/bin/tool' });
    expect(detectWorkload({ args: ['busybox'], env: [], rootfs: root })).toMatchObject({ kind: 'linux', entrypoint: '/bin/busybox' });
  });

  it('finds entrypoints through PATH like execvp', () => {
    expect(findEntrypoint(root, 'busybox', ['PATH=/nowhere:/bin'])).toBe('/bin/busybox');
    expect(findEntrypoint(root, 'nothing', ['PATH=/bin'])).toBeUndefined();
  });
});
