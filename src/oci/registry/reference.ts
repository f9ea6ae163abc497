// Registry image references ("host:port/ns/repo:tag@sha256:…") with Docker's
// normalization: no registry means Docker Hub, and a one-part Hub name lives
// under "library/". Every part is validated against the distribution grammar
// before it is used to build a URL or a store name, so a reference can never
// smuggle a path, a query or another host into a request.

import { UsageError } from '../../errors.js';
import { digestHex } from '../digest.js';

export const DOCKER_HUB = 'docker.io';
/** Where Docker Hub's registry API actually lives. */
const DOCKER_HUB_API = 'registry-1.docker.io';

export interface RegistryRef {
  /** "127.0.0.1:5000", "ghcr.io", "docker.io" (as written, Hub aliases folded). */
  registry: string;
  /** "library/busybox", "ns/app". */
  repository: string;
  /** Set unless the reference names only a digest. */
  tag?: string;
  digest?: string;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]{1,5})?$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const MAX_NAME = 255;

/** Docker's rule: the first part is a registry if it has a dot or a port, or is "localhost". */
function isDomainPart(part: string): boolean {
  return part.includes('.') || part.includes(':') || part === 'localhost' || part.toLowerCase() !== part;
}

function bad(ref: string, why: string): UsageError {
  return new UsageError(`invalid image reference ${JSON.stringify(ref)}: ${why}`);
}

export function parseRegistryRef(ref: string): RegistryRef {
  if (ref === '' || /[\s\0]/.test(ref)) throw bad(ref, 'empty or contains whitespace');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      digestHex(digest);
    } catch {
      throw bad(ref, 'digest must be sha256:<64 hex digits>');
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && !rest.slice(colon + 1).includes('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(ref, `bad tag ${JSON.stringify(tag)}`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  if (parts.length > 1 && isDomainPart(parts[0] as string)) {
    registry = parts.shift() as string;
    if (!DOMAIN.test(registry)) throw bad(ref, `bad registry ${JSON.stringify(registry)}`);
  }
  if (parts.length === 0 || !parts.every((p) => PATH_COMPONENT.test(p))) {
    throw bad(ref, 'repository names are lowercase letters, digits and separators (. _ __ -), split by /');
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (repository.length > MAX_NAME) throw bad(ref, `repository name longer than ${MAX_NAME} characters`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** "registry/repository:tag" (and "@digest" when pinned): the name a pulled image gets in the store. */
export function formatRegistryRef(r: RegistryRef): string {
  return `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** Tag or digest: what goes after /manifests/ (the digest wins when both are given, as Docker does). */
export function manifestReference(r: RegistryRef): string {
  return r.digest ?? r.tag ?? 'latest';
}

/** The host the HTTP API is on. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/**
 * True for arguments of `tugboat run` that mean "an image in a registry":
 * a name with an explicit registry ("host/repo", "localhost:5000/app") or an
 * explicit tag or digest ("repo:tag"). Transport references (oci:…) and bare
 * names (store names) are not.
 */
export function looksLikeRegistryRef(s: string): boolean {
  if (/^(oci|oci-archive|docker-archive):/.test(s)) return false;
  try {
    parseRegistryRef(s);
  } catch {
    return false;
  }
  const slash = s.indexOf('/');
  const hasDomain = slash > 0 && isDomainPart(s.slice(0, slash));
  const last = s.slice(s.lastIndexOf('/') + 1);
  return hasDomain || last.includes(':') || last.includes('@');
}

/** A registry host as given to login/logout ("https://host:5000/v2/" → "host:5000"), validated. */
export function parseRegistryHost(s: string): string {
  let host = s.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  if (host === 'index.docker.io' || host === DOCKER_HUB_API) host = DOCKER_HUB;
  if (!DOMAIN.test(host)) throw new UsageError(`invalid registry ${JSON.stringify(s)}: expected HOST[:PORT]`);
  return host;
}

export function isLoopbackHost(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1';
}
