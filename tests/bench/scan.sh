#!/usr/bin/env bash
# Port-scan benchmark: what many short flows cost (a SYN scan or flood, a
# UDP scan nothing claims): peak memory per flow and packets/s of
# `remora read`.
#
#   tests/bench/scan.sh                          # RUNS=5
#   BASE_BIN=/path/to/other/remora tests/bench/scan.sh   # and another build, same run
#
# No root needed; no network. Inputs, generated if absent (deterministic,
# tests/bench/gen_scan.py) under tests/out/bench/: scan-200k.pcap and
# scan-20k.pcap, SYNs to 200,000 and 20,000 targets (one flow each; half
# answer RST-ACK and close at once, half stay open to the end of the
# capture); udpscan-200k.pcap and udpscan-20k.pcap, one unanswered datagram
# per target (each flow probed by the UDP plugins, claimed by none).
# Measured, RUNS runs each, alternating the binaries:
#   remora read FILE --format count --threads 1     wall time and peak RSS
#   remora-bench --stage decode FILE                the same-run baseline: the
#       packets decoded with no flow table behind them
# Reported: median wall time, packets/s and flows/s, the ratio to the decode
# baseline, peak RSS, and memory per flow = (peak RSS on 200k - on 20k) /
# 180,000 (what grows with the flows, not what every run has), per kind.
# Every run is bounded by `timeout $BENCH_TIMEOUT` (default 300 s).
# Output: markdown on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ws="$(cd "$here/../.." && pwd)"
out="$ws/tests/out/bench"
mkdir -p "$out"
RUNS="${RUNS:-5}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-300}"
. "$here/lib.sh"

for kind in scan udpscan; do
    for n in 200000 20000; do
        f="$out/$kind-$((n / 1000))k.pcap"
        if [ ! -s "$f" ] || [ "$f" -ot "$here/gen_scan.py" ]; then
            python3 "$here/gen_scan.py" $([ "$kind" = udpscan ] && echo --udp) --flows "$n" -o "$f.tmp" >&2
            mv "$f.tmp" "$f"
        fi
    done
done
settle "$out"/scan-200k.pcap "$out"/scan-20k.pcap "$out"/udpscan-200k.pcap "$out"/udpscan-20k.pcap

python3 - "$RUNS" "$BENCH_TIMEOUT" "$out" "$REMORA_BENCH_BIN" "remora=$REMORA_BIN" ${BASE_BIN:+"base=$BASE_BIN"} <<'PY'
import os, re, statistics, subprocess, sys, time

runs, limit, out, bench = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
bins = [a.split("=", 1) for a in sys.argv[5:]]
files = {
    f"{kind}-{n // 1000}k": (f"{out}/{kind}-{n // 1000}k.pcap", n)
    for kind in ("scan", "udpscan")
    for n in (200_000, 20_000)
}


def run(cmd):
    """Wall seconds and peak RSS (bytes) of one bounded run."""
    t = time.perf_counter()
    p = subprocess.Popen(["timeout", limit] + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    stdout, stderr = p.stdout.read().decode(), p.stderr.read().decode()
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}\n{stderr[-2000:]}")
    # `timeout` is the child: its peak is the largest of its children's.
    return wall, usage.ru_maxrss * 1024, stdout + stderr


packets = {}
res = {(n, k): [] for n, _ in bins + [("decode", bench)] for k in files}
for r in range(runs):
    order = bins + [("decode", bench)]
    for name, b in order if r % 2 == 0 else order[::-1]:
        for k, (f, _) in files.items():
            cmd = [b, "--stage", "decode", f] if name == "decode" else [b, "read", f, "--format", "count", "--threads", "1"]
            wall, rss, text = run(cmd)
            res[(name, k)].append((wall, rss))
            m = re.search(r"([\d,]+) packets", text)
            if name != "decode" and m:
                packets[k] = int(m.group(1).replace(",", ""))

print(f"### Port-scan benchmark (median of {runs} runs, `--threads 1`, wall time incl. process start)\n")
print("| binary | capture | flows | packets | median s | packets/s | flows/s | × decode baseline | peak RSS MB |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
med = lambda xs, i: statistics.median(x[i] for x in xs)
for name, _ in bins + [("decode", bench)]:
    for k, (f, flows) in files.items():
        wall, rss = med(res[(name, k)], 0), max(x[1] for x in res[(name, k)])
        pk = packets.get(k, 0)
        base = med(res[("decode", k)], 0)
        ratio = "—" if name == "decode" else f"{base / wall:.2f}"
        label = "remora-bench --stage decode" if name == "decode" else f"{name} read"
        print(f"| {label} | {os.path.basename(f)} | {flows:,} | {pk:,} | {wall:.3f} | {pk / wall:,.0f} | {flows / wall:,.0f} | {ratio} | {rss / 1e6:.0f} |")
print()
print("| binary | capture | memory per flow (peak RSS 200k − 20k) / 180,000 |")
print("|---|---|---:|")
for name, _ in bins:
    for kind in ("scan", "udpscan"):
        big = max(x[1] for x in res[(name, f"{kind}-200k")])
        small = max(x[1] for x in res[(name, f"{kind}-20k")])
        print(f"| {name} | {kind} | {(big - small) / 180_000:,.0f} bytes |")
PY
