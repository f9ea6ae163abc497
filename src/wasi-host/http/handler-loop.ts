// A reused instance's requests, served by one long-lived JSPI call instead
// of one per request. A tiny core module of ours loops: it asks for the
// next request (an import that suspends while there is none), calls the
// guest's handle export with its two handles (a direct wasm-to-wasm call),
// and asks again. The guest's own waits (a body not yet arrived) suspend the
// same stack.
//
// Why: each WebAssembly.promising call allocates a suspender and a stack
// whose objects outlive the young generation (measured: ~300 bytes per
// request promoted, three quarters of all a request promoted). With the
// loop a request costs one promise: the next() that resumes the loop.
//
// Only for instances that serve many requests (reused, or put back as made
// between requests: reset.ts, which runs in the loop's next(), when the
// guest has no frame left): a fresh instance per request keeps the plain
// call (a loop would cost a module instance and a stack more, for one
// request).

/**
 * (module
 *   (import "l" "handle" (func $handle (param i32 i32)))
 *   (import "l" "next" (func $next (result i32)))      ;; a request handle, or -1: stop
 *   (import "l" "out" (func $out (result i32)))        ;; the response-outparam of that request
 *   (func (export "serve") (local $r i32)
 *     block $done
 *       loop $l
 *         call $next  local.tee $r  i32.const -1  i32.eq  br_if $done
 *         local.get $r  call $out  call $handle
 *         br $l
 *       end
 *     end))
 */
// prettier-ignore
const LOOP_MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  // types: (i32 i32) -> (), () -> i32, () -> ()
  0x01, 0x0d, 0x03, 0x60, 0x02, 0x7f, 0x7f, 0x00, 0x60, 0x00, 0x01, 0x7f, 0x60, 0x00, 0x00,
  // imports: l.handle (type 0), l.next (type 1), l.out (type 1)
  0x02, 0x1d, 0x03,
  0x01, 0x6c, 0x06, 0x68, 0x61, 0x6e, 0x64, 0x6c, 0x65, 0x00, 0x00,
  0x01, 0x6c, 0x04, 0x6e, 0x65, 0x78, 0x74, 0x00, 0x01,
  0x01, 0x6c, 0x03, 0x6f, 0x75, 0x74, 0x00, 0x01,
  // functions: one of type 2
  0x03, 0x02, 0x01, 0x02,
  // exports: "serve" = func 3
  0x07, 0x09, 0x01, 0x05, 0x73, 0x65, 0x72, 0x76, 0x65, 0x00, 0x03,
  // code: one body of 27 bytes, one i32 local
  0x0a, 0x1d, 0x01, 0x1b, 0x01, 0x01, 0x7f,
  0x02, 0x40, 0x03, 0x40,
  0x10, 0x01, 0x22, 0x00, 0x41, 0x7f, 0x46, 0x0d, 0x01,
  0x20, 0x00, 0x10, 0x02, 0x10, 0x00, 0x0c, 0x00,
  0x0b, 0x0b, 0x0b,
]);

let compiled: WebAssembly.Module | undefined;

/** Hears how a call ended: the guest's handle returned, or failed. */
export interface CallDone {
  done(): void;
  fail(err: unknown): void;
}

const STOP = -1;

export class HandlerLoop {
  // The call the loop is serving, and one given before the loop came back
  // for it: fields, not a record per call (the request's own object hears
  // the end; a call costs no allocation of ours).
  #current: CallDone | undefined;
  #currentOut = 0;
  #queued: CallDone | undefined;
  #queuedRequest = 0;
  #queuedOut = 0;
  /** Resumes the loop waiting in next(). */
  #resume: ((request: number) => void) | undefined;
  #ended: unknown;
  #over = false;
  readonly #enter: (() => void) | undefined;

  /** `handle`: the guest's core export; `enter`: what to call before the guest runs a request (a shared host's yield point). */
  constructor(handle: (request: number, outparam: number) => void, enter?: () => void) {
    this.#enter = enter;
    compiled ??= new WebAssembly.Module(LOOP_MODULE);
    const instance = new WebAssembly.Instance(compiled, {
      l: {
        handle,
        next: new WebAssembly.Suspending(() => this.#next()),
        out: () => this.#currentOut,
      },
    });
    WebAssembly.promising(instance.exports.serve as () => void)().then(
      () => this.#end(new Error('the instance was let go')),
      (err: unknown) => this.#end(err),
    );
  }

  /** Serves one request; `done` hears when the guest's handle returns, or fails (the loop is then over). */
  call(request: number, outparam: number, done: CallDone): void {
    if (this.#over) {
      done.fail(this.#ended);
      return;
    }
    const resume = this.#resume;
    if (!resume) {
      this.#queued = done;
      this.#queuedRequest = request;
      this.#queuedOut = outparam;
      return;
    }
    this.#resume = undefined;
    this.#current = done;
    this.#currentOut = outparam;
    this.#enter?.();
    resume(request);
  }

  /** No more requests: the loop returns and its stack goes. */
  close(): void {
    if (this.#over) return;
    this.#over = true;
    this.#ended = new Error('the instance was let go');
    this.#queued?.fail(this.#ended);
    this.#queued = undefined;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.(STOP);
  }

  /** The loop asks for the next request: the one it served is over. */
  #next(): number | Promise<number> {
    const served = this.#current;
    this.#current = undefined;
    served?.done();
    if (this.#over) return STOP;
    const queued = this.#queued;
    if (queued) {
      this.#queued = undefined;
      this.#current = queued;
      this.#currentOut = this.#queuedOut;
      this.#enter?.();
      return this.#queuedRequest;
    }
    return new Promise<number>((resolve) => (this.#resume = resolve));
  }

  /** The loop ended: a trap (or the guest's exit) in the request it served, or a close. */
  #end(err: unknown): void {
    this.#over = true;
    this.#ended ??= err;
    this.#current?.fail(err);
    this.#current = undefined;
    this.#queued?.fail(err);
    this.#queued = undefined;
  }
}
