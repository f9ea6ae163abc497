// Platform strings and manifest selection. Tugboat is Wasm-first: when the
// caller does not ask for a platform, a Wasm manifest in an index wins over
// the host's native one, because Wasm runs anywhere Tugboat runs.

import { NotFoundError, UsageError } from '../errors.js';
import type { Descriptor, Platform } from './types.js';

const WASI_OSES = new Set(['wasi', 'wasip1', 'wasip2']);
const WASM_ARCHES = new Set(['wasm', 'wasm32']);
// Common non-Go spellings people type (uname -m, Debian arch names).
const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64' };
const PART_RE = /^[a-z0-9][a-z0-9._-]*$/;

export function parsePlatform(s: string): Platform {
  const parts = s.trim().toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => PART_RE.test(p))) {
    throw new UsageError(`invalid platform ${JSON.stringify(s)}: expected os/arch[/variant], e.g. linux/amd64 or wasi/wasm`);
  }
  const [os = '', arch = '', variant] = parts;
  const p: Platform = { os, architecture: ARCH_ALIASES[arch] ?? arch };
  if (variant !== undefined) p.variant = variant;
  return p;
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

export function hostPlatform(): Platform {
  switch (process.arch) {
    case 'x64':
      return { os: 'linux', architecture: 'amd64' };
    case 'arm64':
      return { os: 'linux', architecture: 'arm64' };
    case 'arm':
      return { os: 'linux', architecture: 'arm', variant: 'v7' };
    case 'ia32':
      return { os: 'linux', architecture: '386' };
    default:
      // Node's names for the remaining Linux arches (ppc64, s390x, riscv64…) match Go's.
      return { os: 'linux', architecture: process.arch };
  }
}

export function isWasmPlatform(p: Platform): boolean {
  return WASI_OSES.has(p.os.toLowerCase()) || WASM_ARCHES.has(p.architecture.toLowerCase());
}

function normOs(os: string): string {
  const o = os.toLowerCase();
  return WASI_OSES.has(o) ? 'wasi' : o;
}

function normArch(arch: string): string {
  const a = arch.toLowerCase();
  return WASM_ARCHES.has(a) ? 'wasm' : (ARCH_ALIASES[a] ?? a);
}

function normVariant(p: Platform): string | undefined {
  if (p.variant) return p.variant.toLowerCase();
  return normArch(p.architecture) === 'arm64' ? 'v8' : undefined;
}

export function platformMatches(candidate: Platform, want: Platform): boolean {
  if (normOs(candidate.os) !== normOs(want.os)) return false;
  if (normArch(candidate.architecture) !== normArch(want.architecture)) return false;
  const cv = normVariant(candidate);
  const wv = normVariant(want);
  return cv === undefined || wv === undefined || cv === wv;
}

/** buildx attaches provenance/SBOM manifests to indexes; they are not runnable images. */
function isAttestation(d: Descriptor): boolean {
  if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return d.platform?.os === 'unknown' && d.platform.architecture === 'unknown';
}

/**
 * Picks one manifest from an index. With `want`, the matching one (an exact
 * string match beats a looser one, e.g. arm/v7 over arm/v6 for arm/v7).
 * Without: a Wasm manifest if present, else the host platform.
 */
export function selectManifest(manifests: Descriptor[], want: Platform | undefined, what: string): Descriptor {
  const candidates = manifests.filter((d) => !isAttestation(d));
  const withPlatform = candidates.filter((d): d is Descriptor & { platform: Platform } => d.platform !== undefined);

  let chosen: Descriptor | undefined;
  if (want) {
    const matches = withPlatform.filter((d) => platformMatches(d.platform, want));
    chosen = matches.find((d) => formatPlatform(d.platform) === formatPlatform(want)) ?? matches[0];
  } else {
    chosen =
      withPlatform.find((d) => isWasmPlatform(d.platform)) ??
      withPlatform.find((d) => platformMatches(d.platform, hostPlatform()));
  }
  // A lone entry that does not say its platform (typically a nested index)
  // cannot be judged here; the caller checks the config it leads to.
  if (!chosen && candidates.length === 1 && withPlatform.length === 0) chosen = candidates[0];
  if (chosen) return chosen;

  const available = candidates.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown'));
  throw new NotFoundError(
    `no manifest for ${formatPlatform(want ?? hostPlatform())} in ${what}; available: ${available.length ? available.join(', ') : 'none'}`,
  );
}
