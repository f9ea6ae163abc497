// `tugboat seccomp-profile`: the profile Tugboat gives its own Wasm host
// (WASM_HOST_SECCOMP: Docker's default plus userfaultfd in user mode only),
// for operators who want the fast resets of HTTP components where another
// front end picks the profile. Docker, podman and containerd keep their own
// default, which refuses userfaultfd; Tugboat never widens a profile it is
// given, so the choice is the operator's, made by handing this one over.
//
// Two formats, because the front ends read two: Docker's (docker and podman
// `--security-opt seccomp=FILE`), which keeps the rules that depend on
// capabilities, architectures and kernels for the daemon to resolve; and the
// runtime spec's linux.seccomp (`ctr run --seccomp-profile`, and a
// Kubernetes Localhost profile through containerd's CRI plugin), which
// containerd reads as it is. A Docker-format file read that way would apply
// every conditional rule unconditionally (mount and unshare for all), so the
// OCI form is resolved here, as dockerd would for a container with the
// default capabilities, on this machine's architecture and kernel: a rule
// for another capability is left out (a container granted more gets no
// more calls from it).
import { defaultSpec } from '../oci/runtime-spec.js';
import { seccompForSpec, WASM_HOST_SECCOMP, type HostFacts } from '../oci/seccomp.js';

export type ProfileFormat = 'docker' | 'oci';

/** The Wasm host's profile as JSON text in `format`. */
export function wasmHostProfileText(format: ProfileFormat, host?: HostFacts): string {
  const profile = format === 'docker' ? WASM_HOST_SECCOMP : seccompForSpec(WASM_HOST_SECCOMP, defaultSpec(), host);
  return JSON.stringify(profile, null, 2) + '\n';
}
