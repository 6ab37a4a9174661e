#!/usr/bin/env bash
# Fuzzes every built-in plugin's parser natively with cargo-fuzz (libFuzzer),
# SECONDS_PER_TARGET each (default 60), starting from the seeds in
# plugins/fuzz/seeds (real captured conversations, see make_seeds.py).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Exits non-zero if any target crashed; crashing inputs land in
# plugins/fuzz/artifacts/<target>/. Reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir plugins/fuzz -a -s none <target> <file>
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
fuzz_dir=plugins/fuzz

# cargo-fuzz builds with -Z flags (sanitizer coverage); RUSTC_BOOTSTRAP lets
# the pinned stable toolchain accept them, so no nightly is needed.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/$fuzz_dir/target"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz" >&2
  cargo install --quiet --locked cargo-fuzz --version 0.13.2
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir "$fuzz_dir")
fi

# Plugins hold no unsafe code, so AddressSanitizer would only slow the search;
# -a keeps debug assertions and overflow checks on, which catch more.
opts=(--fuzz-dir "$fuzz_dir" --release --debug-assertions --sanitizer none)
start=$(date +%s)
echo "== building ${#targets[@]} fuzz targets" >&2
nice -n 19 cargo fuzz build "${opts[@]}"

failed=()
for t in "${targets[@]}"; do
  corpus="$CARGO_TARGET_DIR/corpus/$t"
  mkdir -p "$corpus" "$fuzz_dir/artifacts/$t"
  log="$CARGO_TARGET_DIR/fuzz-$t.log"
  echo "== fuzzing $t for ${secs}s" >&2
  # New inputs go to the first directory (under target/, not committed); the
  # seeds are only read.
  if nice -n 19 cargo fuzz run "${opts[@]}" "$t" "$corpus" "$fuzz_dir/seeds/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=512 -max_len=16384 -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
    grep -E "panicked|ERROR|Test unit written" "$log" >&2 || tail -n 20 "$log" >&2
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1)
  echo "$t: $status, ${execs:-?} executions, ${cov:-no coverage line}" >&2
done
echo "== fuzzed ${#targets[@]} targets in $(( $(date +%s) - start ))s" >&2
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: crashes in ${failed[*]} (inputs in $fuzz_dir/artifacts/)" >&2
  exit 1
fi
