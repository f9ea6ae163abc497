// preview2-shim, set up for one guest: its args, env and preopens (WASIShim's
// sandbox), stdout and stderr written synchronously to the container's
// descriptors (nothing is left in a worker's queue when the host ends the
// process), stdin made on first use, and exit that never calls
// process.exit(). Shared by command components (component-run.ts) and HTTP
// components (http/), which replace some interfaces with their own.
import { openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as p2 from '@bytecodealliance/preview2-shim';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { componentExit } from './component-outcome.js';
import { defaultPreopens, envListToObject, preopenRecord, type GuestConfig } from './guest-config.js';

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

type OutputStream = typeof p2.io.streams.OutputStream.prototype;

/**
 * A wasi:io/streams output-stream that writes straight to `fd`. The glue
 * checks `instanceof OutputStream` (the shim's class), hence the prototype;
 * every method the class implements through its IO worker is replaced.
 */
export function fdOutputStream(fd: number): OutputStream {
  const stream = Object.create(p2.io.streams.OutputStream.prototype) as Record<string | symbol, unknown>;
  const write = (buf: Uint8Array) => writeAll(fd, buf);
  const zeroes = (len: bigint) => writeAll(fd, new Uint8Array(Number(len)));
  Object.assign(stream, {
    checkWrite: () => 1n << 20n,
    write,
    blockingWriteAndFlush: write,
    flush() {},
    blockingFlush() {},
    writeZeroes: zeroes,
    blockingWriteZeroesAndFlush: zeroes,
    // Always writable: a pollable that is ready at once.
    subscribe: () => p2.clocks.monotonicClock.subscribeDuration(0n),
    [Symbol.dispose]() {},
  });
  return stream as unknown as OutputStream;
}

export function componentPreopens(config: GuestConfig, cwd: string): Record<string, string> {
  // As for preview1: the container root, then the working directory as "."
  // so that relative paths resolve against it.
  return preopenRecord(config.preopens ?? defaultPreopens(cwd));
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

/** What a host puts in place of the shim's own interfaces (HTTP components: io, clocks, http). */
export type ShimOverrides = Pick<NonNullable<ConstructorParameters<typeof WASIShim>[0]>, 'io' | 'clocks' | 'http'>;

export function componentShim(config: GuestConfig, overrides: ShimOverrides = {}): WASIShim {
  const stdout = fdOutputStream(ownFd(1));
  const stderr = fdOutputStream(ownFd(2));
  const stdin = lazyStdin();
  const cli = {
    ...p2.cli,
    stdin: { getStdin: () => stdin },
    exit: componentExit,
    stdout: { getStdout: () => stdout },
    stderr: { getStderr: () => stderr },
  };
  return new WASIShim({
    ...overrides,
    cli,
    sandbox: {
      args: config.args,
      env: envListToObject(config.env),
      preopens: componentPreopens(config, process.cwd()),
      // The container's network namespace is the policy, as for Linux containers.
      enableNetwork: true,
    },
  });
}

type Instantiate = (
  getCoreModule: (name: string) => Promise<WebAssembly.Module>,
  imports: object,
) => Promise<Record<string, unknown>>;

export async function loadComponent(config: GuestConfig, imports: object): Promise<Record<string, unknown>> {
  const component = config.component!;
  const mod = (await import(pathToFileURL(join(component.dir, component.entry)).href)) as { instantiate: Instantiate };
  const cache = new Map<string, Promise<WebAssembly.Module>>();
  const getCoreModule = (name: string) => {
    let m = cache.get(name);
    if (!m) cache.set(name, (m = WebAssembly.compile(readFileSync(join(component.dir, name)))));
    return m;
  };
  return mod.instantiate(getCoreModule, imports);
}

