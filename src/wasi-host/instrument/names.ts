// The names an instrumented module shares with the host that runs it (kept
// apart from the instrumenter, so a host that only runs guests loads none of it).

/** The import the host provides (made `WebAssembly.Suspending`); type [] -> []. */
export const YIELD_IMPORT = { module: 'tugboat', name: 'yield' } as const;

/**
 * What every `memory.grow` of memory 0 becomes (type [i32] -> [i32], the
 * same contract as the instruction: the old size in pages, or -1). The host
 * grows the memory itself when the guest's limit allows it, so the limit can
 * change while the guest runs and a refused grow is known to the host (a
 * trap after one is the guest's OOM).
 */
export const GROW_IMPORT = { module: 'tugboat', name: 'memory_grow' } as const;

/**
 * The export a module's start function becomes. A Suspending import throws
 * when no WebAssembly.promising call is on the stack, and instantiation runs
 * the start function outside any; so the host calls this export, through
 * WebAssembly.promising, right after instantiating and before anything else.
 */
export const START_EXPORT = 'tugboat:start';

/**
 * Every export the state pass (state-exports.ts) adds starts with this:
 * `tugboat:state:memory:<i>` and `tugboat:state:global:<i>`, i the index in
 * the memory or global index space (imports first).
 */
export const STATE_EXPORT_PREFIX = 'tugboat:state:';
