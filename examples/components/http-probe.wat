;; A wasi:http/incoming-handler that shows what its guest can reach, for the
;; tests that keep guests of one host apart (see README.md in this folder).
;; A core module; make-components.mjs embeds the world in http-probe.wit and
;; makes it a component with jco's wasm-tools.
;;
;;   /env              200, the guest's environment, one NAME=value a line
;;   /file/PATH        200 and the bytes of PATH (up to 4 KiB), opened
;;                     beneath the guest's first preopen ("/"): PATH as the
;;                     request gives it, "..", absolute and all; when the
;;                     open or the read fails: 404 "error N\n", N the
;;                     filesystem error-code's case
;;   /memo/TEXT        200 and the TEXT the previous request on this
;;                     instance left in its memory (empty on a fresh one),
;;                     then keeps TEXT (up to 512 bytes) for the next: what
;;                     a request could learn of another's if instances
;;                     were not fresh
;;   anything else     404 "no such probe\n"
(module
  (import "wasi:cli/environment@0.2.12" "get-environment" (func $get-env (param i32)))
  (import "wasi:filesystem/preopens@0.2.12" "get-directories" (func $get-dirs (param i32)))
  (import "wasi:filesystem/types@0.2.12" "[method]descriptor.open-at"
    (func $open-at (param i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:filesystem/types@0.2.12" "[method]descriptor.read" (func $fd.read (param i32 i64 i64 i32)))
  (import "wasi:filesystem/types@0.2.12" "[resource-drop]descriptor" (func $fd.drop (param i32)))
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields.new (result i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.path-with-query" (func $req.path (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response" (func $resp.new (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.set-status-code" (func $resp.status (param i32 i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body" (func $resp.body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write" (func $obody.write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish" (func $obody.finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set"
    (func $outparam.set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request" (func $req.drop (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush" (func $out.write (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream" (func $out.drop (param i32)))

  ;; 17 pages, just over 1 MiB: a reset of a memory this large copies back
  ;; only the pages the kernel saw written (src/wasi-host/http/written-pages.ts),
  ;; so /memo checks that path; smaller ones are copied back whole.
  (memory (export "memory") 17)
  ;; 0..64: return areas. 256..: constant strings. 1024..: the heap, a bump
  ;; allocator reset for every request.
  (global $ret i32 (i32.const 16))
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 256) "/env")             ;; 4
  (data (i32.const 264) "/file/")           ;; 6
  (data (i32.const 272) "=")                ;; 1
  (data (i32.const 276) "\n")               ;; 1
  (data (i32.const 280) "no such probe\n")  ;; 14
  (data (i32.const 296) "error ")           ;; 6
  ;; 320..324: digits of an error code
  (data (i32.const 332) "/memo/")           ;; 6
  ;; 476: the memo's length; 512..1024: the memo

  (func $cabi_realloc (export "cabi_realloc") (param $old i32) (param $old-size i32) (param $align i32) (param $size i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $p) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.lt_s
              (memory.grow (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16)) (memory.size)))
              (i32.const 0))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (if (local.get $old)
      (then (memory.copy (local.get $p) (local.get $old)
        (select (local.get $old-size) (local.get $size) (i32.lt_u (local.get $old-size) (local.get $size))))))
    (local.get $p))

  ;; Does [p, p+len) start with the len2 bytes at q?
  (func $starts-with (param $p i32) (param $len i32) (param $q i32) (param $len2 i32) (result i32)
    (local $i i32)
    (if (i32.lt_u (local.get $len) (local.get $len2)) (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len2)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.load8_u (i32.add (local.get $q) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  ;; Writes [p, p+len) to output stream s (each piece under blocking-write's 4 KiB).
  (func $write (param $s i32) (param $p i32) (param $len i32)
    (if (i32.eqz (local.get $len)) (then (return)))
    (call $out.write (local.get $s) (local.get $p) (local.get $len) (global.get $ret)))

  ;; Starts the response: status, a body, its stream; returns the stream (the body at $ret+32).
  (func $answer (param $outparam i32) (param $status i32) (result i32)
    (local $resp i32) (local $obody i32)
    (local.set $resp (call $resp.new (call $fields.new)))
    (drop (call $resp.status (local.get $resp) (local.get $status)))
    (call $resp.body (local.get $resp) (global.get $ret))
    (local.set $obody (i32.load offset=4 (global.get $ret)))
    (call $outparam.set (local.get $outparam) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $obody.write (local.get $obody) (global.get $ret))
    (i32.store offset=32 (global.get $ret) (local.get $obody))
    (i32.load offset=4 (global.get $ret)))

  (func $finish (param $out i32)
    (local $obody i32)
    (local.set $obody (i32.load offset=32 (global.get $ret)))
    (call $out.drop (local.get $out))
    (call $obody.finish (local.get $obody) (i32.const 0) (i32.const 0) (global.get $ret)))

  ;; 200 and NAME=value lines.
  (func $env (param $outparam i32)
    (local $out i32) (local $list i32) (local $n i32) (local $e i32)
    (call $get-env (global.get $ret))
    (local.set $list (i32.load (global.get $ret)))
    (local.set $n (i32.load offset=4 (global.get $ret)))
    (local.set $out (call $answer (local.get $outparam) (i32.const 200)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $e (local.get $list))
        (call $write (local.get $out) (i32.load (local.get $e)) (i32.load offset=4 (local.get $e)))
        (call $write (local.get $out) (i32.const 272) (i32.const 1))
        (call $write (local.get $out) (i32.load offset=8 (local.get $e)) (i32.load offset=12 (local.get $e)))
        (call $write (local.get $out) (i32.const 276) (i32.const 1))
        (local.set $list (i32.add (local.get $list) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (call $finish (local.get $out)))

  ;; 404 "error N\n".
  (func $error (param $outparam i32) (param $code i32)
    (local $out i32) (local $p i32)
    (local.set $out (call $answer (local.get $outparam) (i32.const 404)))
    (local.set $p (i32.const 324))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $code) (i32.const 10))))
      (local.set $code (i32.div_u (local.get $code) (i32.const 10)))
      (br_if $digit (local.get $code)))
    (call $write (local.get $out) (i32.const 296) (i32.const 6))
    (call $write (local.get $out) (local.get $p) (i32.sub (i32.const 324) (local.get $p)))
    (call $write (local.get $out) (i32.const 276) (i32.const 1))
    (call $finish (local.get $out)))

  ;; 200 and the file's bytes, or 404 and the error.
  (func $file (param $outparam i32) (param $path i32) (param $len i32)
    (local $root i32) (local $fd i32) (local $data i32) (local $data-len i32) (local $out i32)
    (call $get-dirs (global.get $ret))
    (if (i32.eqz (i32.load offset=4 (global.get $ret)))
      (then (call $error (local.get $outparam) (i32.const 999)) (return)))
    (local.set $root (i32.load (i32.load (global.get $ret))))
    ;; No symlink-follow, no open-flags, read only.
    (call $open-at (local.get $root) (i32.const 0) (local.get $path) (local.get $len) (i32.const 0) (i32.const 1) (global.get $ret))
    (call $fd.drop (local.get $root))
    (if (i32.load8_u (global.get $ret))
      (then (call $error (local.get $outparam) (i32.load8_u offset=4 (global.get $ret))) (return)))
    (local.set $fd (i32.load offset=4 (global.get $ret)))
    (call $fd.read (local.get $fd) (i64.const 4096) (i64.const 0) (global.get $ret))
    (call $fd.drop (local.get $fd))
    (if (i32.load8_u (global.get $ret))
      (then (call $error (local.get $outparam) (i32.load8_u offset=4 (global.get $ret))) (return)))
    (local.set $data (i32.load offset=4 (global.get $ret)))
    (local.set $data-len (i32.load offset=8 (global.get $ret)))
    (local.set $out (call $answer (local.get $outparam) (i32.const 200)))
    (call $write (local.get $out) (local.get $data) (local.get $data-len))
    (call $finish (local.get $out)))

  ;; 200 and the memo the last request left; TEXT is kept in its place.
  (func $memo (param $outparam i32) (param $text i32) (param $len i32)
    (local $out i32)
    (local.set $out (call $answer (local.get $outparam) (i32.const 200)))
    (call $write (local.get $out) (i32.const 512) (i32.load (i32.const 476)))
    (if (i32.gt_u (local.get $len) (i32.const 512)) (then (local.set $len (i32.const 512))))
    (memory.copy (i32.const 512) (local.get $text) (local.get $len))
    (i32.store (i32.const 476) (local.get $len))
    (call $finish (local.get $out)))

  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $req i32) (param $outparam i32)
    (local $path i32) (local $path-len i32) (local $out i32)
    (global.set $heap (i32.const 1024))
    (call $req.path (local.get $req) (global.get $ret))
    (if (i32.load8_u (global.get $ret))
      (then
        (local.set $path (i32.load offset=4 (global.get $ret)))
        (local.set $path-len (i32.load offset=8 (global.get $ret)))))
    (call $req.drop (local.get $req))
    (if (call $starts-with (local.get $path) (local.get $path-len) (i32.const 256) (i32.const 4))
      (then (call $env (local.get $outparam)) (return)))
    (if (call $starts-with (local.get $path) (local.get $path-len) (i32.const 332) (i32.const 6))
      (then
        (call $memo (local.get $outparam)
          (i32.add (local.get $path) (i32.const 6)) (i32.sub (local.get $path-len) (i32.const 6)))
        (return)))
    (if (call $starts-with (local.get $path) (local.get $path-len) (i32.const 264) (i32.const 6))
      (then
        (call $file (local.get $outparam)
          (i32.add (local.get $path) (i32.const 6)) (i32.sub (local.get $path-len) (i32.const 6)))
        (return)))
    (local.set $out (call $answer (local.get $outparam) (i32.const 404)))
    (call $write (local.get $out) (i32.const 280) (i32.const 14))
    (call $finish (local.get $out))))
