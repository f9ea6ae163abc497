// Stdio plumbing between containerd-style FIFOs and a process: real pipes
// (so /dev/stdout works), EOF to the client once the process is done, stdin
// kept open until CloseIO, and no output lost to a client that opens its end
// late.
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openProcessIO } from '../../src/shim/stdio.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tugboat-stdio-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The client side of a FIFO, as containerd's cio opens it: reader before the task exists. */
function fifoReader(path: string): Promise<string> {
  execFileSync('mkfifo', [path]);
  const sock = new net.Socket({ fd: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  let out = '';
  sock.setEncoding('utf8').on('data', (d: string) => (out += d));
  return new Promise((resolve) => sock.once('end', () => resolve(out)));
}

function runWith(io: Awaited<ReturnType<typeof openProcessIO>>, script: string): Promise<number> {
  const child = spawn('sh', ['-c', script], { stdio: io.childStdio });
  io.closeChildEnds();
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
}

describe('openProcessIO', () => {
  it('gives the process real pipes and ends the client FIFOs when it is done', async () => {
    const stdout = fifoReader(join(dir, 'out'));
    const stderr = fifoReader(join(dir, 'err'));
    const io = await openProcessIO({ stdin: '', stdout: join(dir, 'out'), stderr: join(dir, 'err') });
    const code = await runWith(io, 'echo hi; echo direct > /dev/stdout; readlink /proc/self/fd/1 | cut -d: -f1; echo oops >&2; exit 3');
    expect(code).toBe(3);
    expect(await stdout).toBe('hi\ndirect\npipe\n');
    expect(await stderr).toBe('oops\n');
    await io.done;
    io.close();
  });

  it('copies stdin, and the process sees EOF only after CloseIO and the client closing', async () => {
    const stdinPath = join(dir, 'in');
    execFileSync('mkfifo', [stdinPath]);
    const stdout = fifoReader(join(dir, 'out'));
    const io = await openProcessIO({ stdin: stdinPath, stdout: join(dir, 'out'), stderr: '' });
    const exited = runWith(io, 'cat; echo eof');
    const client = new net.Socket({ fd: openSync(stdinPath, constants.O_WRONLY | constants.O_NONBLOCK), readable: false, writable: true });
    client.end('line\n');
    await new Promise((r) => client.once('close', r));
    io.closeStdin();
    expect(await exited).toBe(0);
    expect(await stdout).toBe('line\neof\n');
    io.close();
  });

  it('sends everything to /dev/null when no stdio is attached', async () => {
    const io = await openProcessIO({ stdin: '', stdout: '', stderr: '' });
    expect(io.childStdio).toEqual(['ignore', 'ignore', 'ignore']);
    expect(await runWith(io, 'echo nowhere')).toBe(0);
    io.close();
  });

  it('refuses binary:// log URIs with a clear message', async () => {
    await expect(openProcessIO({ stdin: '', stdout: 'binary:///usr/bin/logger?x=1', stderr: '' })).rejects.toThrow(/binary: is not supported/);
  });

  it('loses nothing to a client that opens its FIFO late: the process runs once the client reads', async () => {
    // ctr opens its end in a goroutine (a blocking open): on a loaded machine
    // that may come after a fast process has ended and the shim closed its
    // end, when the kernel has already dropped what the FIFO held.
    const path = join(dir, 'out');
    execFileSync('mkfifo', [path]);
    const started = Date.now();
    const client = (async () => {
      await sleep(300);
      const fh = await open(path, constants.O_RDONLY);
      let out = '';
      for await (const chunk of fh.createReadStream({ encoding: 'utf8' })) out += chunk as string;
      return out;
    })();
    const io = await openProcessIO({ stdin: '', stdout: path, stderr: '' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(await runWith(io, 'echo fast')).toBe(0);
    await io.done;
    // Were the output lost, the client's open would wait for a writer forever: be one, so it ends.
    const unstick = setTimeout(() => {
      try {
        closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // no reader waiting
      }
    }, 2000);
    try {
      expect(await client).toBe('fast\n');
    } finally {
      clearTimeout(unstick);
      io.close();
    }
  });

  it('runs the process anyway when no client opens its FIFO within the bound', async () => {
    const path = join(dir, 'out');
    execFileSync('mkfifo', [path]);
    const started = Date.now();
    const io = await openProcessIO({ stdin: '', stdout: path, stderr: '' }, undefined, 200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(await runWith(io, 'echo nobody')).toBe(0);
    await io.done;
    io.close();
  });
});
