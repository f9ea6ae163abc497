#!/usr/bin/env node
// The `tugboat` command. Only this module and what it imports load before
// the command is known: the runc command line (Docker's, podman's), the
// version and Tugboat's own commands each import their code on demand, so
// that no command pays for another's modules (README "Performance"). Every
// error is mapped to one line and an exit status in exactly one place (fail()).
import { describeError, exitCodeFor } from '../errors.js';
import { log } from '../log.js';
import { isOciInvocation } from './oci/argv.js';

function fail(err: unknown): never {
  process.stderr.write(`tugboat: ${describeError(err)}\n`);
  log().debug({ err }, 'command failed');
  process.exit(exitCodeFor(err));
}

async function main(argv: string[]): Promise<void> {
  // Handled before commander so that ordinary commands never pay for probing runc.
  const first = argv[2];
  if (first === '-v' || first === '--version') {
    const { versionText } = await import('./version-text.js');
    process.stdout.write(versionText() + '\n');
    return;
  }
  // runc's command line (Docker, containerd-shim-runc-v2, podman): Tugboat is
  // their OCI runtime.
  if (isOciInvocation(argv.slice(2))) {
    const { runOciCommand } = await import('./oci/commands.js');
    process.exitCode = await runOciCommand(argv.slice(2));
    return;
  }
  const { runProgram } = await import('./program.js');
  await runProgram(argv, fail);
}

void main(process.argv);
