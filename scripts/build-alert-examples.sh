#!/usr/bin/env bash
# Builds the non-Rust alert-plugin examples from source against wit/ (read in
# place), checks that each component exports the alerter interface of the
# contract's current version, then runs each example's tests on the built
# component under Node.
# Tooling: componentize-py from PyPI into a venv under ~/.cache/remora
# (or $REMORA_TOOLS_DIR); componentize-js and jco from npm into
# examples/alerts/js-5xx-burst/node_modules, pinned by its package-lock.json.
# Both installs happen once and are skipped when already present.
# Usage: scripts/build-alert-examples.sh [--no-test]
# Output: ${CARGO_TARGET_DIR:-target}/alert-examples/<example>.wasm
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out_dir="${CARGO_TARGET_DIR:-$root/target}/alert-examples"
case "$out_dir" in /*) ;; *) out_dir="$root/$out_dir" ;; esac
run_tests=1
[ "${1:-}" = "--no-test" ] && run_tests=0

version=$(sed -n 's/^package remora:plugin@\([0-9.]*\);.*/\1/p' wit/plugin.wit)
[ -n "$version" ] || { echo "build-alert-examples: no 'package remora:plugin@X;' line in wit/plugin.wit" >&2; exit 1; }

examples=(python-metadata js-5xx-burst)
for ex in "${examples[@]}"; do
  start=$SECONDS
  "examples/alerts/$ex/build.sh" "$out_dir/$ex.wasm" >/dev/null
  echo "build-alert-examples: $ex: $(stat -c %s "$out_dir/$ex.wasm") bytes in $((SECONDS - start))s"
done

# jco is installed for the JS example.
. scripts/lib/world.sh
jco="$root/examples/alerts/js-5xx-burst/node_modules/.bin/jco"
for ex in "${examples[@]}"; do
  wit=$(world_of "$jco" "$out_dir" "$ex.wasm" \
    "export remora:plugin/alerter@$version;" "import remora:plugin/host@$version;")
  # Anything else from remora:plugin would be a world other than alert-plugin.
  other=$(grep -E 'remora:plugin/' <<<"$wit" | grep -vE "remora:plugin/(host|alert-types|alerter)@$version;" || true)
  [ -z "$other" ] || { echo "build-alert-examples: $ex.wasm has unexpected items: $other" >&2; exit 1; }
done
echo "build-alert-examples: both components export remora:plugin/alerter@$version"

if [ "$run_tests" = 1 ]; then
  for ex in "${examples[@]}"; do
    # componentize-py emits extended-const, which Node 20 keeps behind a flag.
    REMORA_ALERT_WASM="$out_dir/$ex.wasm" \
      node --experimental-wasm-extended-const --test "examples/alerts/$ex/test.mjs"
  done
fi
