// The guest's wasi:http/incoming-handler#handle, called straight: its core
// export through our own JSPI wrapper, its two arguments put into jco's
// handle tables by us, as jco's glue would.
//
// Why: jco's glue for a JSPI-async export runs its Preview 3 task machinery
// on every call (a task object, an exclusive lock, two async wrappers that
// record the current task, debug hooks): measured ~30 µs and much garbage
// per request, about as much as all of Node's own request handling. Nothing
// on the request's path needs a task: the functions the guest calls are
// lowered by us (abi.ts), jco's own resource drops need none, and an
// instance serves one request at a time (the pool).
//
// Falls back to the glue (undefined) when the instance does not tell us
// where the two handles go: the export is not found exactly once, or the
// tables of incoming-request and response-outparam cannot be worked out
// from the functions the guest imports.
import { tableCreateOwn, type TableRoles } from './abi.js';
import { HandlerLoop, type CallDone } from './handler-loop.js';

const HANDLE_EXPORT = /^wasi:http\/incoming-handler@0\.2\.\d+#handle$/;

/** handle(request, response-outparam) with the reps the two host objects were given; `done` hears the end of it. */
export interface DirectHandle {
  call(requestRep: number, outparamRep: number, done: CallDone): void;
  /** The instance is let go. */
  close(): void;
}

export interface DirectOptions {
  /** Will the instance serve many requests (then one long-lived loop serves them: handler-loop.ts)? */
  reuse: boolean;
  /** Called before the guest runs each request (a shared host's yield point, where a paused guest waits). */
  enter?: () => void;
}

/** The direct call of an instance just made from `cores` (its core instances, in the order made). */
export function directHandle(cores: readonly WebAssembly.Instance[], roles: TableRoles, options: DirectOptions): DirectHandle | undefined {
  const found: ((request: number, outparam: number) => void)[] = [];
  for (const core of cores) {
    for (const [name, value] of Object.entries(core.exports)) {
      if (HANDLE_EXPORT.test(name) && typeof value === 'function') found.push(value as (request: number, outparam: number) => void);
    }
  }
  if (found.length !== 1) return undefined;
  const requests = roles.tableFor('incoming-request');
  const outparams = roles.tableFor('response-outparam');
  if (!requests || !outparams || requests === outparams) return undefined;
  if (options.reuse) {
    const loop = new HandlerLoop(found[0]!, options.enter);
    return { call: (req, out, done) => loop.call(tableCreateOwn(requests, req), tableCreateOwn(outparams, out), done), close: () => loop.close() };
  }
  const handle = WebAssembly.promising(found[0]!);
  const enter = options.enter;
  return {
    call: (req, out, done) => {
      enter?.();
      handle(tableCreateOwn(requests, req), tableCreateOwn(outparams, out)).then(
        () => done.done(),
        (err: unknown) => done.fail(err),
      );
    },
    close: () => undefined,
  };
}
