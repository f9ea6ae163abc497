// How a guest's fate becomes the container's exit status. These numbers are a
// contract with every front end (tugboat run, the shim, docker), see README.

/** The module could not be found. Same as a shell's "command not found". */
export const EXIT_MODULE_NOT_FOUND = 127;
/** The file is not a runnable Wasm binary (bad magic, invalid, unsupported kind). */
export const EXIT_NOT_RUNNABLE = 126;
/** A Wasm trap (unreachable, out-of-bounds access, stack overflow…): as SIGABRT. */
export const EXIT_TRAP = 134;
/** A failure of the host itself. */
export const EXIT_HOST_FAILURE = 125;
/** The guest hit its memory cap: as the OOM killer's SIGKILL. */
export const EXIT_MEMORY_CAP = 137;

/**
 * proc_exit takes a u32 but a Linux status is 8 bits. Values above 255 are
 * reduced modulo 256 as POSIX does, except that a failure never becomes 0.
 */
export function guestExitStatus(code: number): number {
  if (!Number.isInteger(code) || code < 0) return 1;
  const low = code & 0xff;
  return code !== 0 && low === 0 ? 1 : low;
}

export function signalExitStatus(signalNumber: number): number {
  return 128 + signalNumber;
}
