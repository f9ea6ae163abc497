// The default seccomp profile and Docker's profile format, turned into
// linux.seccomp as dockerd does it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { defaultSpec, type Spec } from '../../src/oci/runtime-spec.js';
import { callGoesOn, loadSeccompProfile, parseSecurityOpt, seccompForSpec, WASM_HOST_SECCOMP, withSeccomp, withWasmHostSeccomp, type LinuxSeccomp } from '../../src/oci/seccomp.js';
import { DOCKER_DEFAULT_SECCOMP } from '../../src/oci/seccomp-default.js';
import { wasmHostProfileText } from '../../src/cli/seccomp-profile.js';

const X64 = { arch: 'x64', kernel: '6.1.0-18-amd64' };
const ARM64 = { arch: 'arm64', kernel: '5.10.0' };

function rulesFor(seccomp: LinuxSeccomp, name: string) {
  return (seccomp.syscalls ?? []).filter((r) => r.names.includes(name));
}

function withCaps(caps: string[]): Spec {
  const spec = defaultSpec();
  return { ...spec, process: { ...spec.process!, capabilities: { bounding: caps, effective: caps, permitted: caps } } };
}

describe('default profile', () => {
  const spec = defaultSpec();
  const s = seccompForSpec(DOCKER_DEFAULT_SECCOMP, spec, X64);

  it('denies by default with EPERM, for the native architecture and its sub-architectures', () => {
    expect(s.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(s.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(seccompForSpec(DOCKER_DEFAULT_SECCOMP, spec, ARM64).architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  });

  it('allows what a container needs, including what Node and the WASI host use', () => {
    for (const name of ['read', 'openat', 'openat2', 'epoll_pwait', 'io_uring_setup', 'mmap', 'mprotect', 'futex', 'clock_nanosleep', 'statx', 'getrandom', 'rseq']) {
      expect(rulesFor(s, name).some((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args), name).toBe(true);
    }
    expect(rulesFor(s, 'arch_prctl')).toHaveLength(1);
    expect(rulesFor(seccompForSpec(DOCKER_DEFAULT_SECCOMP, spec, ARM64), 'arch_prctl')).toHaveLength(0);
  });

  it('without CAP_SYS_ADMIN: no unshare, no mount, clone only without namespace flags, clone3 says ENOSYS', () => {
    expect(spec.process?.capabilities?.bounding).not.toContain('CAP_SYS_ADMIN');
    for (const name of ['unshare', 'mount', 'umount2', 'setns', 'bpf', 'init_module', 'kexec_load', 'open_by_handle_at']) expect(rulesFor(s, name), name).toEqual([]);
    expect(rulesFor(s, 'clone')).toEqual([{ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }] }]);
    expect(rulesFor(s, 'clone3')).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
    expect(rulesFor(s, 'personality').map((r) => r.args?.[0]?.value)).toEqual([0, 8, 131072, 131080, 4294967295]);
  });

  it('with CAP_SYS_ADMIN (and others): their groups are allowed, the clone filters dropped', () => {
    const admin = seccompForSpec(DOCKER_DEFAULT_SECCOMP, withCaps(['CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_SYS_TIME']), X64);
    expect(rulesFor(admin, 'unshare')).toHaveLength(1);
    expect(rulesFor(admin, 'clone')).toEqual([expect.objectContaining({ action: 'SCMP_ACT_ALLOW' })]);
    expect(rulesFor(admin, 'clone')[0]!.args).toBeUndefined();
    expect(rulesFor(admin, 'clone3').map((r) => r.action)).toEqual(['SCMP_ACT_ALLOW']);
    expect(rulesFor(admin, 'process_vm_readv')).toHaveLength(1);
    expect(rulesFor(admin, 'settimeofday')).toHaveLength(1);
  });

  it('honours minKernel', () => {
    expect(rulesFor(seccompForSpec(DOCKER_DEFAULT_SECCOMP, spec, { arch: 'x64', kernel: '4.9.0' }), 'ptrace')).toHaveLength(1);
    expect(rulesFor(seccompForSpec(DOCKER_DEFAULT_SECCOMP, spec, { arch: 'x64', kernel: '4.4.0' }), 'ptrace')).toHaveLength(0);
  });
});

describe("the profile of Tugboat's own Wasm host", () => {
  it("is Docker's default and userfaultfd with UFFD_USER_MODE_ONLY in its flags, nothing else", () => {
    const spec = defaultSpec();
    const docker = seccompForSpec(DOCKER_DEFAULT_SECCOMP, spec, X64);
    const host = seccompForSpec(WASM_HOST_SECCOMP, spec, X64);
    expect(rulesFor(docker, 'userfaultfd')).toEqual([]);
    expect(host.syscalls!.slice(0, -1)).toEqual(docker.syscalls);
    expect(host.syscalls!.at(-1)).toEqual({ names: ['userfaultfd'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, valueTwo: 1, op: 'SCMP_CMP_MASKED_EQ' }] });
    expect(withWasmHostSeccomp(spec, X64).linux?.seccomp).toEqual(host);
  });
});

describe('whether a system call lets a process go on under a filter (no kill, no trap)', () => {
  it('says yes without a filter, and where the call runs or fails with an errno', () => {
    expect(callGoesOn(undefined, 'userfaultfd')).toBe(true);
    expect(callGoesOn(seccompForSpec(DOCKER_DEFAULT_SECCOMP, defaultSpec(), X64), 'userfaultfd')).toBe(true);
    expect(callGoesOn(seccompForSpec(WASM_HOST_SECCOMP, defaultSpec(), X64), 'userfaultfd')).toBe(true);
    expect(callGoesOn({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['userfaultfd'], action: 'SCMP_ACT_ERRNO' }] }, 'userfaultfd')).toBe(true);
  });

  it('says no where the default or a rule naming it kills, traps or hands it to someone else, or the filter is not understood', () => {
    expect(callGoesOn({ defaultAction: 'SCMP_ACT_KILL_PROCESS', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] }, 'userfaultfd')).toBe(false);
    expect(callGoesOn({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['userfaultfd'], action: 'SCMP_ACT_TRAP' }] }, 'userfaultfd')).toBe(false);
    expect(callGoesOn({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['userfaultfd'], action: 'SCMP_ACT_NOTIFY' }] }, 'userfaultfd')).toBe(false);
    expect(callGoesOn({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: 'all' }, 'userfaultfd')).toBe(false);
    expect(callGoesOn('strict', 'userfaultfd')).toBe(false);
  });
});

describe('--security-opt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tugboat-seccomp-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('puts the default profile in the spec, or none when unconfined, and keeps no_new_privileges', () => {
    const spec = defaultSpec();
    const confined = withSeccomp(spec, parseSecurityOpt([]), X64);
    expect((confined.linux?.seccomp as LinuxSeccomp).defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(confined.process?.noNewPrivileges).toBe(true);
    const open = withSeccomp({ ...spec, linux: { ...spec.linux, seccomp: { defaultAction: 'x' } } }, parseSecurityOpt(['seccomp=unconfined']), X64);
    expect(open.linux?.seccomp).toBeUndefined();
    expect(parseSecurityOpt(['no-new-privileges', 'no-new-privileges:true', 'seccomp:unconfined'])).toEqual({ kind: 'unconfined' });
  });

  it('reads a profile file in Docker\'s format', () => {
    const file = join(dir, 'p.json');
    writeFileSync(file, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 13, includes: { arches: ['amd64'] } }, { name: 'chmod', action: 'SCMP_ACT_ERRNO' }] }));
    const s = withSeccomp(defaultSpec(), parseSecurityOpt([`seccomp=${file}`]), X64).linux?.seccomp as LinuxSeccomp;
    expect(s).toEqual({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }, { names: ['chmod'], action: 'SCMP_ACT_ERRNO' }] });
  });

  it.each([
    ['{"defaultAction": ', /invalid JSON: unexpected end of input/],
    ['[]', /not a JSON object/],
    ['{"defaultAction": "ALLOW"}', /defaultAction must be an SCMP_ACT_\* action/],
    ['{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}', /syscalls\[0\]: names must be a non-empty array/],
    ['{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}', /either architectures or archMap/],
  ])('refuses a bad profile %j with one clear line', (text, message) => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, text);
    expect(() => loadSeccompProfile(file)).toThrow(UsageError);
    expect(() => loadSeccompProfile(file)).toThrow(message);
  });

  it('refuses unknown options and missing files', () => {
    expect(() => parseSecurityOpt(['apparmor=x'])).toThrow(/--security-opt: unsupported option "apparmor=x"/);
    expect(() => parseSecurityOpt(['seccomp='])).toThrow(UsageError);
    expect(() => parseSecurityOpt([`seccomp=${join(dir, 'missing.json')}`])).toThrow(/cannot read the profile: ENOENT/);
  });
});

describe('tugboat seccomp-profile', () => {
  it("prints the Wasm host's profile in Docker's format, which `--security-opt seccomp=FILE` reads back unchanged", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tugboat-seccomp-profile-'));
    try {
      const file = join(dir, 'wasm-host.json');
      writeFileSync(file, wasmHostProfileText('docker'));
      const read = loadSeccompProfile(file);
      expect(read).toEqual(WASM_HOST_SECCOMP);
      // Its conditional rules are kept for the daemon: one a container with CAP_SYS_ADMIN gets.
      expect(read.syscalls!.some((r) => r.includes?.caps?.includes('CAP_SYS_ADMIN'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it("prints it as the runtime spec's linux.seccomp, resolved as for `tugboat run`'s Wasm host with the default capabilities", () => {
    const oci = JSON.parse(wasmHostProfileText('oci', X64)) as LinuxSeccomp;
    expect(oci).toEqual(withWasmHostSeccomp(defaultSpec(), X64).linux!.seccomp);
    expect(oci.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(callGoesOn(oci, 'userfaultfd')).toBe(true);
    expect(rulesFor(oci, 'userfaultfd')).toEqual([{ names: ['userfaultfd'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, valueTwo: 1, op: 'SCMP_CMP_MASKED_EQ' }] }]);
    // No rule that needs a capability beyond the default set: containerd applies every rule as it reads it.
    for (const name of ['mount', 'unshare', 'setns', 'bpf', 'init_module']) expect(rulesFor(oci, name), name).toEqual([]);
  });
});
