#!/usr/bin/env bash
# Builds this example into a component targeting the `alert-plugin` world of
# the repository's wit/ (read in place, so a contract bump is picked up).
# The tooling (componentize-js, jco) comes from npm into ./node_modules,
# pinned by the committed package-lock.json; `npm ci` runs only when the
# lock file is newer than the installed tree.
# Usage: build.sh [OUT.wasm]   (default: target/alert-examples/js-5xx-burst.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-${CARGO_TARGET_DIR:-$root/target}/alert-examples/js-5xx-burst.wasm}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
cd "$here"
stamp=node_modules/.package-lock.json
if [ ! -x node_modules/.bin/componentize-js ] || [ package-lock.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
mkdir -p "$(dirname "$out")"
# No WASI capability is needed: the plugin only talks to the host interface.
node_modules/.bin/componentize-js --wit "$root/wit" --world-name alert-plugin \
  --disable http fetch-event --out "$out" alerter.js
echo "built $out ($(stat -c %s "$out") bytes)"
