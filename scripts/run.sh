#!/usr/bin/env bash
# README command 1: set up, build, and run the main job.
# Until the dashboard lands this is `remora read` on a bundled capture; pass
# a capture of your own as the first argument to read that instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh libpcap-dev pkg-config
cargo build --quiet --release -p remora
scripts/build-plugins.sh release
capture="${1:-tests/fixtures/captures/http1-nginx.pcap}"
shift || true
exec target/release/remora read "$capture" "$@"
