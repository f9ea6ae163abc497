// A component's glue (jco's instantiate), and its core modules. A
// container's host reads the glue from its cache entry by path (mounted
// read-only); a shared host reads it through the entry's descriptor, never by
// path, and its threads get the text.
//
// Either runs the glue as a classic script with the V8 code cache the
// transpile made for it (linux-runtime/glue-script.ts), where the entry has
// both: jco's glue is 0.3-1 MB of JavaScript, and compiling it (the module,
// then its one large instantiate function at the first call) took ~40 ms of
// a componentize-js container's start, on every handler thread; with the
// cache, ~6 ms. Else the glue is imported as the module (from a data: URL
// for a shared host's threads: the glue imports nothing itself).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { GlueCode } from './component-protocol.js';

export type Instantiate = (
  getCoreModule: (name: string) => WebAssembly.Module,
  imports: object,
  instantiateCore: (m: WebAssembly.Module, i?: WebAssembly.Imports) => WebAssembly.Instance,
) => Record<string, unknown>;

/** The glue as a classic script (a function expression that returns instantiate), beside the entry in the cache. */
export const GLUE_SCRIPT = 'component.script.js';
/** V8's code cache of GLUE_SCRIPT, made by the transpile (it compiled the script, and ran none of it). */
export const GLUE_CODE_CACHE = 'component.script.cache';

/** How the glue of a cache entry was loaded: from its script and code cache (and whether V8 took the cache), or as the module. */
export type GlueLoad = 'script+cache' | 'script, cache rejected' | 'module';

let lastLoad: GlueLoad | undefined;
/** How this thread last loaded a cache entry's glue (for tests and stats). */
export function lastGlueLoad(): GlueLoad | undefined {
  return lastLoad;
}

/** A shared host's guest's glue: its script with the code cache when the host read them, else the module from a data: URL. */
export async function loadGlue(glue: GlueCode): Promise<Instantiate> {
  if ('script' in glue) return fromScript<Instantiate>(glue.script, Buffer.from(glue.cache.buffer, glue.cache.byteOffset, glue.cache.byteLength), GLUE_SCRIPT);
  lastLoad = 'module';
  const url = `data:text/javascript;base64,${Buffer.from(glue.module).toString('base64')}`;
  return ((await import(url)) as { instantiate: Instantiate }).instantiate;
}

function fromScript<T>(source: string, cachedData: Buffer, filename: string): T {
  // node:vm when a glue is loaded, not with this module: the CLI imports the names above on every command (cli-start.test.ts).
  const script = new (process.getBuiltinModule('node:vm').Script)(source, { filename, cachedData });
  lastLoad = script.cachedDataRejected === true ? 'script, cache rejected' : 'script+cache';
  return (script.runInThisContext() as () => T)();
}

/**
 * The instantiate function of the cache entry in `dir`: its glue script with
 * its code cache when the entry has both, else `entry` imported as the module.
 * V8 checks the cache against the script's text, its own version and its
 * flags; a cache it does not take costs a compile, nothing else.
 */
export async function loadGlueFile<T = Instantiate>(dir: string, entry: string): Promise<T> {
  let source: string | undefined;
  let cachedData: Buffer | undefined;
  try {
    source = readFileSync(join(dir, GLUE_SCRIPT), 'utf8');
    cachedData = readFileSync(join(dir, GLUE_CODE_CACHE));
  } catch {
    // An entry of an older transpile, or a glue of a shape glue-script.ts does not know: neither file.
    source = undefined;
  }
  if (source !== undefined && cachedData !== undefined) return fromScript<T>(source, cachedData, pathToFileURL(join(dir, GLUE_SCRIPT)).href);
  lastLoad = 'module';
  return ((await import(pathToFileURL(join(dir, entry)).href)) as { instantiate: T }).instantiate;
}

/** jco's getCoreModule over the modules the host compiled. */
export function coreModuleOf(modules: Readonly<Record<string, WebAssembly.Module>>): (name: string) => WebAssembly.Module {
  return (name) => {
    const m = modules[name];
    if (!m) throw new Error(`the component has no core module ${name}`);
    return m;
  };
}
