// Ending the process while a component's worker thread is blocked in a system call.
//
// process.exit() joins every worker thread first, and a worker blocked in a
// WASI call (poll_oneoff sleeping, fd_read on a pipe) is only joined after
// that call returns, so a SIGTERM to a sleeping guest would take effect when
// the sleep ended. uvwasi's proc_exit with returnOnExit:false calls C exit()
// directly, which ends the whole process at once, whatever other threads do.
// It needs a started WASI instance, so we start one on a 70-byte module whose
// _start calls proc_exit with an imported code.

function name(s: string): number[] {
  return [s.length, ...Buffer.from(s, 'latin1')];
}

/** (module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))) (import "env" "code" (global i32))
 *          (memory (export "memory") 1) (func (export "_start") global.get 0 call 0)) */
export const EXIT_MODULE_BYTES = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  // type section: [(i32) -> ()], [() -> ()]
  0x01, 0x08, 0x02, 0x60, 0x01, 0x7f, 0x00, 0x60, 0x00, 0x00,
  // import section: proc_exit (func type 0), env.code (immutable i32 global)
  0x02, 0x30, 0x02, ...name('wasi_snapshot_preview1'), ...name('proc_exit'), 0x00, 0x00, ...name('env'), ...name('code'), 0x03, 0x7f, 0x00,
  // function section: one function of type 1
  0x03, 0x02, 0x01, 0x01,
  // memory section: one page (node:wasi insists on an exported memory)
  0x05, 0x03, 0x01, 0x00, 0x01,
  // export section: memory, _start = function 1
  0x07, 0x13, 0x02, ...name('memory'), 0x02, 0x00, ...name('_start'), 0x00, 0x01,
  // code section: global.get 0; call 0; end
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x23, 0x00, 0x10, 0x00, 0x0b,
]);

export function hardExit(code: number): never {
  // Loaded here: only component runs end this way, and a core module's start must not load node:wasi.
  const { WASI } = process.getBuiltinModule('node:wasi');
  const wasi = new WASI({ version: 'preview1', returnOnExit: false });
  const imports = { ...wasi.getImportObject(), env: { code: new WebAssembly.Global({ value: 'i32' }, code) } };
  wasi.start(new WebAssembly.Instance(new WebAssembly.Module(EXIT_MODULE_BYTES), imports));
  // Not reached; keeps the type checker honest if it ever were.
  process.exit(code);
}
