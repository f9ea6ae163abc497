// The import object of a jco-transpiled component: WASI 0.2 interface names
// → host implementations, as preview2-shim's WASIShim builds it, except that
// the filesystem is always Tugboat's (filesystem.ts) and the shim's own is
// never loaded (see shim.ts).
import type { ComponentFilesystem } from './filesystem.js';
import { clocks, http, io, random, sockets } from './shim.js';

/** wasi:cli, interface by interface (the shim's module, or parts of it replaced). */
export interface CliImports {
  environment: unknown;
  exit: unknown;
  stdin: unknown;
  stdout: unknown;
  stderr: unknown;
  terminalInput: unknown;
  terminalOutput: unknown;
  terminalStdin: unknown;
  terminalStdout: unknown;
  terminalStderr: unknown;
}

export interface ImportParts {
  cli: CliImports;
  filesystem: Pick<ComponentFilesystem, 'types' | 'preopens'>;
  /** wasi:http; preview2-shim's by default. */
  http?: { types: unknown; incomingHandler?: unknown; outgoingHandler: unknown };
  /** wasi:io; preview2-shim's by default (an HTTP component's handler thread has its own). */
  io?: { error: unknown; poll: unknown; streams: unknown };
  /** wasi:clocks; preview2-shim's by default. */
  clocks?: { monotonicClock: unknown; wallClock: unknown };
}

type CreateSockets = (config: { enableNetwork?: boolean }) => typeof sockets;

/** Unversioned names: jco's glue looks its imports up without the @0.2.x suffix. */
export function wasiImports(parts: ImportParts): Record<string, unknown> {
  const { cli, filesystem } = parts;
  const h = (parts.http ?? http) as { types: unknown; incomingHandler?: unknown; outgoingHandler: unknown };
  const i = parts.io ?? io;
  const c = parts.clocks ?? clocks;
  // An instance-local network: the container's network namespace is the policy, as for Linux containers.
  const net = (sockets as unknown as { createSockets: CreateSockets }).createSockets({ enableNetwork: true });
  return {
    'wasi:cli/environment': cli.environment,
    'wasi:cli/exit': cli.exit,
    'wasi:cli/stderr': cli.stderr,
    'wasi:cli/stdin': cli.stdin,
    'wasi:cli/stdout': cli.stdout,
    'wasi:cli/terminal-input': cli.terminalInput,
    'wasi:cli/terminal-output': cli.terminalOutput,
    'wasi:cli/terminal-stderr': cli.terminalStderr,
    'wasi:cli/terminal-stdin': cli.terminalStdin,
    'wasi:cli/terminal-stdout': cli.terminalStdout,
    'wasi:sockets/instance-network': net.instanceNetwork,
    'wasi:sockets/ip-name-lookup': net.ipNameLookup,
    'wasi:sockets/network': net.network,
    'wasi:sockets/tcp': net.tcp,
    'wasi:sockets/tcp-create-socket': net.tcpCreateSocket,
    'wasi:sockets/udp': net.udp,
    'wasi:sockets/udp-create-socket': net.udpCreateSocket,
    'wasi:filesystem/preopens': filesystem.preopens,
    'wasi:filesystem/types': filesystem.types,
    'wasi:io/error': i.error,
    'wasi:io/poll': i.poll,
    'wasi:io/streams': i.streams,
    'wasi:random/random': random.random,
    'wasi:random/insecure': random.insecure,
    'wasi:random/insecure-seed': random.insecureSeed,
    'wasi:clocks/monotonic-clock': c.monotonicClock,
    'wasi:clocks/wall-clock': c.wallClock,
    'wasi:http/types': h.types,
    'wasi:http/incoming-handler': h.incomingHandler,
    'wasi:http/outgoing-handler': h.outgoingHandler,
  };
}
