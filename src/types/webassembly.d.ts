// The slice of the WebAssembly JS API that Tugboat uses. TypeScript only ships
// it inside lib.dom, which would drag browser globals into a Node program.
declare namespace WebAssembly {
  class Module {
    constructor(bytes: BufferSource);
    static exports(module: Module): { name: string; kind: string }[];
    static imports(module: Module): { module: string; name: string; kind: string }[];
  }
  class Instance {
    constructor(module: Module, imports?: Imports);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
    readonly buffer: ArrayBuffer;
    grow(delta: number): number;
  }
  class Global {
    constructor(descriptor: { value: 'i32' | 'i64' | 'f32' | 'f64'; mutable?: boolean }, value?: number);
    value: number;
  }
  class CompileError extends Error {}
  class LinkError extends Error {}
  class RuntimeError extends Error {}
  type BufferSource = ArrayBufferView | ArrayBuffer;
  type Imports = Record<string, Record<string, unknown>>;
  function compile(bytes: BufferSource): Promise<Module>;
  function validate(bytes: BufferSource): boolean;
  function instantiate(module: Module, imports?: Imports): Promise<Instance>;
  /** JS Promise Integration (on by default in Node 26): an import that may suspend the calling Wasm stack. */
  class Suspending {
    constructor(fn: (...args: never[]) => unknown);
  }
  /** Wraps an export so that its Suspending imports can suspend; returns a promise of its result. */
  function promising<F extends (...args: never[]) => unknown>(fn: F): (...args: Parameters<F>) => Promise<Awaited<ReturnType<F>>>;
}
