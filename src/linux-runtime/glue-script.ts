// jco's glue made ready for a fast start: the ES module turned into a classic
// script, and V8's code cache of that script, both written read-only into
// the cache entry beside the glue (wasi-host/shared/component-glue.ts loads
// them in the container).
//
// Why a script: Node's own compile cache is written when a module is
// imported, which would run the glue's top level here, outside any
// container. A script is compiled without running (vm.Script), and its code
// cache taken from that compile.
//
// Why the instantiate function is wrapped in parentheses: V8 compiles a
// function lazily, at its first call, unless it is parenthesised; the code
// cache holds only what was compiled. jco's instantiate is one function of
// 0.3-1 MB, ~18 ms to compile at the first instance of every handler thread.
//
// Trust: the cache is V8 bytecode the host runs as it is. It is made here,
// by the same trusted step that writes the glue itself, and is as read-only
// in the container as the glue: whoever could change the one could change
// the other. V8 takes it only for the same script text, V8 version and
// flags; anything else and the host compiles the script, as it would the
// module.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GLUE_CODE_CACHE, GLUE_SCRIPT } from '../wasi-host/shared/component-glue.js';

const HEAD = 'export function instantiate(';
const TAIL = '\n};\n\nexport const _util';
const META_URL = 'import.meta.url';

function count(text: string, part: string): number {
  return text.split(part).length - 1;
}

/**
 * The glue as a script whose value is a function returning instantiate, or
 * why it cannot be one (jco's output is not the shape this knows: then the
 * host imports the module, as before).
 */
export function glueAsScript(glue: string): string | { why: string } {
  if (count(glue, HEAD) !== 1 || count(glue, TAIL) !== 1) return { why: 'instantiate is not one exported function followed by _util' };
  // The two exports are all: a script has no import or export statements.
  if (glue.split('\n').filter((l) => /^\s*(export|import)\b/.test(l) && !l.trimStart().startsWith('import(')).length !== 2) return { why: 'the glue has other import or export statements' };
  // import.meta is a module's only: jco names it once, for the core modules'
  // URL when no getCoreModule is given. Tugboat always gives one; the URL
  // is then never built.
  if (count(glue, 'import.meta') !== count(glue, META_URL) || count(glue, META_URL) > 1) return { why: 'the glue uses import.meta beyond its core modules URL' };
  const body = glue.replace(HEAD, 'const instantiate = (function instantiate(').replace(TAIL, '\n});\n\nconst _util').replace(META_URL, 'undefined');
  return `(function () {\n'use strict';\n${body}\nreturn instantiate;\n})`;
}

/** Writes the entry's glue script and its code cache into `dir`; returns why not, when not. */
export async function writeGlueScript(dir: string, glue: string): Promise<string | undefined> {
  const script = glueAsScript(glue);
  if (typeof script !== 'string') return script.why;
  let cache: Buffer;
  try {
    // node:vm only here, at a transpile: not on every command of the CLI (cli-start.test.ts).
    cache = new (process.getBuiltinModule('node:vm').Script)(script, { filename: GLUE_SCRIPT }).createCachedData();
  } catch (err) {
    return `the glue script does not compile: ${(err as Error).message}`;
  }
  await writeFile(join(dir, GLUE_SCRIPT), script, { mode: 0o444 });
  await writeFile(join(dir, GLUE_CODE_CACHE), cache, { mode: 0o444 });
  return undefined;
}
