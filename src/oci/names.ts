// The one rule for every name a user gives Tugboat. Container names and ids
// become directory names (`<root>/containers/<id>`, derived bundles, runc
// state), so they are checked before anything is joined onto a path; image
// names are stored as ref-name annotations and checked so that the store only
// ever holds names it can print and match again.
import { UsageError } from '../errors.js';

/**
 * runc's id pattern (`^[\w+-\.]+$`, which is also what containerd, Docker and
 * podman generate), at most 128 characters. Two more refusals make it safe as
 * a path component and as an argument: `.` and `..`, and a leading `-`, which
 * runc's own command line would take for a flag.
 */
const CONTAINER_ID = /^[\w+.-]{1,128}$/;

export function isValidContainerId(id: string): boolean {
  return CONTAINER_ID.test(id) && id !== '.' && id !== '..' && !id.startsWith('-');
}

/** Returns `id` when it is a valid container name or id; `what` names the command or option for the message. */
export function checkContainerId(id: string | undefined, what: string): string {
  if (id === undefined || id === '') throw new UsageError(`${what}: container id cannot be empty`);
  if (!isValidContainerId(id)) {
    throw new UsageError(`${what}: invalid container id format: ${JSON.stringify(id)} (letters, digits and _ + . -, at most 128, not starting with -, not . or ..)`);
  }
  return id;
}

/**
 * The OCI image layout's grammar for `org.opencontainers.image.ref.name`
 * (components of alphanumerics joined by `-._:@+` or `--`, separated by `/`),
 * widened to Docker's separators (`__`, runs of `-`), which covers plain
 * names (`hello`), tags (`1.0`) and full references
 * (`registry:5000/ns/app:1.0`, `app@sha256:…`). At most 512 characters.
 */
const REF_COMPONENT = /^[A-Za-z0-9]+(?:(?:[._:@+]|__|-+)[A-Za-z0-9]+)*$/;
const MAX_IMAGE_NAME = 512;

export function isValidImageName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_IMAGE_NAME && name.split('/').every((c) => REF_COMPONENT.test(c));
}

export function checkImageName(name: string | undefined, what: string): string {
  if (name === undefined || name === '') throw new UsageError(`${what}: image name cannot be empty`);
  if (!isValidImageName(name)) {
    throw new UsageError(`${what}: invalid image name ${JSON.stringify(name)} (an OCI reference name such as app, app:1.0 or registry:5000/ns/app:1.0)`);
  }
  return name;
}
