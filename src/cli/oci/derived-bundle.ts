// Where the runtime keeps the bundles it derives for Wasm containers. The
// caller's bundle (Docker's, containerd's, podman's) is never modified: a Wasm
// container is created by runc from a copy of its config.json, rewritten, in
// a directory of our own keyed by runc's state root and the container id.
import { join } from 'node:path';

export { checkContainerId } from '../../oci/names.js';

export function stateDir(): string {
  return process.env.TUGBOAT_STATE ?? '/run/tugboat';
}

/**
 * `<state>/bundles/<runc root with / as %>/<id>`: readable, and cheap for
 * bin/tugboat to test from sh, which hands `delete` of a container without a
 * derived bundle straight to runc.
 */
export function derivedBundleDir(runcRoot: string | undefined, id: string): string {
  return join(stateDir(), 'bundles', (runcRoot ?? '/run/runc').replaceAll('/', '%'), id);
}
