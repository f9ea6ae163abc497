// Where a handler thread's component comes from, and what its guest imports.
//
//   container  the host is the container's init: the transpiled entry is a
//              directory inside the container (its glue imported from there,
//              its core modules compiled by serve.ts), the guest's stdio is
//              the process's, its files are the container's (componentShim).
//   hosted     a guest of a shared host (pod, process): the host read the
//              glue through its cache entry's descriptor and got the core
//              modules instrumented and compiled from its module cache; the
//              guest's stdio, root, preopens and host directories are
//              descriptors (shared/guest-imports.ts), and its instances run
//              under the guest's control array (shared/cores.ts: yield points
//              that wait while paused, grows within its memory limit, memory
//              and CPU summed over all its threads).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { componentShim, type ShimOverrides } from '../component-shim.js';
import type { GuestConfig } from '../guest-config.js';
import { coreModuleOf, loadGlue, loadGlueFile, type Instantiate } from '../shared/component-glue.js';
import type { HostedComponentCode, HostedGuestView } from '../shared/component-protocol.js';
import { Cores } from '../shared/cores.js';
import { hostedGuestImports } from '../shared/guest-imports.js';
import type { GlueHooks, InstanceWatch } from './reset.js';

export interface ContainerComponent {
  kind: 'container';
  config: GuestConfig;
  /** Its core modules by file name, compiled once for every thread; missing ones are compiled by the thread. */
  modules?: ReadonlyMap<string, WebAssembly.Module>;
}

export interface HostedHttpComponent {
  kind: 'hosted';
  code: HostedComponentCode;
  guest: HostedGuestView;
  /** The guest's control array (component-protocol.ts CTL), shared by all its threads and its host. */
  ctl: SharedArrayBuffer;
}

export type HttpComponentSource = ContainerComponent | HostedHttpComponent;

/** How a handler thread makes instances of its component. */
export interface ComponentMaker {
  /** The guest's imports, with the thread's own interfaces in place of the shim's. */
  imports(overrides: ShimOverrides): object;
  /**
   * One instance, made synchronously, with its core instances in the order
   * made (direct-handle.ts finds the handler's core export among them; `watch`
   * sees each, what it was given, and the glue's handle tables: reset.ts) and
   * what to call before entering it (a shared host's yield point);
   * `release` when it is let go (its memory no longer counts as the guest's).
   */
  instantiate(imports: object, watch: InstanceWatch, adjust?: AdjustImports): { instance: Record<string, unknown>; cores: WebAssembly.Instance[]; enter?: () => void; release(): void };
}

/** What the server changes in the imports jco's glue gives a core module (drops.ts). */
export type AdjustImports = (imports: WebAssembly.Imports | undefined) => WebAssembly.Imports | undefined;

/**
 * instantiateCore wrapped to show `watch` each core instance made (its
 * imports adjusted first); the patched glue finds the watch's hooks on it
 * (`instantiateCore.tugboat`, linux-runtime/component-reset.ts).
 */
function keeping(watch: InstanceWatch, make: (m: WebAssembly.Module, i?: WebAssembly.Imports) => WebAssembly.Instance, adjust: AdjustImports | undefined) {
  const instantiateCore = (m: WebAssembly.Module, i?: WebAssembly.Imports) => {
    const given = adjust ? adjust(i) : i;
    const core = make(m, given);
    watch.made(core, given);
    return core;
  };
  return Object.assign(instantiateCore, { tugboat: watch satisfies GlueHooks });
}

function containerMaker(c: ContainerComponent, instantiate: Instantiate): ComponentMaker {
  const component = c.config.component!;
  const modules = new Map(c.modules ?? []);
  const getCoreModule = (name: string) => {
    let m = modules.get(name);
    if (!m) modules.set(name, (m = new WebAssembly.Module(readFileSync(join(component.dir, name)))));
    return m;
  };
  const instantiateCore = (m: WebAssembly.Module, i?: WebAssembly.Imports) => new WebAssembly.Instance(m, i);
  return {
    imports: (overrides) => componentShim(c.config, overrides).getImportObject(),
    instantiate: (imports, watch, adjust) => ({ instance: instantiate(getCoreModule, imports, keeping(watch, instantiateCore, adjust)), cores: watch.cores, release: () => undefined }),
  };
}

/**
 * The instance's exported functions, each entered through a yield point: a
 * paused guest's handler does not start a request (its core modules' own
 * yield points only come in loops and deep calls, which a short handler
 * never reaches), as a frozen cgroup's process would not.
 */
function pausable(instance: Record<string, unknown>, yieldPoint: () => void): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, iface] of Object.entries(instance)) {
    if (typeof iface !== 'object' || iface === null) {
      out[name] = iface;
      continue;
    }
    const wrapped: Record<string, unknown> = {};
    for (const [fn, f] of Object.entries(iface as Record<string, unknown>)) {
      wrapped[fn] =
        typeof f === 'function'
          ? (...args: unknown[]) => {
              yieldPoint();
              return (f as (...a: unknown[]) => unknown)(...args);
            }
          : f;
    }
    out[name] = wrapped;
  }
  return out;
}

function hostedMaker(c: HostedHttpComponent, instantiate: Instantiate): ComponentMaker {
  const cores = new Cores(new Int32Array(c.ctl));
  const getCoreModule = coreModuleOf(c.code.modules);
  return {
    imports: (overrides) => hostedGuestImports(c.guest, overrides),
    instantiate: (imports, watch, adjust) => {
      const { value, release } = cores.track(() => instantiate(getCoreModule, imports, keeping(watch, cores.instantiate, adjust)));
      return { instance: pausable(value, cores.yieldPoint), cores: watch.cores, enter: cores.yieldPoint, release };
    },
  };
}

/** The component's glue, loaded on this thread; throws when it cannot be (the caller's link error). */
export async function componentMaker(source: HttpComponentSource): Promise<ComponentMaker> {
  if (source.kind === 'hosted') return hostedMaker(source, await loadGlue(source.code.glue));
  const component = source.config.component;
  if (!component) throw new Error('not a component');
  const instantiate = await loadGlueFile(component.dir, component.entry);
  return containerMaker(source, instantiate);
}
