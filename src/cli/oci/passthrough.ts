// Which runc the OCI-runtime commands drive; running it is
// linux-runtime/runc.ts's runWithOurStdio.
export { runWithOurStdio as runRunc } from '../../linux-runtime/runc.js';

export function runcBinary(explicit?: string): string {
  return explicit ?? process.env.TUGBOAT_RUNC ?? 'runc';
}
