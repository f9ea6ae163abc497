// Rewrites guest modules before they are compiled for a shared host: memory
// caps and yield points. See instrument.ts.
export {
  capMemory,
  DEFAULT_YIELD_INTERVAL,
  GROW_IMPORT,
  insertYieldPoints,
  instrument,
  START_EXPORT,
  YIELD_IMPORT,
  type GrowHookReport,
  type InstrumentOptions,
  type InstrumentReport,
  type InstrumentResult,
  type MemoryCapReport,
  type YieldPointReport,
} from './instrument.js';
export { decodeModule, type DecodedModule } from './decode.js';
export { encodeModule } from './encode.js';
