#!/usr/bin/env bash
# Builds the plugins workspace to wasm32-wasip2 components and ships the
# built-in ones next to the remora binary of the given cargo profile
# ($CARGO_TARGET_DIR or target/, then <profile>/plugins/), where `remora`
# finds them.
# Usage: scripts/build-plugins.sh [release|debug|dist ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --manifest-path plugins/Cargo.toml --target wasm32-wasip2 --release
# One CARGO_TARGET_DIR serves both workspaces when it is set.
built="${CARGO_TARGET_DIR:-plugins/target}/wasm32-wasip2/release"
for profile in "${@:-release}"; do
  dest="${CARGO_TARGET_DIR:-target}/$profile/plugins"
  mkdir -p "$dest"
  # Built-in plugins are the crates directly under plugins/ (testing/ holds
  # deliberately broken ones for tests; they are never shipped).
  for manifest in plugins/*/Cargo.toml; do
    [ "$manifest" = plugins/fuzz/Cargo.toml ] && continue # native-only fuzz targets, no component
    crate=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n1)
    wasm="$built/${crate//-/_}.wasm"
    [ -f "$wasm" ] || { echo "build-plugins: $wasm missing" >&2; exit 1; }
    cp -f "$wasm" "$dest/"
  done
done
