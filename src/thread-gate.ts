// A thread must not be ended by Worker.terminate() while it loads a native
// addon or declares the addon's functions: koffi's init and its declarations
// call N-API, which fails once the thread is terminating, and
// node-addon-api turns the failed throw of that error into a fatal error
// that aborts the whole process (observed: a pod host, and every guest in it,
// gone with SIGABRT when a guest was killed while its thread started).
//
// So those few milliseconds are a critical section, and terminating waits
// for them: one Int32 shared by the thread and whoever ends it.
//   FREE   -> BUSY    the thread enters a section (compare-and-exchange)
//   BUSY   -> FREE    it leaves, and wakes a waiting terminator
//   FREE   -> CLOSED  the terminator claims the thread; the thread never
//                     enters a section again (it waits to be terminated)
// Calls of declared functions need no section: they were tried at random
// moments of termination many times, and none aborts.
//
// A thread takes its gate from its workerData (adoptThreadGate, the first
// thing each of our thread entries does); this module never loads
// node:worker_threads itself: the CLI, the shim and a preview1 host reach it
// through every koffi user and must not load worker_threads for it.
import type { Worker, WorkerOptions } from 'node:worker_threads';

const FREE = 0;
const BUSY = 1;
const CLOSED = 2;
/** The key of the gate in a thread's workerData. */
const KEY = 'tugboatThreadGate';
/** A section lasts milliseconds (the addon's load); past this a terminator stops waiting. */
const SECTION_WAIT_MS = 5000;

// ---- the thread's side ----

/** This thread's gate: none on the main thread and on threads started without one. */
let own: Int32Array | undefined;
let depth = 0;

/** Called first by a thread's entry with its workerData: the gate startThread gave it, if any. */
export function adoptThreadGate(workerData: unknown): void {
  const sab = workerData !== null && typeof workerData === 'object' ? (workerData as Record<string, unknown>)[KEY] : undefined;
  if (sab instanceof SharedArrayBuffer) own = new Int32Array(sab);
}

/** Runs fn where this thread cannot be terminated (nested calls share one section). */
export function withoutTermination<T>(fn: () => T): T {
  const gate = depth === 0 ? own : undefined;
  if (gate) {
    for (;;) {
      const was = Atomics.compareExchange(gate, 0, FREE, BUSY);
      if (was === FREE) break;
      // CLOSED: this thread is being ended; wait for it here, outside any section.
      Atomics.wait(gate, 0, CLOSED);
    }
  }
  depth++;
  try {
    return fn();
  } finally {
    depth--;
    if (gate) {
      Atomics.store(gate, 0, FREE);
      Atomics.notify(gate, 0);
    }
  }
}

// ---- the side that starts and ends threads ----

const gates = new WeakMap<Worker, Int32Array>();

/**
 * A new Worker with a gate: its workerData is the gate's (our threads take
 * their input through messages), which its entry must adopt first
 * (adoptThreadGate).
 */
export function startThread(script: URL | string, options: Omit<WorkerOptions, 'workerData'> = {}): Worker {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  const worker = new Worker(script, { ...options, workerData: { [KEY]: gate.buffer } });
  gates.set(worker, gate);
  return worker;
}

/**
 * Terminates a thread of startThread's once it is outside every critical
 * section (waiting at most SECTION_WAIT_MS for one to end), then waits at
 * most graceMs for the thread to be gone.
 */
export async function endThread(worker: Worker, graceMs?: number): Promise<void> {
  const gate = gates.get(worker);
  if (gate) {
    const deadline = Date.now() + SECTION_WAIT_MS;
    while (Atomics.compareExchange(gate, 0, FREE, CLOSED) === BUSY) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const w = Atomics.waitAsync(gate, 0, BUSY, left);
      if (w.async) await w.value;
    }
  }
  const terminated = worker.terminate().then(
    () => undefined,
    () => undefined,
  );
  if (graceMs === undefined) return terminated;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([terminated, new Promise<void>((r) => (timer = setTimeout(r, graceMs).unref()))]);
  clearTimeout(timer);
}
