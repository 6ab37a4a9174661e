#!/usr/bin/env bash
# Installs what building and testing Remora needs, idempotently: Debian
# packages, the pinned Rust toolchain with the wasm32-wasip2 target.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# The dashboard builds with the machine's Node.js and npm.
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing nodejs npm" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
rustup toolchain list | grep -q "^$toolchain" || rustup toolchain install "$toolchain" --profile minimal -c rustfmt,clippy
# rustup's auto-install is off: add the target explicitly (idempotent).
rustup target add --toolchain "$toolchain" wasm32-wasip2 >/dev/null 2>&1 || rustup target add --toolchain "$toolchain" wasm32-wasip2
