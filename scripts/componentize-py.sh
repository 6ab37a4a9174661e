#!/usr/bin/env bash
# Installs componentize-py (pinned, so builds are reproducible) once into a
# venv under ~/.cache/remora (or $REMORA_TOOLS_DIR) and prints the venv's
# path. Used by the Python plugin examples' build scripts.
set -euo pipefail
version=0.25.1
tools="${REMORA_TOOLS_DIR:-$HOME/.cache/remora}"
venv="$tools/componentize-py-$version"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $version"; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version" >&2
fi
echo "$venv"
