#!/usr/bin/env bash
# Builds this example into a component targeting the `alert-plugin` world of
# the repository's wit/ (read in place, so a contract bump is picked up).
# componentize-py is installed once into a venv under ~/.cache (or
# $REMORA_TOOLS_DIR); the version is pinned so builds are reproducible.
# Usage: build.sh [OUT.wasm]   (default: target/alert-examples/python-metadata.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-${CARGO_TARGET_DIR:-$root/target}/alert-examples/python-metadata.wasm}"
venv="$("$root/scripts/componentize-py.sh")"
mkdir -p "$(dirname "$out")"
# Bindings are generated into a scratch dir, never into the source folder.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
cd "$work"
"$venv/bin/componentize-py" --quiet -d "$root/wit" -w alert-plugin componentize app -o "$out"
echo "built $out ($(stat -c %s "$out") bytes)"
