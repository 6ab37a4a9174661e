#!/usr/bin/env bash
# README command 2 (and what .ci/run calls): set up and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/setup.sh libpcap-dev pkg-config tshark tcpdump nginx-light curl wrk python3 python3-venv redis-server redis-tools

echo "== format and lints" >&2
cargo fmt --all -- --check
cargo fmt --manifest-path plugins/Cargo.toml --all -- --check
cargo clippy --quiet --release --workspace --all-targets -- -D warnings
cargo clippy --quiet --manifest-path plugins/Cargo.toml --target wasm32-wasip2 --release --workspace -- -D warnings

echo "== dashboard: lint, type-check, unit tests, build" >&2
scripts/build-web.sh --check

echo "== build" >&2
cargo build --quiet --release --workspace --bins
scripts/build-plugins.sh release
cargo build --quiet --manifest-path examples/alerts/rust-secrets/Cargo.toml --target wasm32-wasip2 --release

echo "== alert plugin examples in Python and JavaScript (built from source, tested)" >&2
scripts/build-alert-examples.sh
echo "== dissector example in Python (built from source; tested with the host tests)" >&2
scripts/build-dissector-examples.sh

echo "== plugin tests (native)" >&2
cargo test --quiet --manifest-path plugins/Cargo.toml --release --workspace --exclude 'remora-test-*'

echo "== host and end-to-end tests" >&2
cargo test --release --workspace

echo "== dashboard end to end (headless Chromium against remora tap on lo)" >&2
tests/web/e2e.sh

echo "== all tests passed in $(( $(date +%s) - start ))s" >&2
