#!/usr/bin/env bash
# Prepares the runtime kit that every Wasm container gets read-only at
# /.tugboat: the pinned Node binary, exactly the shared libraries it needs
# (plus the dynamic loader, so images built FROM scratch work), and the
# bundled WASI host. See README "Runtime kit".
source "$(dirname "$0")/lib.sh"
kit="${1:-$ROOT/build/kit}"
host="$ROOT/dist/host/host.mjs"
[[ -f "$host" ]] || { echo "build-kit: $host missing; run the build first" >&2; exit 1; }
tmp="$kit.tmp.$$"; rm -rf "$tmp"; mkdir -p "$tmp/lib" "$tmp/host"
# A hard link costs nothing and keeps the 100+ MB binary on disk once.
ln "$NODE_BIN" "$tmp/node" 2>/dev/null || cp "$NODE_BIN" "$tmp/node"
loader=""
while read -r line; do
  # ldd lines: "libfoo.so.1 => /lib/x/libfoo.so.1 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
  set -- $line
  if [[ "${2:-}" == "=>" && -e "${3:-}" ]]; then
    cp -L "$3" "$tmp/lib/$1"
  elif [[ "$1" == /* && -e "$1" ]]; then
    # The loader path on Debian is an absolute symlink; copy the real file.
    loader="$(basename "$1")"; cp -L "$1" "$tmp/lib/$loader"
  fi
done < <(ldd "$NODE_BIN")
[[ -n "$loader" ]] || { echo "build-kit: could not find the dynamic loader of $NODE_BIN" >&2; exit 1; }
cp "$host" "$tmp/host/host.mjs"
cp "$ROOT/dist/host/pod-host.mjs" "$tmp/host/pod-host.mjs"
# The host's system calls (openat2 and the *at calls) go through koffi's
# native addon, loaded directly from beside host.mjs.
cp "$ROOT/node_modules/koffi/build/koffi/linux_$([[ $GOARCH == amd64 ]] && echo x64 || echo arm64)/koffi.node" "$tmp/host/koffi.node"
# PID 1 of a Wasm container: statically linked, so images built FROM scratch work.
cp /usr/bin/tini-static "$tmp/tini"
# Wasm components: a container's component worker, an HTTP component's
# handler threads, a component guest's thread in a shared host, and
# preview2-shim's IO worker.
cp "$ROOT/dist/host/component.mjs" "$ROOT/dist/host/http-worker.mjs" "$ROOT/dist/host/hosted-component.mjs" "$ROOT/dist/host/worker-thread.bundle.js" "$tmp/host/"
printf '{"loader":"lib/%s","node":"node","host":"host/host.mjs","podHost":"host/pod-host.mjs","init":"tini","nodeVersion":"%s"}\n' "$loader" "$("$NODE_BIN" --version)" > "$tmp/kit.json"
rm -rf "$kit"; mv "$tmp" "$kit"
