// What a Wasm component imports and exports, from its embedded WIT world
// (decoded by jco). Recorded in the CNCF artifact config and used to pick how
// the host runs a component (command vs wasi:http).
import { WasmError } from '../errors.js';

/** `import wasi:x/y@v;` / `export …;` lines of the component's world. */
export function worldItems(wit: string): { imports: string[]; exports: string[] } {
  const imports: string[] = [];
  const exports: string[] = [];
  for (const m of wit.matchAll(/^\s*(import|export)\s+([\w.:/@-]+)\s*;/gm)) {
    (m[1] === 'import' ? imports : exports).push(m[2]!);
  }
  return { imports, exports };
}

export async function componentWorld(bytes: Uint8Array): Promise<{ imports: string[]; exports: string[] }> {
  // jco is large; only component paths load it.
  const api = await import('@bytecodealliance/jco');
  try {
    return worldItems(await api.componentWit(bytes));
  } catch (err) {
    throw new WasmError(`cannot decode the component's WIT world: ${(err as Error).message ?? String(err)}`);
  }
}
