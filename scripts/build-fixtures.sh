#!/usr/bin/env bash
# Builds the test and demo images locally (no registry can be reached):
#   test/fixtures/out/wasm      OCI layout, tags hello, fileio, exitcode, compute (wasi/wasm)
#   test/fixtures/out/busybox   OCI layout, tag latest (linux/<arch>, busybox-static)
#   test/fixtures/out/mixed     OCI layout, tag app: one reference, linux + wasi/wasm manifests
#   test/fixtures/out/wasm      also tags component-{hello,fileio,exitcode,exit-with-code,http-trap,http-bench,http-probe,grow,http} (Wasm components)
source "$(dirname "$0")/lib.sh"
out="$ROOT/test/fixtures/out"
ex="$ROOT/examples/rust-wasm/out"
stamp="$out/.stamp"
"$ROOT/examples/components/build.sh"
for c in hello exit-with-code http-hello http-trap http-bench http-probe grow; do
  [[ "$stamp" -nt "$ROOT/examples/components/out/$c.wasm" ]] || rm -f "$stamp"
done
if [[ -f "$stamp" && "$stamp" -nt "$ex/hello.wasm" && "$stamp" -nt "$ROOT/dist/oci/image-build.js" && "$stamp" -nt "$0" ]]; then exit 0; fi
log "building test images"
rm -rf "$out"; mkdir -p "$out"
tb() { "$ROOT/bin/tugboat" "$@"; }
for m in hello fileio exitcode compute; do
  tb image build "$ex/$m.wasm" -o "oci:$out/wasm:$m" >/dev/null
done
tb image build "$ex/hello.wasm" --artifact -o "oci:$out/artifact:hello" >/dev/null
tb image build "$ex/hello.wasm" -o "oci-archive:$out/hello-wasm.oci.tar:hello" >/dev/null
tb image build "$ex/hello.wasm" -o "docker-archive:$out/hello-wasm.docker.tar:tugboat.local/hello-wasm:latest" >/dev/null
# Every example module in one image, for Docker/podman tests (--entrypoint picks one).
tb image build "$ex/hello.wasm" --file "$ex/fileio.wasm:/fileio.wasm" --file "$ex/exitcode.wasm:/exitcode.wasm" \
  -o "docker-archive:$out/wasm-tools.docker.tar:tugboat.local/wasm-tools:latest" >/dev/null
"$NODE_BIN" "$ROOT/scripts/build-busybox-image.mjs" "$out"
tb image build "$ex/hello.wasm" --add-to "oci:$out/mixed:app" >/dev/null
# Wasm components (examples/components): test/fixtures/out/wasm:component-NAME
for m in hello fileio exitcode exit-with-code http-trap http-bench http-probe grow; do
  tb image build "$ROOT/examples/components/out/$m.wasm" -o "oci:$out/wasm:component-$m" >/dev/null
done
tb image build "$ROOT/examples/components/out/http-hello.wasm" -o "oci:$out/wasm:component-http" >/dev/null
tb image build "$ROOT/examples/components/out/hello.wasm" -o "docker-archive:$out/component-hello.docker.tar:tugboat.local/component-hello:latest" >/dev/null
tb image build "$ROOT/examples/components/out/http-hello.wasm" -o "docker-archive:$out/component-http.docker.tar:tugboat.local/component-http:latest" >/dev/null
touch "$stamp"
