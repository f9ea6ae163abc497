// The host's side of thread-gate.test.ts, bundled by the test and run in a
// process of its own: an abort (the bug the gate prevents) ends that process,
// not the test runner.
import { setTimeout as sleep } from 'node:timers/promises';
import { endThread, startThread } from '../../../src/thread-gate.js';

const thread = new URL('./gate-thread.mjs', import.meta.url);
const [mode = 'declare', count = '100'] = process.argv.slice(2);

/** How long a thread takes from its start to having declared, on this machine now (the slowest of three). */
async function startTime(): Promise<number> {
  let slowest = 0;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const w = startThread(thread, { stdout: false, stderr: false });
    await new Promise((r) => {
      w.once('message', r);
      w.postMessage({ mode: 'declare' });
    });
    slowest = Math.max(slowest, performance.now() - t);
    await endThread(w);
  }
  return slowest;
}

if (mode === 'declare') {
  // Threads ended at random moments of their start, most of them around koffi's load.
  const spread = (await startTime()) * 1.2;
  let declared = 0;
  for (let i = 0; i < Number(count); i++) {
    const w = startThread(thread, { stdout: false, stderr: false });
    w.on('message', () => declared++);
    w.postMessage({ mode: 'declare' });
    await sleep(Math.random() * spread);
    await endThread(w);
  }
  console.log(JSON.stringify({ ended: Number(count), declared }));
} else {
  const flags = new SharedArrayBuffer(12);
  const a = new Int32Array(flags);
  const w = startThread(thread, { stdout: false, stderr: false });
  w.postMessage({ mode: 'hold', flags });
  while (Atomics.load(a, 0) === 0) await sleep(5);
  let ended = false;
  const ending = endThread(w).then(() => (ended = true));
  await sleep(300);
  const endedWhileHeld = ended;
  Atomics.store(a, 1, 1);
  Atomics.notify(a, 1);
  await ending;
  console.log(JSON.stringify({ endedWhileHeld, sectionFinished: Atomics.load(a, 2) === 1 }));
}
