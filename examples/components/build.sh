#!/usr/bin/env bash
# Builds the example Wasm components (see make-components.mjs) from the Rust
# examples, which examples/rust-wasm/build.sh builds first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
"$root/examples/rust-wasm/build.sh"
"$root/vendor/node/bin/node" "$here/make-components.mjs"
"$root/vendor/node/bin/node" "$here/make-http-component.mjs"
