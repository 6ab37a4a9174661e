#!/usr/bin/env bash
# README command 1: set up, build, and run the main job: the dashboard and
# API at http://localhost:8899.
#   scripts/run.sh               bundled captures (every protocol) in a fresh store
#   scripts/run.sh -i lo         live traffic on an interface (needs root or CAP_NET_RAW)
#   scripts/run.sh ARGS...       any `remora tap` arguments
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh libpcap-dev pkg-config
scripts/build-web.sh
# The `dist` profile (fat LTO, one codegen unit): a longer first build,
# 6-8% less CPU per packet than `--release` (README, Benchmarks).
cargo build --quiet --profile dist -p remora
scripts/build-plugins.sh dist
if [ $# -gt 0 ]; then
  exec target/dist/remora tap "$@"
fi
demo=target/demo-store
rm -rf "$demo"
args=()
for f in tests/fixtures/captures/*.pcap tests/fixtures/*/*.pcap; do
  args+=(-r "$f")
done
exec target/dist/remora tap --data-dir "$demo" "${args[@]}"
