#!/usr/bin/env bash
# Builds the host's test guests (wasm32-wasi, Debian's rustc) into
# test/guests/out/, and each one wrapped into a wasi:cli/command component
# with jco's preview1 adapter (NAME.component.wasm), as the example
# components are built. Never committed; run by `make build`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/out"; mkdir -p "$out"
for src in "$here"/*.rs; do
  name="$(basename "$src" .rs)"
  if [[ ! "$out/$name.wasm" -nt "$src" ]]; then
    /usr/bin/rustc -O -C debuginfo=0 -C strip=symbols --edition 2021 --target wasm32-wasi -o "$out/$name.wasm" "$src"
  fi
  if [[ ! "$out/$name.component.wasm" -nt "$out/$name.wasm" ]]; then
    "$root/vendor/node/bin/node" "$root/examples/components/make-components.mjs" "$out/$name.wasm" "$out/$name.component.wasm"
  fi
done
