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

# settle FILE...: put each input into the page cache the same way every time,
# by dropping its cached pages and reading it back sequentially. How a file
# entered the cache changes what reading it costs: straight after a
# generator wrote it in small pieces, the kernel's per-page look-ups and
# copies (filemap_get_read_batch, _copy_to_iter) were 3.7% + 7.8% of
# `remora read` on the HTTP/1 capture and 5.4% + 12% on the mix; read back
# by readahead (as after a reboot, or a copy from elsewhere) they fall to
# ~3%, and the same binary is 8% (HTTP/1) and 19% (mix) faster (README,
# Benchmarks, session 17). SETTLE=0 measures files as they are.
settle() {
    [ "${SETTLE:-1}" = 0 ] && { echo "page cache: inputs as they are (SETTLE=0)" >&2; return 0; }
    echo "page cache: settling $# input(s) (drop, read back sequentially)" >&2
    python3 - "$@" <<'PY'
import os, sys
buf = bytearray(1 << 20)
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY)
    try:
        os.fsync(fd)  # only clean pages can be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with os.fdopen(os.dup(fd), "rb", buffering=0) as r:
            while r.readinto(buf):
                pass
    finally:
        os.close(fd)
PY
}
