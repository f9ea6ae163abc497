// Rewrites guest modules before they are compiled for a shared host: memory
// caps and yield points (instrument.ts), state exports for resetting an
// instance (state-exports.ts).
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
export { exportState, STATE_EXPORT_PREFIX, type StateReport, type StateResult } from './state-exports.js';
export { decodeModule, type DecodedModule } from './decode.js';
export { encodeModule } from './encode.js';
