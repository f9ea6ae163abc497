// A component's glue (jco's instantiate) from its text, and its core modules: a shared host reads
// the glue through its cache entry's descriptor, never by path, and its
// threads import it from a data: URL (the glue imports nothing itself).
export type Instantiate = (
  getCoreModule: (name: string) => WebAssembly.Module,
  imports: object,
  instantiateCore: (m: WebAssembly.Module, i?: WebAssembly.Imports) => WebAssembly.Instance,
) => Record<string, unknown>;

export async function loadGlue(glue: string): Promise<Instantiate> {
  const url = `data:text/javascript;base64,${Buffer.from(glue).toString('base64')}`;
  return ((await import(url)) as { instantiate: Instantiate }).instantiate;
}

/** jco's getCoreModule over the modules the host compiled. */
export function coreModuleOf(modules: Readonly<Record<string, WebAssembly.Module>>): (name: string) => WebAssembly.Module {
  return (name) => {
    const m = modules[name];
    if (!m) throw new Error(`the component has no core module ${name}`);
    return m;
  };
}
