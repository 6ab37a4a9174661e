#!/usr/bin/env bash
# Builds a Python plugin example into a component with componentize-py,
# against the repository's wit/ (read in place, so a contract bump is picked
# up). componentize-py is installed once into a venv under ~/.cache/remora
# (or $REMORA_TOOLS_DIR); the version is pinned so builds are reproducible.
# Usage: scripts/componentize-py.sh WORLD SOURCE_DIR OUT.wasm
#   (the module is SOURCE_DIR/app.py; bindings are generated in a scratch
#   directory, never in the source folder)
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 WORLD SOURCE_DIR OUT.wasm" >&2; exit 2; }
world="$1" src="$(cd "$2" && pwd)" out="$3"
root="$(cd "$(dirname "$0")/.." && pwd)"
version=0.25.1
tools="${REMORA_TOOLS_DIR:-$HOME/.cache/remora}"
venv="$tools/componentize-py-$version"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $version"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$src/app.py" "$work/"
cd "$work"
"$venv/bin/componentize-py" --quiet -d "$root/wit" -w "$world" componentize app -o "$out"
echo "built $out ($(stat -c %s "$out") bytes)"
