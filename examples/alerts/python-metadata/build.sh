#!/usr/bin/env bash
# Builds this example into a component targeting the `alert-plugin` world of
# the repository's wit/, with componentize-py (installed once, pinned:
# scripts/componentize-py.sh).
# Usage: build.sh [OUT.wasm]   (default: target/alert-examples/python-metadata.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-${CARGO_TARGET_DIR:-$root/target}/alert-examples/python-metadata.wasm}"
exec "$root/scripts/componentize-py.sh" alert-plugin "$here" "$out"
