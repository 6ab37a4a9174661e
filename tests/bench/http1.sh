#!/usr/bin/env bash
# Whole-process HTTP/1 benchmark: Remora stages vs. a native baseline vs. tshark.
#
#   tests/bench/http1.sh                 # 1M- and 100k-packet captures
#   FILES="100k" RUNS=5 tests/bench/http1.sh
#
# Generates (if absent) tests/out/bench/http1-1m.pcap (1M packets, ~650 MB)
# and http1-100k.pcap with gen-http-capture (seeded, so identical every time),
# then, per file, times with hyperfine (RUNS runs, median wall time):
#   (a) remora-bench --stage source FILE
#   (b) remora-bench --stage decode FILE
#   (c) remora-bench --stage flows  FILE
#   (d) remora read FILE --format count --threads 1   and   --threads 2
#       (and once more in RUNS alternating rounds of the two, for their ratio)
#   (e) remora-bench --stage native FILE
#   (f) tshark -r FILE -Y http -T fields -e http.request.method -e http.response.code
# Every input is first settled into the page cache the same way (`settle` in
# lib.sh; SETTLE=0 skips it). Peak RSS (and the notes column) come from one
# extra run under /usr/bin/time -v. A command that fails that run is reported as failed and skipped.
# Every run is bounded by `timeout $BENCH_TIMEOUT` (default 900 s).
#
# Env: FILES ("1m 100k"), RUNS (3), BENCH_TIMEOUT (900), PROFILE (dist), SETTLE (1),
# REMORA_BIN, REMORA_BENCH_BIN, GEN_BIN (default: built, see lib.sh).
# Output: a markdown table on stdout; raw hyperfine JSON and logs under
# tests/out/bench/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ws="$(cd "$here/../.." && pwd)"
out="$ws/tests/out/bench"
mkdir -p "$out"
RUNS="${RUNS:-3}"
FILES="${FILES:-1m 100k}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-900}"

need() {
    command -v "$1" >/dev/null && return 0
    echo "installing $2 (for $1)" >&2
    apt-get install -y "$2" >/dev/null
}
need hyperfine hyperfine
[ -x /usr/bin/time ] || need /usr/bin/time time
need tshark tshark
need python3 python3

. "$here/lib.sh"

# ------------------------------------------------------------------ inputs
declare -A PACKETS=([1m]=1000000 [100k]=100000)
for f in $FILES; do
    [ -n "${PACKETS[$f]:-}" ] || { echo "unknown file size '$f' (use 1m, 100k)" >&2; exit 2; }
    pcap="$out/http1-$f.pcap"
    if [ ! -s "$pcap" ]; then
        echo "generating $pcap ..." >&2
        timeout 600 "$GEN_BIN" --packets "${PACKETS[$f]}" --seed 1 -o "$pcap.tmp" 2> "$out/http1-$f.gen.txt"
        mv "$pcap.tmp" "$pcap"
        cat "$out/http1-$f.gen.txt" >&2
    fi
done
settle $(for f in $FILES; do echo "$out/http1-$f.pcap"; done)

packet_count() {
    # exact count from the file itself (the generator target is approximate)
    local cache="$1.count"
    if [ ! -s "$cache" ] || [ "$cache" -ot "$1" ]; then
        capinfos -M -c -T "$1" 2>/dev/null | awk -F'\t' 'NR==2 {print $2}' > "$cache"
    fi
    cat "$cache"
}

# bench LABEL FILE CMD...  -> appends a TSV row to $rows
rows="$out/results.tsv"
: > "$rows"
bench() {
    local label="$1" file="$2"; shift 2
    local tag="$(basename "$file" .pcap)-${label//[^a-zA-Z0-9]/_}"
    local log="$out/$tag.log" json="$out/$tag.json"
    local pk; pk="$(packet_count "$file")"
    echo "[$label] $(basename "$file"): $*" >&2
    # one run under /usr/bin/time -v: peak RSS, self-reported rate, failure check
    if ! timeout "$BENCH_TIMEOUT" /usr/bin/time -v "$@" > "$log.stdout" 2> "$log"; then
        local why; why="$( (grep -v -E '^\s' "$log" | grep -v 'Command exited' | tail -1 | cut -c1-80) || true)"
        printf '%s\t%s\t%s\tFAILED\t\t\t\t%s\n' "$(basename "$file")" "$label" "$pk" "${why:-exit status $(awk '/Exit status/ {print $3}' "$log")}" >> "$rows"
        echo "  failed; see $log" >&2
        return 0
    fi
    local rss_kb; rss_kb="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")"
    # remora-bench prints "packets=N seconds=S": its own in-process rate
    # notes: remora-bench's own "packets=N seconds=S" as a rate (excludes process
    # start), what `remora read --format count` printed, tshark's output lines
    local note=""
    case "$label" in
        # remora's summary line (stderr): entries found and its in-process rate
        "(d)"*) note="$( (grep -o '[0-9]* entries\|([0-9]* packets/s)' "$log" | tr '\n' ' ' | sed 's/(\([0-9]*\) packets\/s)/in-process \1 packets\/s/') || true)" ;;
        "(f)"*) note="$(wc -l < "$log.stdout") lines (http PDUs)" ;;
        *) note="$( (grep -o 'packets=[0-9]* seconds=[0-9.e-]*' "$log.stdout" | tail -1 \
            | awk -F'[= ]' '$4 > 0 {printf "in-process %.0f packets/s", $2 / $4}') || true)" ;;
    esac
    hyperfine -N --style none --runs "$RUNS" --export-json "$json" \
        "timeout $BENCH_TIMEOUT $*" > /dev/null 2>> "$log" || {
        printf '%s\t%s\t%s\tFAILED\t\t\t\t%s\n' "$(basename "$file")" "$label" "$pk" "hyperfine failed" >> "$rows"
        return 0
    }
    local med; med="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$json")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n' "$(basename "$file")" "$label" "$pk" "$med" \
        "$(python3 -c "print(round($pk / $med))")" "$rss_kb" "$note" >> "$rows"
}

for f in $FILES; do
    pcap="$out/http1-$f.pcap"
    bench "(a) source" "$pcap" "$REMORA_BENCH_BIN" --stage source "$pcap"
    bench "(b) decode" "$pcap" "$REMORA_BENCH_BIN" --stage decode "$pcap"
    bench "(c) flows" "$pcap" "$REMORA_BENCH_BIN" --stage flows "$pcap"
    bench "(d) read t1" "$pcap" "$REMORA_BIN" read "$pcap" --format count --threads 1
    bench "(d) read t2" "$pcap" "$REMORA_BIN" read "$pcap" --format count --threads 2
    # The two-thread gain once more, one and two threads taking turns: a
    # ratio of two separate series moves with the host's load between them
    # (this VM's second vCPU is shared at times); turns see the same load.
    # Each round also runs two one-thread processes at once, each reading
    # the whole file: perfectly parallel work of the same kind, so
    # 2 x t1 / (both done) is what two threads could gain on this machine
    # at that moment (memory, caches, the vCPUs themselves), the baseline
    # the two-thread gain is measured against.
    echo "[(d) t1/t2/pair alternating] $(basename "$pcap"): $RUNS rounds" >&2
    python3 - "$REMORA_BIN" "$pcap" "$RUNS" "$BENCH_TIMEOUT" > "$out/$(basename "$pcap" .pcap).alternating.tsv" <<'PY'
import subprocess, sys, time
remora, pcap, runs, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def cmd(t):
    # Bounded by timeout(1), not subprocess' own timeout: that one polls
    # the child with sleeps of up to 50 ms, which the clock here would count.
    return ["timeout", limit, remora, "read", pcap, "--format", "count", "--threads", t]
def timed(*cmds):
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in cmds]
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"{' '.join(p.args)} exited {p.returncode}")
    return time.perf_counter() - t0
for _ in range(runs):
    print(f"{timed(cmd('1')):.4f}\t{timed(cmd('2')):.4f}\t{timed(cmd('1'), cmd('1')):.4f}")
PY
    bench "(e) native" "$pcap" "$REMORA_BENCH_BIN" --stage native "$pcap"
    bench "(f) tshark" "$pcap" tshark -n -r "$pcap" -Y http -T fields -e http.request.method -e http.response.code
done

# ------------------------------------------------------------------ report
python3 - "$rows" "$RUNS" "$out" <<'EOF'
import sys, collections, os, statistics
rows_path, runs, out = sys.argv[1], sys.argv[2], sys.argv[3]
by_file = collections.OrderedDict()
for line in open(rows_path):
    f = line.rstrip("\n").split("\t")
    file, label, pk, med, pps, rss, inproc, err = (f + [""] * 8)[:8]
    by_file.setdefault(file, {})[label] = dict(pk=int(pk or 0), med=med, pps=pps, rss=rss, inproc=inproc, err=err)

def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None

def fmt_int(x):
    return f"{int(x):,}" if num(x) is not None else "–"

print(f"### HTTP/1 whole-process benchmark (median of {runs} runs, wall time incl. process start)\n")
for file, r in by_file.items():
    pk = next(iter(r.values()))["pk"]
    print(f"#### {file} ({pk:,} packets)\n")
    print("| stage | median s | packets/s | peak RSS MB | notes |")
    print("|---|---:|---:|---:|---|")
    for label, v in r.items():
        if v["med"] == "FAILED":
            print(f"| {label} | failed | – | – | {v['err']} |")
            continue
        rss = f"{int(v['rss']) / 1024:.0f}" if num(v["rss"]) else "–"
        print(f"| {label} | {float(v['med']):.3f} | {fmt_int(v['pps'])} | {rss} | {v['inproc']} |")
    def ratio(a, b):
        x, y = num(r.get(a, {}).get("pps")), num(r.get(b, {}).get("pps"))
        return f"{x / y:.2f}x" if x and y else "n/a"
    print()
    print("| ratio (packets/s) | value |")
    print("|---|---:|")
    print(f"| (d) remora read t1 / (f) tshark | {ratio('(d) read t1', '(f) tshark')} |")
    print(f"| (d) remora read t1 / (e) native | {ratio('(d) read t1', '(e) native')} |")
    print(f"| remora read threads 2 / threads 1 | {ratio('(d) read t2', '(d) read t1')} |")
    alt = os.path.join(out, os.path.splitext(file)[0] + ".alternating.tsv")
    if os.path.exists(alt):
        turns = [tuple(map(float, l.split())) for l in open(alt) if l.strip()]
        if turns:
            gain = [t1 / t2 for t1, t2, _ in turns]
            ceiling = [2 * t1 / pair for t1, _, pair in turns]
            print(f"| the same, {len(turns)} alternating rounds (median of per-round ratios) | {statistics.median(gain):.2f}x |")
            print(f"| baseline: two one-thread processes at once, 2 x t1 / their wall time (same rounds) | {statistics.median(ceiling):.2f}x |")
            print(f"| two-thread gain / baseline (median of per-round ratios) | {statistics.median(g / c for g, c in zip(gain, ceiling)):.2f} |")
    print()
print("| peak RSS of `remora read` (MB) | threads 1 | threads 2 |")
print("|---|---:|---:|")
for file, r in by_file.items():
    def rss(l):
        v = r.get(l, {})
        return f"{int(v['rss']) / 1024:.0f}" if num(v.get("rss")) else "–"
    print(f"| {file} | {rss('(d) read t1')} | {rss('(d) read t2')} |")
EOF
