// Stdio between containerd's FIFOs and a container process. The process gets
// real pipes (pipe2, never Node's 'pipe' socketpairs, which break
// /dev/stdout in containers); the shim copies between the pipes and the
// FIFOs, so it decides when the client sees EOF (containerd pkg/process/io.go).
//   stdin : FIFO (O_RDONLY|O_NONBLOCK, plus a spare writer so the client's
//           detaching is not EOF; CloseIO drops the spare) → pipe → process
//   stdout/stderr: process → pipe → FIFO (opened O_RDWR: never blocks, never EPIPE),
//           once the client has the FIFO open for reading (clientReader)
// Paths may also be file:///path (the process writes the file directly).
import type { StdioOptions } from 'node:child_process';
import { closeSync, constants, openSync, write } from 'node:fs';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import * as tty from 'node:tty';
import { UnimplementedError } from '../errors.js';
import { log } from '../log.js';
import { dupCloexec, fchown, pipe } from '../linux-runtime/sys.js';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
}

/** A stdio URI scheme the shim does not offer (binary://, …). */
export class UnsupportedIOError extends UnimplementedError {}

export interface ProcessIO {
  /** stdio for the runc create/exec child; fds 0,1,2 become the process's. */
  readonly childStdio: StdioOptions;
  /** Close the shim's copies of the child's ends (after runc was spawned). */
  closeChildEnds(): void;
  /** CloseIO: drop the spare stdin writer so the process sees EOF once the client closes. */
  closeStdin(): void;
  /** stdout and stderr copies finished (process and all holders closed their ends). */
  readonly done: Promise<void>;
  /** Close everything now. */
  close(): void;
}

function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function fileUri(p: string): string | undefined {
  if (!p.includes('://')) return undefined;
  const u = new URL(p);
  if (u.protocol === 'file:') return decodeURIComponent(u.pathname);
  throw new UnsupportedIOError(`stdio scheme ${u.protocol} is not supported by tugboat (${p})`);
}

/** How long the shim waits for a client to open an output FIFO before it runs the process anyway. */
export const CLIENT_READER_WAIT_MS = 10_000;

/**
 * A writer on the output FIFO at `path` once someone else has it open for
 * reading: the client (ctr's cio, the CRI, dockerd) opens its end in a
 * goroutine of its own, and may not have done so yet when a fast process has
 * already ended. The shim's own O_RDWR descriptor is no reader the client can
 * see: when the copy ends and the shim closes it, the FIFO has no opener left
 * and the kernel frees what it holds, so the client's open then waits for a
 * writer that never comes and it prints nothing. runc's shim waits in a
 * blocking O_WRONLY open (containerd pkg/process/io.go); here an
 * O_WRONLY|O_NONBLOCK open is retried (ENXIO: no reader yet) so the event
 * loop never blocks. The descriptor returned is held until the shim's own
 * writer is open, so the client never sees a moment without a writer (EOF).
 * After `waitMs` without a reader: undefined, and the process runs anyway.
 */
async function clientReader(path: string, waitMs: number): Promise<number | undefined> {
  const deadline = Date.now() + waitMs;
  for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
    try {
      return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
    }
    if (Date.now() >= deadline) return undefined;
    await sleep(pause);
  }
}

/** The shim's writer on an output FIFO (O_RDWR: never blocks, never EPIPE), opened once the client reads it. */
async function openOutputFifo(path: string, readerWaitMs: number): Promise<number> {
  const held = await clientReader(path, readerWaitMs);
  if (held === undefined) log().warn({ path, waitMs: readerWaitMs }, 'no client opened the output FIFO: what the process writes before one does may be lost');
  try {
    return openSync(path, constants.O_RDWR);
  } finally {
    closeQuietly(held);
  }
}

/**
 * The process's stdio over containerd's paths. Resolves once every output
 * FIFO has a reader (at most `readerWaitMs` each; see clientReader).
 */
export async function openProcessIO(paths: StdioPaths, owner?: { uid: number; gid: number }, readerWaitMs = CLIENT_READER_WAIT_MS): Promise<ProcessIO> {
  const childEnds: number[] = [];
  const shimFds: number[] = [];
  const sockets: net.Socket[] = [];
  const copies: Promise<void>[] = [];
  let spareStdin: number | undefined;
  const stdio: (number | 'ignore')[] = ['ignore', 'ignore', 'ignore'];

  const chown = (fd: number) => {
    if (owner && (owner.uid !== 0 || owner.gid !== 0)) fchown(fd, owner.uid, owner.gid);
  };

  try {
    // stdin
    if (paths.stdin) {
      const [r, w] = pipe();
      childEnds.push(r);
      chown(r);
      stdio[0] = r;
      const fifo = openSync(paths.stdin, constants.O_RDONLY | constants.O_NONBLOCK);
      spareStdin = openSync(paths.stdin, constants.O_WRONLY | constants.O_NONBLOCK);
      const src = new net.Socket({ fd: fifo, readable: true, writable: false });
      const dst = new net.Socket({ fd: w, readable: false, writable: true });
      sockets.push(src, dst);
      src.on('error', (err) => log().debug({ err }, 'stdin fifo error'));
      dst.on('error', (err) => log().debug({ err }, 'stdin pipe error'));
      src.pipe(dst);
    }
    // stdout, stderr
    const outs: [1 | 2, string][] = [
      [1, paths.stdout],
      [2, paths.stderr],
    ];
    const sameFile = paths.stdout !== '' && paths.stdout === paths.stderr;
    for (const [n, p] of outs) {
      if (!p) continue;
      const file = fileUri(p);
      if (file !== undefined) {
        if (n === 2 && sameFile) {
          stdio[2] = stdio[1]!;
          continue;
        }
        const fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o640);
        shimFds.push(fd);
        chown(fd);
        stdio[n] = fd;
        continue;
      }
      const dst = new net.Socket({ fd: await openOutputFifo(p, readerWaitMs), readable: false, writable: true });
      sockets.push(dst);
      const [r, w] = pipe();
      childEnds.push(w);
      chown(w);
      stdio[n] = w;
      const src = new net.Socket({ fd: r, readable: true, writable: false });
      sockets.push(src);
      src.on('error', (err) => log().debug({ err }, 'output pipe error'));
      dst.on('error', (err) => log().debug({ err }, 'output fifo error'));
      copies.push(new Promise<void>((resolve) => dst.once('close', () => resolve())));
      src.pipe(dst);
    }
  } catch (err) {
    for (const fd of [...childEnds, ...shimFds]) closeQuietly(fd);
    closeQuietly(spareStdin);
    for (const s of sockets) s.destroy();
    throw err;
  }

  let childClosed = false;
  const io: ProcessIO = {
    childStdio: stdio,
    closeChildEnds() {
      if (childClosed) return;
      childClosed = true;
      for (const fd of childEnds) closeQuietly(fd);
      for (const fd of shimFds) closeQuietly(fd);
    },
    closeStdin() {
      closeQuietly(spareStdin);
      spareStdin = undefined;
    },
    done: Promise.all(copies).then(() => undefined),
    close() {
      this.closeChildEnds();
      this.closeStdin();
      for (const s of sockets) s.destroy();
    },
  };
  return io;
}

/**
 * Terminal mode: the process's stdio is the pty slave runc set up; the shim
 * holds the master (received on the console socket) and copies stdin FIFO →
 * master and master → stdout FIFO. stderr is unused.
 */
export async function openTerminalIO(paths: StdioPaths, master: number, readerWaitMs = CLIENT_READER_WAIT_MS): Promise<ProcessIO & { master: number }> {
  const sockets: net.Socket[] = [];
  let spareStdin: number | undefined;
  let writerFd: number | undefined;
  // Reads from the master (EIO once every slave fd is closed: that is the end).
  const reader = new tty.ReadStream(master);
  reader.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EIO') log().debug({ err }, 'pty read error');
  });
  const copies: Promise<void>[] = [];
  try {
    if (paths.stdout) {
      const dst = new net.Socket({ fd: await openOutputFifo(paths.stdout, readerWaitMs), readable: false, writable: true });
      sockets.push(dst);
      dst.on('error', (err) => log().debug({ err }, 'output fifo error'));
      copies.push(new Promise<void>((resolve) => dst.once('close', () => resolve())));
      reader.pipe(dst);
      // EIO (every slave closed) destroys the reader without 'end': finish the copy anyway.
      reader.once('close', () => dst.end());
    } else {
      reader.resume();
    }
    if (paths.stdin) {
      writerFd = dupCloexec(master);
      const wfd = writerFd;
      const fifo = openSync(paths.stdin, constants.O_RDONLY | constants.O_NONBLOCK);
      spareStdin = openSync(paths.stdin, constants.O_WRONLY | constants.O_NONBLOCK);
      const src = new net.Socket({ fd: fifo, readable: true, writable: false });
      sockets.push(src);
      src.on('error', (err) => log().debug({ err }, 'stdin fifo error'));
      // Writes go through the threadpool so a full pty never blocks the shim.
      const writeAll = (buf: Buffer, done: () => void): void => {
        write(wfd, buf, 0, buf.length, null, (err, n) => {
          if (err && (err as NodeJS.ErrnoException).code === 'EAGAIN') return void setTimeout(() => writeAll(buf, done), 10);
          if (err) return done(); // the pty is gone
          if (n < buf.length) return writeAll(buf.subarray(n), done);
          done();
        });
      };
      src.on('data', (chunk: Buffer) => {
        src.pause();
        writeAll(chunk, () => src.resume());
      });
    }
  } catch (err) {
    reader.destroy();
    for (const s of sockets) s.destroy();
    closeQuietly(spareStdin);
    closeQuietly(writerFd);
    throw err;
  }
  const io: ProcessIO & { master: number } = {
    master,
    childStdio: ['ignore', 'ignore', 'ignore'],
    closeChildEnds() {},
    closeStdin() {
      closeQuietly(spareStdin);
      spareStdin = undefined;
    },
    done: Promise.all(copies).then(() => undefined),
    close() {
      this.closeStdin();
      for (const s of sockets) s.destroy();
      reader.destroy();
      closeQuietly(writerFd);
      writerFd = undefined;
    },
  };
  return io;
}
