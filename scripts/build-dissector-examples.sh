#!/usr/bin/env bash
# Builds the non-Rust dissector examples from source against wit/ (read in
# place) and checks that each component exports the dissector interface of
# the contract's current version (with jco, which
# scripts/build-alert-examples.sh installs). Their tests are Rust tests
# (tests/tests/dissector_examples.rs) that run them in `remora read`.
# Tooling: componentize-py from PyPI into a venv under ~/.cache/remora
# (or $REMORA_TOOLS_DIR), once (scripts/componentize-py.sh).
# Usage: scripts/build-dissector-examples.sh
# Output: ${CARGO_TARGET_DIR:-target}/dissector-examples/<example>.wasm
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out_dir="${CARGO_TARGET_DIR:-$root/target}/dissector-examples"
case "$out_dir" in /*) ;; *) out_dir="$root/$out_dir" ;; esac

version=$(sed -n 's/^package remora:plugin@\([0-9.]*\);.*/\1/p' wit/plugin.wit)
[ -n "$version" ] || { echo "build-dissector-examples: no 'package remora:plugin@X;' line in wit/plugin.wit" >&2; exit 1; }
. scripts/lib/world.sh
jco="$root/examples/alerts/js-5xx-burst/node_modules/.bin/jco"
[ -x "$jco" ] || { echo "build-dissector-examples: $jco missing (scripts/build-alert-examples.sh installs it)" >&2; exit 1; }

examples=(python-memcached)
for ex in "${examples[@]}"; do
  start=$SECONDS
  "examples/dissectors/$ex/build.sh" "$out_dir/$ex.wasm" >/dev/null
  echo "build-dissector-examples: $ex: $(stat -c %s "$out_dir/$ex.wasm") bytes in $((SECONDS - start))s"
  world_of "$jco" "$out_dir" "$ex.wasm" \
    "export remora:plugin/dissector@$version;" "import remora:plugin/host@$version;" >/dev/null
done
