#!/usr/bin/env bash
# Alert throughput (issue 6): entries/s through (a) a rule alert, (b) the Rust
# example plugin, (c) the Python one, (d) the JavaScript one, at batch sizes 1
# and 256, "offered" (the bundled captures' mix, each plugin's prefilter
# deciding what crosses into Wasm) and "delivered" (prefilter off: every
# entry crosses), next to a same-run native baseline (the Rust example's
# prefilter alone).
#
#   tests/bench/alerts.sh
#   SECS=3 tests/bench/alerts.sh          # longer samples (default 1 s, 3 per case)
#
# 1. scripts/build-alert-examples.sh --no-test builds the Python and
#    JavaScript components into $CARGO_TARGET_DIR/alert-examples/ (tooling is
#    installed once; see that script).
# 2. cargo bench -p remora-alert --bench throughput (host/alert/benches/
#    throughput.rs) builds the built-in dissectors and the Rust example,
#    turns every tests/fixtures/*/*.pcap into entries through the pipeline,
#    and measures; the markdown table goes to stdout, progress to stderr.
# Env: SECS (1), CARGO_TARGET_DIR (target).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" ;; esac
scripts/build-alert-examples.sh --no-test >&2
REMORA_ALERT_EXAMPLES="$CARGO_TARGET_DIR/alert-examples" \
  REMORA_ALERT_BENCH_SECS="${SECS:-1}" \
  cargo bench --quiet -p remora-alert --bench throughput
