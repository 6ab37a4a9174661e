#!/usr/bin/env bash
# Builds the dashboard (web/) to web/dist, which release builds of remora
# embed. Usage: scripts/build-web.sh [--check]  (--check also lints,
# type-checks and runs the unit tests).
set -euo pipefail
cd "$(dirname "$0")/../web"
# npm ci is slow even when nothing changed: skip it while the lock matches.
stamp=node_modules/.remora-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
if [ "${1:-}" = "--check" ]; then
  npm run --silent lint
  npm run --silent typecheck
  npm test --silent
fi
npm run --silent build
