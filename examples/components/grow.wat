;; A hand-written command component that grows its memory by 1 MiB (16
;; pages) for each argument after argv[0] and exits 0; a grow that fails
;; traps (unreachable), as an allocator's out-of-memory abort does. For
;; memory limits on components (the Rust examples' old allocator and jco's
;; preview1 adapter do not mix with large allocations: see README).
(component
  (import "wasi:cli/exit@0.2.12" (instance $exit
    (export "exit-with-code" (func (param "status-code" u8)))))
  (import "wasi:cli/environment@0.2.12" (instance $env
    (export "get-arguments" (func (result (list string))))))
  (core module $libc
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $p) (local.get 3)))
      (local.get $p)))
  (core instance $libc (instantiate $libc))
  (core func $exit_with_code (canon lower (func $exit "exit-with-code")))
  (core func $get_arguments (canon lower (func $env "get-arguments")
    (memory (core memory $libc "memory")) (realloc (core func $libc "realloc")) string-encoding=utf8))
  (core module $main
    (import "host" "exit-with-code" (func $exit_with_code (param i32)))
    (import "host" "get-arguments" (func $get_arguments (param i32)))
    (import "libc" "memory" (memory 1))
    (func (export "run") (result i32)
      (local $n i32)
      (call $get_arguments (i32.const 16))
      (local.set $n (i32.sub (i32.load (i32.const 20)) (i32.const 1)))
      (block $done
        (loop $grow
          (br_if $done (i32.le_s (local.get $n) (i32.const 0)))
          (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $grow)))
      (call $exit_with_code (i32.const 0))
      (i32.const 0)))
  (core instance $main (instantiate $main
    (with "host" (instance (export "exit-with-code" (func $exit_with_code)) (export "get-arguments" (func $get_arguments))))
    (with "libc" (instance $libc))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.12" (instance $run)))
