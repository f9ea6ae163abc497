// Entry of dist/host/component.mjs: a `container`-level component's worker (component-run.ts).
import { workerData } from 'node:worker_threads';
import { adoptThreadGate } from '../thread-gate.js';
import { runComponentWorker } from './component-run.js';

// First: no terminate may land while this thread loads koffi (thread-gate.ts).
adoptThreadGate(workerData);
runComponentWorker();
