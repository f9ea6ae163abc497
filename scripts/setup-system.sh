#!/usr/bin/env bash
# Installs the Debian packages Tugboat needs, only those that are missing.
source "$(dirname "$0")/lib.sh"
# lld-14: Debian's rustc links wasm32 with rust-lld, a symlink to lld-14 that
# --no-install-recommends would leave dangling. libatomic1: Node 26 needs it.
# tini: tini-static is PID 1 of every container-level Wasm container (kit).
# wrk: the load generator of bench/http (a C process: it leaves the servers the CPU).
want=(runc rustc lld-14 libstd-rust-dev-wasm32 busybox-static zstd iproute2 util-linux gcc libc6-dev libatomic1 tini wrk)
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
