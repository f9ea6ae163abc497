#!/usr/bin/env bash
# Builds the example programs with Debian's rustc: wasm32-wasi modules (and native
# twins of the benchmarked ones) into examples/rust-wasm/out/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out"; mkdir -p "$out"
RUSTC=/usr/bin/rustc   # Debian's rustc: its wasm32-wasi std comes from libstd-rust-dev-wasm32
flags=(-O -C debuginfo=0 -C strip=symbols --edition 2021)
for src in "$here"/src/*.rs; do
  name="$(basename "$src" .rs)"
  if [[ ! "$out/$name.wasm" -nt "$src" ]]; then
    "$RUSTC" "${flags[@]}" --target wasm32-wasi -o "$out/$name.wasm" "$src"
  fi
done
# Native twins of the benchmarked programs (bench/compute, bench/syscalls).
for name in compute syscalls; do
  if [[ ! "$out/$name-native" -nt "$here/src/$name.rs" ]]; then
    # Static so the same binary runs in a FROM-scratch bundle under runc.
    "$RUSTC" "${flags[@]}" -C target-feature=+crt-static -o "$out/$name-native" "$here/src/$name.rs"
  fi
done
