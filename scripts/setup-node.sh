#!/usr/bin/env bash
# Brings the pinned Node 26 LTS runtime from the npm registry into vendor/node.
# The machine's Node (20, end-of-life) is only used to run npm for this.
source "$(dirname "$0")/lib.sh"
if [[ -x "$NODE_BIN" ]] && [[ "$("$NODE_BIN" --version)" == "v$NODE_VERSION" ]]; then exit 0; fi
log "fetching $NODE_PKG@$NODE_VERSION from the npm registry"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$NODE_PKG@$NODE_VERSION" >/dev/null)
rm -rf "$NODE_DIR"; mkdir -p "$NODE_DIR"
tar -xzf "$tmp"/*.tgz -C "$NODE_DIR" --strip-components=1
"$NODE_BIN" --version >/dev/null
