import { describe, expect, it } from 'vitest';
import { decodeGuestConfig } from '../../src/wasi-host/guest-config.js';
import { hostArgv, KIT_MOUNT_POINT, type Kit } from '../../src/linux-runtime/kit.js';
import { exitStatus, runcErrorKind, runcErrorMessage } from '../../src/linux-runtime/runc.js';
import { withMemoryLimit, withNetwork, withVolumes } from '../../src/linux-runtime/spec-edits.js';
import { rewriteSpecForWasm, wasiBackendOf, wasmHostProcess, WASI_BACKEND_ANNOTATION, WORKLOAD_ANNOTATION } from '../../src/linux-runtime/wasm-bundle.js';
import type { Spec } from '../../src/oci/runtime-spec.js';

const kit: Kit = { dir: '/opt/kit', loader: 'lib/ld-linux-x86-64.so.2', node: 'node', host: 'host/host.mjs', nodeVersion: 'v24' };

function baseSpec(): Spec {
  return {
    ociVersion: '1.0.2-dev',
    root: { path: 'rootfs' },
    process: { terminal: false, user: { uid: 1000, gid: 1000 }, args: ['/app.wasm', 'x'], env: ['PATH=/bin', 'NODE_OPTIONS=--inspect'], cwd: '/w' },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: [{ type: 'pid' }, { type: 'network' }], cgroupsPath: '/x' },
    annotations: { keep: 'me' },
  } as Spec;
}

describe('wasm bundle rewrite', () => {
  it('puts tini in front of the host as the init, not in front of an exec; never an inspector', () => {
    const withInit: Kit = { ...kit, init: 'tini' };
    const init = rewriteSpecForWasm(baseSpec(), withInit).process!.args!;
    expect(init.slice(0, 3)).toEqual([`${KIT_MOUNT_POINT}/tini`, '--', `${KIT_MOUNT_POINT}/lib/ld-linux-x86-64.so.2`]);
    expect(init).toContain('--disable-sigusr1');
    const exec = wasmHostProcess(baseSpec().process!, withInit).args!;
    expect(exec[0]).toBe(`${KIT_MOUNT_POINT}/lib/ld-linux-x86-64.so.2`);
    expect(exec).toContain('--disable-sigusr1');
  });

  it('chooses the node:wasi backend only from its annotation, and refuses unknown ones', () => {
    const guestOf = (s: Spec) => decodeGuestConfig(s.process!.env![0]!.slice('TUGBOAT_GUEST='.length));
    expect(wasiBackendOf(baseSpec().annotations)).toBeUndefined();
    expect(guestOf(rewriteSpecForWasm(baseSpec(), kit)).backend).toBeUndefined();
    expect(wasiBackendOf({ [WASI_BACKEND_ANNOTATION]: 'uvwasi' })).toBe('uvwasi');
    expect(guestOf(rewriteSpecForWasm(baseSpec(), kit, { backend: 'uvwasi' })).backend).toBe('uvwasi');
    expect(() => wasiBackendOf({ [WASI_BACKEND_ANNOTATION]: 'wasmtime' })).toThrow(/io.tugboat.wasi=wasmtime: unknown WASI backend/);
  });

  it("lets an HTTP component's host try userfaultfd only where the container's seccomp filter neither kills nor traps it", () => {
    const guestOf = (s: Spec) => decodeGuestConfig(s.process!.env![0]!.slice('TUGBOAT_GUEST='.length));
    const component = { source: '/cache/x', dir: '/.tugboat-component', entry: 'component.mjs', world: 'http' as const };
    const withFilter = (seccomp: unknown): Spec => ({ ...baseSpec(), linux: { ...baseSpec().linux, seccomp } });
    expect(guestOf(rewriteSpecForWasm(baseSpec(), kit, { component })).component?.userfaultfd).toBe(true);
    expect(guestOf(rewriteSpecForWasm(withFilter({ defaultAction: 'SCMP_ACT_ERRNO' }), kit, { component })).component?.userfaultfd).toBe(true);
    expect(guestOf(rewriteSpecForWasm(withFilter({ defaultAction: 'SCMP_ACT_KILL_PROCESS' }), kit, { component })).component?.userfaultfd).toBeUndefined();
    // A command component resets nothing.
    expect(guestOf(rewriteSpecForWasm(baseSpec(), kit, { component: { ...component, world: 'command' } })).component?.userfaultfd).toBeUndefined();
  });

  it('runs the host through the kit loader and keeps everything else', () => {
    const spec = baseSpec();
    const out = rewriteSpecForWasm(spec, kit);
    expect(out.process?.args).toEqual(hostArgv(kit));
    expect(out.process?.args?.[0]).toBe(`${KIT_MOUNT_POINT}/lib/ld-linux-x86-64.so.2`);
    expect(out.process?.user).toEqual({ uid: 1000, gid: 1000 });
    expect(out.process?.cwd).toBe('/w');
    expect(out.linux).toEqual(spec.linux);
    expect(out.mounts?.at(-1)).toEqual({ destination: '/.tugboat', type: 'bind', source: '/opt/kit', options: ['rbind', 'ro', 'nosuid', 'nodev'] });
    expect(out.annotations).toEqual({ keep: 'me', [WORKLOAD_ANNOTATION]: 'wasm-module' });
    // The input is not modified.
    expect(spec.process?.args).toEqual(['/app.wasm', 'x']);
  });

  it('hands the guest its argv and env and gives Node nothing of the user environment', () => {
    const out = rewriteSpecForWasm(baseSpec(), kit);
    expect(out.process?.env).toHaveLength(1);
    const guest = decodeGuestConfig(out.process!.env![0]!.replace(/^TUGBOAT_GUEST=/, ''));
    expect(guest).toEqual({ args: ['/app.wasm', 'x'], env: ['PATH=/bin', 'NODE_OPTIONS=--inspect'], preopens: [{ guest: '/', path: '/' }, { guest: '.', path: '/w' }] });
  });

  it('is idempotent about the kit mount', () => {
    const twice = rewriteSpecForWasm(rewriteSpecForWasm(baseSpec(), kit), kit);
    expect(twice.mounts?.filter((m) => m.destination === '/.tugboat')).toHaveLength(1);
  });
});

describe('spec edits', () => {
  it('sets a memory limit without swap', () => {
    expect(withMemoryLimit(baseSpec(), 1024).linux?.resources?.memory).toEqual({ limit: 1024, swap: 1024 });
  });
  it('host network drops the namespace and binds resolv.conf', () => {
    const s = withNetwork(baseSpec(), 'host', { resolvConf: true, hosts: false });
    expect(s.linux?.namespaces?.map((n) => n.type)).toEqual(['pid']);
    expect(s.mounts?.map((m) => m.destination)).toContain('/etc/resolv.conf');
  });
  it('none network keeps a private namespace', () => {
    const s = withNetwork({ ...baseSpec(), linux: { namespaces: [] } } as Spec, 'none', { resolvConf: true, hosts: true });
    expect(s.linux?.namespaces).toEqual([{ type: 'network' }]);
  });
  it('adds volumes as rbind mounts', () => {
    const s = withVolumes(baseSpec(), [{ source: '/h', destination: '/c', readonly: true }]);
    expect(s.mounts?.at(-1)).toEqual({ destination: '/c', type: 'bind', source: '/h', options: ['rbind', 'rprivate', 'ro'] });
  });
});

describe('runc error messages', () => {
  it('takes the last error message from logrus output', () => {
    const stderr = 'time="2026-01-01T00:00:00Z" level=warning msg="x"\ntime="2026-01-01T00:00:00Z" level=error msg="container \\"a\\" does not exist"\n';
    expect(runcErrorMessage(stderr)).toBe('container "a" does not exist');
  });
  it('falls back to the last line', () => {
    expect(runcErrorMessage('plain failure\n')).toBe('plain failure');
    expect(runcErrorMessage('')).toBe('runc failed without a message');
  });
  it('types what runc says: NotFound, AlreadyExists, else Internal', () => {
    expect(runcErrorKind('container "a" does not exist')).toBe('NotFound');
    expect(runcErrorKind('container with id exists: a')).toBe('Internal');
    expect(runcErrorKind('container "a" already exists')).toBe('AlreadyExists');
    expect(runcErrorKind('exec: "x": executable file not found in $PATH')).toBe('Internal');
  });
  it('turns a signal into a status one way: 128+N', () => {
    expect(exitStatus(3, null)).toBe(3);
    expect(exitStatus(null, 'SIGKILL')).toBe(137);
    expect(exitStatus(null, 'SIGTERM')).toBe(143);
    expect(exitStatus(null, 'SIGINT')).toBe(130);
  });
});
