#!/usr/bin/env bash
# Installs the Debian packages Tugboat needs, only those that are missing.
source "$(dirname "$0")/lib.sh"
want=(runc rustc libstd-rust-dev-wasm32 busybox-static zstd iproute2 util-linux gcc libc6-dev)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
