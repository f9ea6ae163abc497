// Entry of dist/host/component.mjs: a `container`-level component's worker (component-run.ts).
import { runComponentWorker } from './component-run.js';

runComponentWorker();
