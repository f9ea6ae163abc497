#!/usr/bin/env bash
# `make demo`: a Wasm container and a Linux container, started side by side by
# the same runtime from the same kind of image, each confined by runc.
source "$(dirname "$0")/lib.sh"
fx="$ROOT/test/fixtures/out"
root="$(mktemp -d /tmp/tugboat-demo.XXXXXX)"
trap 'rm -rf "$root"' EXIT
tb() { "$ROOT/bin/tugboat" --root "$root" "$@"; }
wasm_out="$root/wasm.txt"; linux_out="$root/linux.txt"

log "running a Wasm and a Linux container at the same time"
( tb run --rm -e GREETING=ahoy "oci:$fx/wasm:hello" from the wasm side >"$wasm_out" 2>&1; echo "exit status: $?" >>"$wasm_out" ) &
( tb run --rm -e GREETING=ahoy "oci:$fx/busybox:latest" sh -c 'echo "hello from $(uname -s) $(uname -m)"; echo "args: sh -c ..."; echo "env: GREETING=$GREETING"; echo "pid 1 is $(cat /proc/1/comm)"; id' >"$linux_out" 2>&1; echo "exit status: $?" >>"$linux_out" ) &
wait
printf '%-60s %s\n' "WASM  (wasi/wasm, oci:wasm:hello)" "LINUX (busybox, oci:busybox:latest)"
printf '%-60s %s\n' "$(printf '%.0s-' {1..58})" "$(printf '%.0s-' {1..40})"
paste -d '\t' <(cut -c1-58 "$wasm_out") "$linux_out" | awk -F'\t' '{ printf "%-60s %s\n", $1, $2 }'

echo
log "exit codes pass through exactly"
# Runs a command with its output kept out of the way and prints its exit status.
status() { local s=0; "$@" >"$root/out" 2>"$root/err" || s=$?; echo "$s"; }
for code in 0 3 42; do
  echo "  wasm guest exit($code) -> container status $(status tb run --rm "oci:$fx/wasm:exitcode" "$code")"
done
echo "  wasm trap             -> container status $(status tb run --rm "oci:$fx/wasm:exitcode" trap)  ($(cat "$root/err"))"
echo "  busybox exit 3        -> container status $(status tb run --rm "oci:$fx/busybox:latest" sh -c 'exit 3')"

echo
log "one image reference, two platforms (oci:mixed:app)"
tb run --rm "oci:$fx/mixed:app" >"$root/out" 2>/dev/null
echo "  default (Wasm first):     $(head -1 "$root/out")"
tb run --rm --platform "linux/$GOARCH" "oci:$fx/mixed:app" uname -sm >"$root/out"
echo "  --platform linux/$GOARCH:   $(cat "$root/out")"

echo
log "a Wasm component (wasi:cli/command) and a wasi:http component"
tb run --rm "oci:$fx/wasm:component-hello" from a component 2>/dev/null | sed -n '1,2s/^/  /p'
port=18099
# exec, so that $! is tugboat itself and the SIGTERM below reaches it.
( exec "$ROOT/bin/tugboat" --root "$root" run --rm --network host -e PORT=$port "oci:$fx/wasm:component-http" >/dev/null 2>&1 ) &
http_pid=$!
"$NODE_BIN" -e '
  const url = process.argv[1];
  (async () => {
    for (let i = 0; i < 100; i++) {
      try { const r = await fetch(url); console.log(`  GET ${url} -> ${r.status} ${(await r.text()).trim()}`); return; }
      catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    console.log("  the HTTP component did not answer");
  })();' "http://127.0.0.1:$port/demo"
kill -TERM "$http_pid"; s=0; wait "$http_pid" || s=$?
echo "  SIGTERM -> drained, container status $s"
