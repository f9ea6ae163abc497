;; A wasi:http/incoming-handler written by hand, to measure the host rather
;; than a JavaScript engine (see README.md in this folder). It is a core
;; module; make-components.mjs embeds the world in http-bench.wit and makes it
;; a component with jco's wasm-tools (componentEmbed, componentNew).
;;
;;   any path          reads the request body to its end, then answers 200
;;                     "hello from a wasm component\n" with the request's
;;                     x-echo header copied, x-body-bytes (bytes read) and
;;                     x-instance-requests (requests this instance served)
;;   /echo             answers 200 at once and streams the body back
;;   /download/N       answers 200 with N zero bytes (64 KiB writes)
;;   /trap             traps (unreachable)
;;
;; Every write is blocking-write-and-flush and every read blocking-read, so
;; the host's backpressure is what bounds memory in both directions.
;;
;; The custom section io.tugboat.http.reuse declares that an instance may
;; serve many requests, one after another: nothing here outlives a request
;; but the request counter.
(module
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields.new (result i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.get" (func $fields.get (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.append" (func $fields.append (param i32 i32 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.path-with-query" (func $req.path (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.headers" (func $req.headers (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.consume" (func $req.consume (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-body.stream" (func $ibody.stream (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response" (func $resp.new (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body" (func $resp.body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write" (func $obody.write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish" (func $obody.finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set"
    (func $outparam.set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]fields" (func $fields.drop (param i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request" (func $req.drop (param i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-body" (func $ibody.drop (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]input-stream.blocking-read" (func $in.read (param i32 i64 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush" (func $out.write (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]input-stream" (func $in.drop (param i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream" (func $out.drop (param i32)))
  (import "wasi:io/error@0.2.12" "[resource-drop]error" (func $error.drop (param i32)))

  (memory (export "memory") 2)
  ;; 0..64: return areas. 256..: constant strings. 1024..66560: zeros for
  ;; /download. Above: the heap, a bump allocator reset for every request.
  (global $ret i32 (i32.const 16))
  (global $zeros i32 (i32.const 1024))
  (global $heap-base (mut i32) (i32.const 66560))
  (global $heap (mut i32) (i32.const 66560))
  (global $served (mut i64) (i64.const 0))
  (data (i32.const 256) "x-echo")                       ;; 6
  (data (i32.const 272) "x-instance-requests")          ;; 19
  (data (i32.const 296) "x-body-bytes")                 ;; 12
  (data (i32.const 320) "hello from a wasm component\n") ;; 28
  (data (i32.const 352) "/echo")                        ;; 5
  (data (i32.const 360) "/download/")                   ;; 10
  (data (i32.const 376) "/trap")                        ;; 5
  ;; 384..416: digits of a number being formatted

  (@custom "io.tugboat.http.reuse" "")

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

  ;; The decimal digits at [p, p+len) (up to a non-digit).
  (func $parse (param $p i32) (param $len i32) (result i64)
    (local $n i64) (local $c i32) (local $end i32)
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
        (br_if $done (i32.gt_u (local.get $c) (i32.const 9)))
        (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; Formats n at 384..416; returns its length (the digits end at 416).
  (func $format (param $n i64) (result i32)
    (local $p i32)
    (local.set $p (i32.const 416))
    (loop $next
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $n) (i64.const 10))))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (br_if $next (i64.ne (local.get $n) (i64.const 0))))
    (i32.sub (i32.const 416) (local.get $p)))

  ;; Appends name = n (decimal) to fields f.
  (func $append-number (param $f i32) (param $name i32) (param $name-len i32) (param $n i64)
    (local $len i32)
    (local.set $len (call $format (local.get $n)))
    (call $fields.append (local.get $f) (local.get $name) (local.get $name-len)
      (i32.sub (i32.const 416) (local.get $len)) (local.get $len) (global.get $ret)))

  ;; Drops the error of a failed stream operation whose result is at $ret.
  (func $drop-stream-error
    (if (i32.eqz (i32.load8_u offset=4 (global.get $ret)))
      (then (call $error.drop (i32.load offset=8 (global.get $ret))))))

  ;; Reads input stream s to its end; returns the number of bytes read.
  (func $drain (param $s i32) (result i64)
    (local $total i64)
    (block $done
      (loop $next
        (global.set $heap (global.get $heap-base))
        (call $in.read (local.get $s) (i64.const 65536) (global.get $ret))
        (if (i32.load8_u (global.get $ret))
          (then (call $drop-stream-error) (br $done)))
        (local.set $total (i64.add (local.get $total) (i64.extend_i32_u (i32.load offset=8 (global.get $ret)))))
        (br $next)))
    (local.get $total))

  ;; Writes [p, p+len) to output stream s; returns 0 when the stream failed.
  (func $write (param $s i32) (param $p i32) (param $len i32) (result i32)
    (call $out.write (local.get $s) (local.get $p) (local.get $len) (global.get $ret))
    (if (i32.load8_u (global.get $ret))
      (then (call $drop-stream-error) (return (i32.const 0))))
    (i32.const 1))

  ;; Copies input stream in to output stream out, chunk by chunk.
  (func $echo (param $in i32) (param $out i32)
    (block $done
      (loop $next
        (global.set $heap (global.get $heap-base))
        (call $in.read (local.get $in) (i64.const 65536) (global.get $ret))
        (if (i32.load8_u (global.get $ret))
          (then (call $drop-stream-error) (br $done)))
        (br_if $done (i32.eqz (call $write (local.get $out)
          (i32.load offset=4 (global.get $ret)) (i32.load offset=8 (global.get $ret)))))
        (br $next))))

  ;; Writes n zero bytes to output stream out.
  (func $zeroes (param $out i32) (param $n i64)
    (local $chunk i32)
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $chunk (select (i32.const 65536) (i32.wrap_i64 (local.get $n)) (i64.gt_u (local.get $n) (i64.const 65536))))
        (br_if $done (i32.eqz (call $write (local.get $out) (global.get $zeros) (local.get $chunk))))
        (local.set $n (i64.sub (local.get $n) (i64.extend_i32_u (local.get $chunk))))
        (br $next))))

  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $req i32) (param $outparam i32)
    (local $path i32) (local $path-len i32) (local $headers i32)
    (local $echo i32) (local $echo-len i32)
    (local $ibody i32) (local $in i32) (local $resp-headers i32) (local $resp i32) (local $obody i32) (local $out i32)
    (local $mode i32) (local $read i64)
    (global.set $heap (global.get $heap-base))
    (global.set $served (i64.add (global.get $served) (i64.const 1)))

    ;; The path (none → empty).
    (call $req.path (local.get $req) (global.get $ret))
    (if (i32.load8_u (global.get $ret))
      (then
        (local.set $path (i32.load offset=4 (global.get $ret)))
        (local.set $path-len (i32.load offset=8 (global.get $ret)))))
    (if (call $starts-with (local.get $path) (local.get $path-len) (i32.const 376) (i32.const 5))
      (then unreachable))
    ;; mode 1: /echo, mode 2: /download/N, mode 0: read and answer.
    (if (call $starts-with (local.get $path) (local.get $path-len) (i32.const 352) (i32.const 5))
      (then (local.set $mode (i32.const 1))))
    (if (call $starts-with (local.get $path) (local.get $path-len) (i32.const 360) (i32.const 10))
      (then (local.set $mode (i32.const 2))))

    ;; The first x-echo value, copied out of the heap (which reads reuse).
    (local.set $headers (call $req.headers (local.get $req)))
    (call $fields.get (local.get $headers) (i32.const 256) (i32.const 6) (global.get $ret))
    (if (i32.load offset=4 (global.get $ret))
      (then
        (local.set $echo (i32.load (i32.load (global.get $ret))))
        (local.set $echo-len (i32.load offset=4 (i32.load (global.get $ret))))))
    (call $fields.drop (local.get $headers))

    (call $req.consume (local.get $req) (global.get $ret))
    (local.set $ibody (i32.load offset=4 (global.get $ret)))
    (call $ibody.stream (local.get $ibody) (global.get $ret))
    (local.set $in (i32.load offset=4 (global.get $ret)))

    (local.set $resp-headers (call $fields.new))
    (if (local.get $echo-len)
      (then (call $fields.append (local.get $resp-headers) (i32.const 256) (i32.const 6)
        (local.get $echo) (local.get $echo-len) (global.get $ret))))
    (call $append-number (local.get $resp-headers) (i32.const 272) (i32.const 19) (global.get $served))
    (if (i32.eqz (local.get $mode))
      (then
        ;; The heap above the echo value is free for the reads.
        (global.set $heap-base (global.get $heap))
        (local.set $read (call $drain (local.get $in)))
        (global.set $heap-base (i32.const 66560))
        (call $append-number (local.get $resp-headers) (i32.const 296) (i32.const 12) (local.get $read))))
    (local.set $resp (call $resp.new (local.get $resp-headers)))
    (call $resp.body (local.get $resp) (global.get $ret))
    (local.set $obody (i32.load offset=4 (global.get $ret)))
    (call $outparam.set (local.get $outparam) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $obody.write (local.get $obody) (global.get $ret))
    (local.set $out (i32.load offset=4 (global.get $ret)))

    (if (i32.eq (local.get $mode) (i32.const 1))
      (then (call $echo (local.get $in) (local.get $out))))
    (if (i32.eq (local.get $mode) (i32.const 2))
      (then
        (call $zeroes (local.get $out)
          (call $parse (i32.add (local.get $path) (i32.const 10)) (i32.sub (local.get $path-len) (i32.const 10))))))
    (if (i32.eqz (local.get $mode))
      (then (drop (call $write (local.get $out) (i32.const 320) (i32.const 28)))))

    (call $in.drop (local.get $in))
    (call $ibody.drop (local.get $ibody))
    (call $out.drop (local.get $out))
    (call $obody.finish (local.get $obody) (i32.const 0) (i32.const 0) (global.get $ret))
    (call $req.drop (local.get $req))))
