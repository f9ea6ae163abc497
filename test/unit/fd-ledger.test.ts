// The descriptor ledger of a shared host's guest (src/wasi-host/p2/fd-ledger.ts):
// what a guest thread ended by Worker.terminate() still held is closed by the
// host, and nothing a thread closed itself is closed twice.
import { fstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { FdLedger } from '../../src/wasi-host/p2/fd-ledger.js';
import { HostFds } from '../../src/wasi-host/p2/host-fds.js';

const isOpen = (fd: number) => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

describe('the descriptor ledger', () => {
  it('lets the host close what a thread still holds, never what it closed itself', () => {
    const ledger = new FdLedger();
    const fds = new HostFds(new FdLedger(ledger.buffer));
    const kept = fds.add(openSync('/dev/null', 'r'));
    const closed = fds.add(openSync('/dev/null', 'r'));
    closed.close();
    // The number is free again: whatever the kernel gives it next is not the guest's.
    const other = openSync('/dev/null', 'r');
    expect(other).toBe(closed.fd);
    expect(ledger.closeAll((fd) => process.getBuiltinModule('node:fs').closeSync(fd))).toBe(1);
    expect(isOpen(kept.fd)).toBe(false);
    expect(isOpen(other)).toBe(true);
    process.getBuiltinModule('node:fs').closeSync(other);
  });

  it('closes the descriptors of a worker thread that was terminated while it spun', async () => {
    const ledger = new FdLedger();
    // The thread takes three descriptors as a guest's filesystem does (raw
    // syscalls: Node closes the ones its own fs opened in a worker, not
    // these), writes them down, then spins.
    const built = (file: string) => JSON.stringify(pathToFileURL(join(import.meta.dirname, '..', '..', 'dist', 'wasi-host', file)).href);
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       Promise.all([import(${built('preview1/sys.js')}), import(${built('p2/fd-ledger.js')})]).then(([{ sys }, { FdLedger }]) => {
         const ledger = new FdLedger(workerData);
         const fds = [0, 1, 2].map(() => { const fd = sys().dup(0); ledger.record(fd); return fd; });
         parentPort.postMessage(fds);
         for (;;) {}
       });`,
      { eval: true, workerData: ledger.buffer },
    );
    const fds = await new Promise<number[]>((resolve) => worker.once('message', resolve));
    await worker.terminate();
    // Without the ledger they would stay open as long as the host lives.
    expect(fds.every(isOpen)).toBe(true);
    expect(ledger.closeAll((fd) => process.getBuiltinModule('node:fs').closeSync(fd))).toBe(3);
    expect(fds.some(isOpen)).toBe(false);
  });
});
