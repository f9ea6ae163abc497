// Tugboat's own wasi_snapshot_preview1 host (see guest.ts).
export { Guest, defaultPreopens, type GuestOptions, type GuestOutcome, type Preopen } from './guest.js';
export { setOpenat2 } from './resolve.js';
