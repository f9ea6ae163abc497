#!/usr/bin/env bash
# Runs every test (unit, then integration against real runc) on the pinned
# Node, and ends with one plain summary line that any CI can read.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
report="$(mktemp)"; trap 'rm -f "$report"' EXIT
set +e
"$NODE_BIN" node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile.json="$report"
status=$?
set -e
"$NODE_BIN" -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + (r.numTodoTests ?? 0)} skipped`);
' "$report" || true
exit $status
