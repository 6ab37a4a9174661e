#!/usr/bin/env bash
# Live-capture benchmark (issue 4 (1)): how many packets/s `remora tap -i`
# takes from an interface without drops.
#
#   sudo tests/bench/live.sh                         # rates 50k 100k 200k 300k top, RUNS=3
#   sudo RATES="300000 top" RUNS=5 THREADS="default 1" tests/bench/live.sh
#
# NEEDS ROOT (network namespace, veth, packet capture). Sends traffic only over
# a veth pair it creates: end rbA stays in the root namespace with no address
# and IPv6 off (tcpreplay writes frames onto it), end rbB lives in a fresh
# namespace `remora-bench-<pid>` (no address either, IPv6 off) where
# `remora tap -i rbB --listen 127.0.0.1:PORT` captures it (promiscuous: the
# replayed frames are not addressed to rbB and are discarded by the
# namespace's kernel right after capture, so nothing is routed or answered).
# The API port is the namespace's own loopback. Everything is removed on exit
# (trap), also on Ctrl-C or error.
#
# Input: tests/out/bench/http1-1m.pcap (as http1.sh; generated if absent).
# Per THREADS value (`default` = remora's default = cores, or N for --threads N)
# and per rate in RATES (packets/s for tcpreplay --pps, or `top` for
# --topspeed), RUNS times: a fresh tap with an empty data dir, tcpreplay of
# min(capture, rate x DURATION) packets (DURATION default 10 s; --topspeed
# sends the whole capture), wait until remora_packets_total stops moving (max
# 30 s), then read /metrics. Reported (median over runs): tcpreplay's achieved
# rate, packets sent, packets remora read, libpcap kernel drops
# (remora_source_kernel_drops_total), remora's own drops (remora_drops_total,
# any reason), packets lost before libpcap (rbB rx_dropped), and the drop rate
# (sent - read) / sent. Target: no drops at 300k packets/s.
# Bounded: every tap is killed after the run (and by `timeout` after
# RUN_TIMEOUT s); tcpreplay runs under `timeout`.
# Env: RATES, RUNS (3), THREADS ("default 1"), DURATION (10), PORT (18899),
# TCPREPLAY_ARGS (--preload-pcap),
# BUFFER (remora --buffer-size, default remora's), REMORA_BIN, GEN_BIN.
# Output: markdown on stdout; logs under tests/out/bench/live/.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "live.sh needs root (netns, veth, capture)" >&2; exit 1; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ws="$(cd "$here/../.." && pwd)"
out="$ws/tests/out/bench"
logs="$out/live"
mkdir -p "$logs"
RATES="${RATES:-50000 100000 200000 300000 top}"
RUNS="${RUNS:-3}"
THREADS="${THREADS:-default 1}"
DURATION="${DURATION:-10}"
PORT="${PORT:-18899}"
RUN_TIMEOUT="${RUN_TIMEOUT:-120}"
# --preload-pcap: tcpreplay reads the capture into memory first, so the send
# loop is not slowed by file reads (it is CPU-bound on 2 cores as it is)
TCPREPLAY_ARGS="${TCPREPLAY_ARGS---preload-pcap}"
target="${CARGO_TARGET_DIR:-$ws/target}"
case "$target" in /*) ;; *) target="$ws/$target" ;; esac
REMORA_BIN="${REMORA_BIN:-$target/release/remora}"
GEN_BIN="${GEN_BIN:-$target/release/gen-http-capture}"
[ -x "$REMORA_BIN" ] || { echo "missing $REMORA_BIN" >&2; exit 1; }
command -v tcpreplay >/dev/null || "$ws/scripts/setup.sh" tcpreplay
for c in tcpreplay ip curl python3 capinfos; do
    command -v "$c" >/dev/null || { echo "missing $c" >&2; exit 1; }
done

pcap="$out/http1-1m.pcap"
if [ ! -s "$pcap" ]; then
    echo "generating $pcap ..." >&2
    timeout 600 "$GEN_BIN" --packets 1000000 --seed 1 -o "$pcap.tmp" >&2
    mv "$pcap.tmp" "$pcap"
fi
total="$(capinfos -M -c -T "$pcap" | awk -F'\t' 'NR==2 {print $2}')"

ns="remora-bench-$$"
tmp="$(mktemp -d /tmp/remora-live.XXXXXX)"
tap_pid=""
cleanup() {
    [ -n "$tap_pid" ] && kill "$tap_pid" 2>/dev/null && wait "$tap_pid" 2>/dev/null
    ip link del rbA 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ip netns add "$ns"
ip link add rbA type veth peer name rbB
ip link set rbB netns "$ns"
sysctl -qw net.ipv6.conf.rbA.disable_ipv6=1
ip netns exec "$ns" sysctl -qw net.ipv6.conf.rbB.disable_ipv6=1
ip link set rbA up
ip -n "$ns" link set lo up
ip -n "$ns" link set rbB up
inns() { ip netns exec "$ns" "$@"; }

metric() { # NAME -> sum of all samples
    awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $NF} END {printf "%d\n", s}' "$2"
}
rows="$logs/results.tsv"
: > "$rows"
run_one() { # THREADS RATE RUN
    local th="$1" rate="$2" run="$3" data="$tmp/data" tag="t$1-$2-$3"
    rm -rf "$data"
    local targs=()
    [ "$th" = default ] || targs=(--threads "$th")
    [ -n "${BUFFER:-}" ] && targs+=(--buffer-size "$BUFFER")
    # not through inns: $! must be the process that gets the kill (ip netns exec execs)
    ip netns exec "$ns" timeout "$RUN_TIMEOUT" "$REMORA_BIN" --cache-dir "$out/live-cache" tap -i rbB \
        --data-dir "$data" --listen "127.0.0.1:$PORT" "${targs[@]}" > "$logs/$tag.tap.log" 2>&1 &
    tap_pid=$!
    local i
    for i in $(seq 100); do
        inns curl -sf "127.0.0.1:$PORT/metrics" > /dev/null 2>&1 && break
        sleep 0.2
    done
    sleep 1 # the capture handle opens alongside the API
    local rx0; rx0="$(inns cat /sys/class/net/rbB/statistics/rx_dropped)"
    local rargs=()
    if [ "$rate" = top ]; then rargs=(--topspeed); else
        local lim=$((rate * DURATION)); [ "$lim" -lt "$total" ] || lim="$total"
        rargs=(--pps "$rate" --limit "$lim")
    fi
    # shellcheck disable=SC2086 # TCPREPLAY_ARGS is a word list
    timeout "$RUN_TIMEOUT" tcpreplay -i rbA $TCPREPLAY_ARGS "${rargs[@]}" "$pcap" > "$logs/$tag.replay.log" 2>&1
    local sent pps
    sent="$(awk '/Actual:/ {print $2}' "$logs/$tag.replay.log")"
    pps="$(grep -o '[0-9.]* pps' "$logs/$tag.replay.log" | head -1 | awk '{printf "%d", $1}')"
    local last=-1 now m="$logs/$tag.metrics"
    for i in $(seq 60); do # until packets_total stops moving (max 30 s)
        inns curl -sf "127.0.0.1:$PORT/metrics" > "$m" || true
        now="$(metric remora_packets_total "$m")"
        [ "$now" = "$last" ] && break
        last="$now"; sleep 0.5
    done
    local rx1; rx1="$(inns cat /sys/class/net/rbB/statistics/rx_dropped)"
    kill "$tap_pid" 2>/dev/null; wait "$tap_pid" 2>/dev/null || true; tap_pid=""
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$th" "$rate" "$run" "$pps" "$sent" \
        "$(metric remora_packets_total "$m")" "$(metric remora_source_kernel_drops_total "$m")" \
        "$(metric remora_drops_total "$m")" "$((rx1 - rx0))" >> "$rows"
    echo "  threads=$th rate=$rate run=$run: $(tail -1 "$rows")" >&2
}

for th in $THREADS; do
    for rate in $RATES; do
        for run in $(seq "$RUNS"); do
            run_one "$th" "$rate" "$run"
        done
    done
done

python3 - "$rows" "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" <<'EOF'
import sys, statistics, collections
rows, runs, load, cores = sys.argv[1:5]
g = collections.OrderedDict()
for line in open(rows):
    th, rate, run, pps, sent, read, kd, rd, rxd = line.rstrip("\n").split("\t")
    g.setdefault((th, rate), []).append([int(x or 0) for x in (pps, sent, read, kd, rd, rxd)])
print(f"### Live capture over veth (median of {runs} runs; {cores} cores; load avg at end {load})\n")
print("| threads | tcpreplay rate | achieved pps | sent | read by remora | kernel drops | remora drops | rbB rx_dropped | drop rate | runs with drops |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (th, rate), rs in g.items():
    med = lambda i: int(statistics.median(r[i] for r in rs))
    lost = [(r[1] - r[2]) / r[1] if r[1] else 0 for r in rs]
    bad = sum(1 for r in rs if r[1] != r[2] or r[3] or r[4])
    label = "topspeed" if rate == "top" else f"{int(rate):,}"
    print(f"| {th} | {label} | {med(0):,} | {med(1):,} | {med(2):,} | {med(3):,} | {med(4):,} | {med(5):,} "
          f"| {100 * statistics.median(lost):.2f}% | {bad}/{len(rs)} |")
EOF
