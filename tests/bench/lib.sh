# Sourced by the bench scripts (after setting `ws`, the workspace root):
# where the binaries they measure are, built if needed.
#
# Benchmarks measure the `dist` profile (fat LTO, one codegen unit), the
# build `scripts/run.sh` runs; `PROFILE=release` measures the build the
# tests use (6-8% slower on the HTTP/1 and mixed captures, README). Given
# REMORA_BIN (e.g. another commit's build, for a same-run comparison),
# nothing is built.
#
# Sets: target, PROFILE, REMORA_BIN, REMORA_BENCH_BIN, GEN_BIN.
target="${CARGO_TARGET_DIR:-$ws/target}"
case "$target" in /*) ;; *) target="$ws/$target" ;; esac
PROFILE="${PROFILE:-dist}"
if [ -z "${REMORA_BIN:-}" ]; then
    echo "building remora, remora-bench and the plugins ($PROFILE profile) in $target ..." >&2
    (cd "$ws" && nice cargo build --quiet --profile "$PROFILE" -p remora -p remora-bench >&2 &&
        nice scripts/build-plugins.sh "$PROFILE" >&2)
fi
REMORA_BIN="${REMORA_BIN:-$target/$PROFILE/remora}"
REMORA_BENCH_BIN="${REMORA_BENCH_BIN:-$target/$PROFILE/remora-bench}"
GEN_BIN="${GEN_BIN:-$target/$PROFILE/gen-http-capture}"
for b in "$REMORA_BIN" "$REMORA_BENCH_BIN" "$GEN_BIN"; do
    [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }
done
