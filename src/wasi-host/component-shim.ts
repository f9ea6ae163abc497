// A component's imports, set up for one guest: its args and env, its files
// (Tugboat's own wasi:filesystem on the kernel-resolved host, ./p2/), stdout
// and stderr written synchronously to the container's descriptors (nothing
// is left in a worker's queue when the host ends the process), stdin made on
// first use, exit that never calls process.exit(), and preview2-shim for the
// rest (never its filesystem). Shared by command components
// (component-run.ts) and HTTP components (http/), which replace wasi:io,
// the monotonic clock and wasi:http with their own.
import { openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { componentExit } from './component-outcome.js';
import { loadGlueFile } from './shared/component-glue.js';
import { envListToObject, type GuestConfig } from './guest-config.js';
import { createFilesystem, guestCwd, hostOutputStream, wasiImports, type ImportParts, type OutputStream } from './p2/index.js';
import * as p2 from './p2/shim.js';

/** A fresh open file description of stdio fd `fd` (as worker.ts does for preview1), else the fd itself. */
function ownFd(fd: number): number {
  try {
    return openSync(`/proc/self/fd/${fd}`, 'a');
  } catch {
    return fd;
  }
}

/**
 * A failed write is the stream's error, not the host's: the glue hands a
 * thrown non-Error value to the guest as stream-error (`closed` for a reader
 * that went away, so the guest sees EPIPE as a native program would).
 */
function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      throw { tag: 'closed' };
    }
  }
}

/** A wasi:io/streams output-stream that writes straight to `fd`. */
export function fdOutputStream(fd: number): OutputStream {
  return hostOutputStream({ write: (buf) => writeAll(fd, buf) });
}

type InputStream = typeof p2.io.streams.InputStream.prototype;

/**
 * preview2-shim's stdin, made on first use. jco's glue asks for stdin while
 * it instantiates, and the shim's stdin starts the shim's IO worker (a thread
 * booting Node, tens of ms on the start path): a component that never reads
 * its stdin should not pay for it. `instanceof InputStream` holds, as for
 * fdOutputStream.
 */
export function lazyStdin(make: () => InputStream = () => p2.cli.stdin.getStdin()): InputStream {
  let real: InputStream | undefined;
  const get = () => (real ??= make()) as unknown as Record<string, (...args: unknown[]) => unknown>;
  const stream = Object.create(p2.io.streams.InputStream.prototype) as Record<string | symbol, unknown>;
  for (const m of ['read', 'blockingRead', 'skip', 'blockingSkip', 'subscribe']) stream[m] = (...args: unknown[]) => get()[m]!(...args);
  stream[Symbol.dispose] = () => (real as unknown as { [Symbol.dispose]?: () => void } | undefined)?.[Symbol.dispose]?.();
  return stream as unknown as InputStream;
}

/** The import object's maker (the shape of preview2-shim's WASIShim, which the component worker used before). */
export interface ComponentImports {
  getImportObject(): Record<string, unknown>;
}

/** What a host puts in place of the shim's own interfaces (HTTP components: io, the monotonic clock, http). */
export type ShimOverrides = Pick<ImportParts, 'io' | 'clocks' | 'http'>;

/** A component guest's wasi:cli: its args, env, working directory and stdio; preview2-shim's for the rest. */
export function guestCli(guest: { args: string[]; env: string[]; cwd: string }, stdio: { stdin: object; stdout: OutputStream; stderr: OutputStream }) {
  const env = Object.entries(envListToObject(guest.env));
  return {
    ...p2.cli,
    environment: { getEnvironment: () => env, getArguments: () => guest.args, initialCwd: () => guest.cwd },
    stdin: { getStdin: () => stdio.stdin },
    exit: componentExit,
    stdout: { getStdout: () => stdio.stdout },
    stderr: { getStderr: () => stdio.stderr },
  };
}

export function componentShim(config: GuestConfig, overrides: ShimOverrides = {}): ComponentImports {
  const cli = guestCli(
    { args: config.args, env: config.env, cwd: guestCwd(config) },
    { stdin: lazyStdin(), stdout: fdOutputStream(ownFd(1)), stderr: fdOutputStream(ownFd(2)) },
  );
  const filesystem = createFilesystem(config);
  return { getImportObject: () => wasiImports({ ...overrides, cli, filesystem }) };
}

type Instantiate = (
  getCoreModule: (name: string) => Promise<WebAssembly.Module>,
  imports: object,
) => Promise<Record<string, unknown>>;

export async function loadComponent(config: GuestConfig, imports: object): Promise<Record<string, unknown>> {
  const component = config.component!;
  const instantiate = await loadGlueFile<Instantiate>(component.dir, component.entry);
  const cache = new Map<string, Promise<WebAssembly.Module>>();
  const getCoreModule = (name: string) => {
    let m = cache.get(name);
    if (!m) cache.set(name, (m = WebAssembly.compile(readFileSync(join(component.dir, name)))));
    return m;
  };
  return instantiate(getCoreModule, imports);
}
