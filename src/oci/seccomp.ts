// Seccomp for `tugboat run` containers: Docker's default profile unless the
// user asks for another (`--security-opt seccomp=FILE`, Docker's profile
// format) or none (`seccomp=unconfined`). A profile is turned into the
// runtime spec's linux.seccomp the way dockerd does it (profiles/seccomp
// setupSeccomp): the native architecture and its sub-architectures from
// archMap; rules kept or dropped by their includes/excludes on capabilities
// (the spec's bounding set), architectures and the host kernel's version.
// Under the default profile a container without CAP_SYS_ADMIN cannot create
// namespaces (unshare, clone with CLONE_NEW*: `unshare -U -r` fails), mount,
// load modules, or use the other calls Docker denies.
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { UsageError } from '../errors.js';
import { parseJsonText } from '../json-text.js';
import type { Spec } from './runtime-spec.js';
import { DOCKER_DEFAULT_SECCOMP } from './seccomp-default.js';

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface SeccompFilter {
  caps?: string[];
  arches?: string[];
  /** "<kernel>.<major>", e.g. "4.8". */
  minKernel?: string;
}

export interface DockerSyscallRule {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[] | null;
  comment?: string;
  includes?: SeccompFilter;
  excludes?: SeccompFilter;
}

export interface DockerSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures?: string[] | null }[];
  syscalls?: DockerSyscallRule[];
}

/** linux.seccomp of the OCI runtime spec. */
export interface LinuxSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  syscalls?: { names: string[]; action: string; errnoRet?: number; args?: SeccompArg[] }[];
}

export type SeccompChoice = { kind: 'default' } | { kind: 'unconfined' } | { kind: 'profile'; profile: DockerSeccompProfile; source: string };

/** Node's process.arch → the architecture names profiles use in includes/excludes (Go's, as libseccomp spells them). */
const NATIVE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: 'x86', arm: 'arm', s390x: 's390x', ppc64: 'ppc64le', mips: 'mips', mipsel: 'mipsel' };
/** … → the SCMP_ARCH_* of archMap. */
const SECCOMP_ARCH: Record<string, string> = {
  amd64: 'SCMP_ARCH_X86_64',
  arm64: 'SCMP_ARCH_AARCH64',
  x86: 'SCMP_ARCH_X86',
  arm: 'SCMP_ARCH_ARM',
  s390x: 'SCMP_ARCH_S390X',
  ppc64le: 'SCMP_ARCH_PPC64LE',
  mips: 'SCMP_ARCH_MIPS',
  mipsel: 'SCMP_ARCH_MIPSEL',
};

export interface HostFacts {
  /** Node's process.arch. */
  arch: string;
  /** os.release(), e.g. "6.1.0-18-amd64". */
  kernel: string;
}

function kernelAtLeast(kernel: string, min: string): boolean {
  const [k = 0, m = 0] = kernel.split(/[.-]/).map(Number);
  const [wk = 0, wm = 0] = min.split('.').map(Number);
  return k > wk || (k === wk && m >= wm);
}

function applies(rule: DockerSyscallRule, arch: string, caps: readonly string[], kernel: string): boolean {
  const inc = rule.includes ?? {};
  const exc = rule.excludes ?? {};
  if (exc.arches?.includes(arch)) return false;
  if (exc.caps?.some((c) => caps.includes(c))) return false;
  if (exc.minKernel && kernelAtLeast(kernel, exc.minKernel)) return false;
  if (inc.arches?.length && !inc.arches.includes(arch)) return false;
  if (inc.caps?.length && !inc.caps.every((c) => caps.includes(c))) return false;
  if (inc.minKernel && !kernelAtLeast(kernel, inc.minKernel)) return false;
  return true;
}

/** The spec's linux.seccomp for `profile`, given the container's capabilities. */
export function seccompForSpec(profile: DockerSeccompProfile, spec: Spec, host: HostFacts = { arch: process.arch, kernel: release() }): LinuxSeccomp {
  const arch = NATIVE_ARCH[host.arch] ?? host.arch;
  const caps = spec.process?.capabilities?.bounding ?? [];
  const out: LinuxSeccomp = { defaultAction: profile.defaultAction };
  if (profile.defaultErrnoRet !== undefined) out.defaultErrnoRet = profile.defaultErrnoRet;
  if (profile.architectures?.length) out.architectures = [...profile.architectures];
  const native = SECCOMP_ARCH[arch];
  const mapped = profile.archMap?.find((a) => a.architecture === native);
  if (mapped) out.architectures = [mapped.architecture, ...(mapped.subArchitectures ?? [])];
  out.syscalls = (profile.syscalls ?? [])
    .filter((rule) => applies(rule, arch, caps, host.kernel))
    .map((rule) => ({
      names: rule.names ?? (rule.name ? [rule.name] : []),
      action: rule.action,
      ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
      ...(rule.args?.length ? { args: rule.args.map((a) => ({ ...a })) } : {}),
    }));
  return out;
}

const ACTION = /^SCMP_ACT_[A-Z_]+$/;

/** A profile from a file, in Docker's format; every problem is one UsageError naming the file. */
export function loadSeccompProfile(file: string): DockerSeccompProfile {
  const what = `--security-opt seccomp=${file}`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${what}: cannot read the profile: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const v = parseJsonText(text, what, (m) => new UsageError(m)) as Partial<DockerSeccompProfile> | null;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`${what}: not a JSON object`);
  if (typeof v.defaultAction !== 'string' || !ACTION.test(v.defaultAction)) throw new UsageError(`${what}: defaultAction must be an SCMP_ACT_* action`);
  if (v.architectures?.length && v.archMap?.length) throw new UsageError(`${what}: give either architectures or archMap, not both`);
  if (v.syscalls !== undefined && !Array.isArray(v.syscalls)) throw new UsageError(`${what}: syscalls must be an array`);
  for (const [i, rule] of (v.syscalls ?? []).entries()) {
    const at = `${what}: syscalls[${i}]`;
    if (typeof rule !== 'object' || rule === null) throw new UsageError(`${at}: not an object`);
    if (typeof rule.action !== 'string' || !ACTION.test(rule.action)) throw new UsageError(`${at}: action must be an SCMP_ACT_* action`);
    if (rule.name !== undefined && rule.names !== undefined) throw new UsageError(`${at}: give either name or names, not both`);
    const names = rule.names ?? (rule.name !== undefined ? [rule.name] : undefined);
    if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string' && /^[a-z0-9_]+$/.test(n))) {
      throw new UsageError(`${at}: names must be a non-empty array of system call names`);
    }
  }
  return v as DockerSeccompProfile;
}

/** `--security-opt` values: seccomp=unconfined|FILE, and no-new-privileges[:true] (always on). */
export function parseSecurityOpt(values: readonly string[]): SeccompChoice {
  let choice: SeccompChoice = { kind: 'default' };
  for (const value of values) {
    const [key, ...rest] = value.split(/[=:]/);
    const arg = value.slice((key ?? '').length + 1);
    if (key === 'seccomp' && rest.length > 0 && arg !== '') {
      choice = arg === 'unconfined' ? { kind: 'unconfined' } : { kind: 'profile', profile: loadSeccompProfile(arg), source: arg };
    } else if (key === 'no-new-privileges' && (rest.length === 0 || arg === 'true')) {
      // Tugboat containers always run with no_new_privs.
    } else {
      throw new UsageError(`--security-opt: unsupported option ${JSON.stringify(value)} (seccomp=unconfined, seccomp=FILE, no-new-privileges)`);
    }
  }
  return choice;
}

/** userfaultfd's flags (its first argument) with UFFD_USER_MODE_ONLY set. */
const UFFD_USER_MODE_ONLY = 1;

/**
 * The profile Tugboat gives its own Wasm host where it picks one (a pod
 * host; `tugboat run`'s default for a Wasm container): Docker's default,
 * and userfaultfd for faults in user mode only.
 *
 * Why: resets of large guest memories ask the kernel which pages were
 * written (src/wasi-host/http/written-pages.ts), through userfaultfd's
 * asynchronous write-protect. Docker refuses userfaultfd because a handler
 * can hold a kernel-mode fault open and widen a race in the kernel; with
 * UFFD_USER_MODE_ONLY the kernel never waits on one for its own accesses
 * (the reason Linux 5.11 lets unprivileged processes have it even with
 * vm.unprivileged_userfaultfd=0), and the rule allows nothing else. The
 * guest is Wasm and makes no system calls of its own. A profile that a
 * user or an orchestrator gives is kept as given.
 */
export const WASM_HOST_SECCOMP: DockerSeccompProfile = {
  ...DOCKER_DEFAULT_SECCOMP,
  syscalls: [
    ...(DOCKER_DEFAULT_SECCOMP.syscalls ?? []),
    { names: ['userfaultfd'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: UFFD_USER_MODE_ONLY, valueTwo: UFFD_USER_MODE_ONLY, op: 'SCMP_CMP_MASKED_EQ' }] },
  ],
};

/** Actions after which a process goes on: the call runs, or fails with an errno. */
const GOES_ON = new Set(['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_LOG']);

/**
 * May a process under `seccomp` (a spec's linux.seccomp, as given) make
 * system call `name` without being killed or trapped for it: no filter, or
 * every rule that names it and the default let it run or fail with an
 * errno? Anything not understood counts as no.
 */
export function callGoesOn(seccomp: unknown, name: string): boolean {
  if (seccomp === undefined || seccomp === null) return true;
  if (typeof seccomp !== 'object') return false;
  const s = seccomp as { defaultAction?: unknown; syscalls?: unknown };
  if (typeof s.defaultAction !== 'string' || !GOES_ON.has(s.defaultAction)) return false;
  if (s.syscalls === undefined) return true;
  if (!Array.isArray(s.syscalls)) return false;
  for (const rule of s.syscalls as { names?: unknown; action?: unknown }[]) {
    if (!Array.isArray(rule?.names) || !rule.names.includes(name)) continue;
    if (typeof rule.action !== 'string' || !GOES_ON.has(rule.action)) return false;
  }
  return true;
}

/** The spec with its seccomp filter set as chosen (the default profile unless told otherwise). */
export function withSeccomp(spec: Spec, choice: SeccompChoice = { kind: 'default' }, host?: HostFacts): Spec {
  const linux = { ...spec.linux };
  if (choice.kind === 'unconfined') delete linux.seccomp;
  else linux.seccomp = seccompForSpec(choice.kind === 'default' ? DOCKER_DEFAULT_SECCOMP : choice.profile, spec, host);
  return { ...spec, linux };
}

/** The spec with the filter of Tugboat's own Wasm host (WASM_HOST_SECCOMP), where Tugboat picks the profile. */
export function withWasmHostSeccomp(spec: Spec, host?: HostFacts): Spec {
  return withSeccomp(spec, { kind: 'profile', profile: WASM_HOST_SECCOMP, source: 'WASM_HOST_SECCOMP' }, host);
}
