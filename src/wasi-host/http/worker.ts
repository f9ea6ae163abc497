// A handler thread of an HTTP component (bundled as dist/host/http-worker.mjs):
// serveOnThread on what serve.ts sends, and the messages back.
import { parentPort, workerData } from 'node:worker_threads';
import { adoptThreadGate } from '../../thread-gate.js';
import type { GuestOutcome } from '../outcome.js';
import type { HandlerStart, HandlerMessage, HandlerCommand } from './serve.js';
import { ComponentLinkError, serveOnThread } from './thread.js';

// First: no terminate may land while this thread loads koffi (thread-gate.ts).
adoptThreadGate(workerData);

// jco's glue reads process.env.JCO_DEBUG on every call it makes; in a worker
// each read is a lookup in the environment store (measured: ~2.7 µs, tens of
// reads per request). Nothing on this thread needs the process's
// environment (the guest's comes from its configuration).
process.env = {};
// A warning Node prints from this thread would land on the stderr of whoever
// hosts us, which may be the guest's own (`tugboat run --isolation process`).
process.removeAllListeners('warning');

const post = (m: HandlerMessage) => parentPort!.postMessage(m);

parentPort?.once('message', (start: HandlerStart) => {
  serveOnThread({ ...start, onRequestFailed: (message) => post({ kind: 'request-failed', message }) }).then(
    (server) => {
      post({ kind: 'listening', port: server.port });
      parentPort!.on('message', (cmd: HandlerCommand) => {
        if (cmd.kind === 'drain') void server.drain().then(() => post({ kind: 'drained' }));
        else if (cmd.kind === 'stats') post({ kind: 'stats', stats: server.stats(), inFlight: server.inFlight() });
      });
    },
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      const outcome: GuestOutcome =
        err instanceof ComponentLinkError
          ? { kind: 'link', message }
          : { kind: 'error', message: (err as NodeJS.ErrnoException).code === 'EADDRINUSE' || (err as NodeJS.ErrnoException).code === 'EACCES' ? `cannot serve HTTP on port ${start.port}: ${message}` : message };
      post({ kind: 'failed', outcome });
    },
  );
});
