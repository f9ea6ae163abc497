// A thread for thread-gate.test.ts, bundled by the test. `declare`: declares
// the host's system calls (koffi's load and declarations, the section a
// terminate must not hit), says so, then waits to be ended. `hold`: holds a
// section open until the test lets it go.
import { parentPort, workerData } from 'node:worker_threads';
import { sys } from '../../../src/wasi-host/preview1/sys.js';
import { adoptThreadGate, withoutTermination } from '../../../src/thread-gate.js';

adoptThreadGate(workerData);

/** Slots of the `hold` array: entered, release, left. */
const ENTERED = 0;
const RELEASE = 1;
const LEFT = 2;

parentPort?.once('message', (m: { mode: 'declare' } | { mode: 'hold'; flags: SharedArrayBuffer }) => {
  if (m.mode === 'declare') {
    sys();
    parentPort?.postMessage('declared');
  } else {
    const a = new Int32Array(m.flags);
    withoutTermination(() => {
      Atomics.store(a, ENTERED, 1);
      Atomics.notify(a, ENTERED);
      Atomics.wait(a, RELEASE, 0);
      Atomics.store(a, LEFT, 1);
    });
  }
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
});
