#!/usr/bin/env bash
# Store query benchmarks (issue 4 (2) and (3)): the whole-process cost of a
# filtered query over a store of ~1M entries, and GraphQL latency of the
# dashboard's list query under 50 concurrent clients.
#
#   tests/bench/store_query.sh
#   ENTRIES=200000 RUNS=5 tests/bench/store_query.sh
#
# No root needed. Network: 127.0.0.1 only.
# 1. Fill (once; kept and reused while its stamp matches): tests/out/bench/store/
#    gets the entries of gen-http-capture captures (1M packets ~ 150k entries
#    each, seeds 101, 102, ...) until it holds >= ENTRIES (default 1000000):
#    each capture is generated into a temp file, ingested by
#    `remora tap -r FILE --data-dir DIR --store-size 8GiB`, then deleted.
# 2. Serve: `remora tap -r EMPTY.pcap --data-dir DIR --listen 127.0.0.1:PORT`
#    (reads nothing, serves the store).
# 3. Filter scan (hyperfine, RUNS runs, median wall time incl. process start):
#      remora query --server URL 'http && status_code >= 500' -n 50
#      remora query --server URL 'http && status_code == 599' -n 50   (matches nothing:
#          examines every entry, up to the API's 2M cap)
#    For each, `entries(filter, limit: 50) { scanned }` says how many entries
#    the query examined; entries/s = scanned / median time.
# 4. GraphQL latency: wrk -t2 -c50 -d WRK_SECONDS --latency, POST /graphql of
#    `entries(limit: 100)` with the dashboard's list fields; p50/p90/p99 and
#    requests/s (also repeated RUNS times; medians reported).
# Every process is bounded by `timeout`; the server is stopped on exit (trap).
# Env: ENTRIES (1000000), RUNS (3), PORT (18898), WRK_SECONDS (15), REMORA_BIN, GEN_BIN.
# Output: markdown on stdout; logs under tests/out/bench/store-query/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ws="$(cd "$here/../.." && pwd)"
out="$ws/tests/out/bench"
logs="$out/store-query"
data="$out/store"
mkdir -p "$logs"
ENTRIES="${ENTRIES:-1000000}"
RUNS="${RUNS:-3}"
PORT="${PORT:-18898}"
WRK_SECONDS="${WRK_SECONDS:-15}"
. "$here/lib.sh"
for c in hyperfine wrk curl python3; do
    command -v "$c" >/dev/null || { echo "missing $c (apt-get install $c)" >&2; exit 1; }
done
URL="http://127.0.0.1:$PORT"
tmp="$(mktemp -d /tmp/remora-sq.XXXXXX)"
tap_pid=""
stop_tap() { [ -n "$tap_pid" ] && { kill "$tap_pid" 2>/dev/null; wait "$tap_pid" 2>/dev/null || true; }; tap_pid=""; }
trap 'stop_tap; rm -rf "$tmp"' EXIT INT TERM

gql() { # QUERY -> JSON response
    python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1]}))' "$1" \
        | curl -sf -m 120 -H 'content-type: application/json' --data-binary @- "$URL/graphql"
}
store_entries() { gql '{ stats { store { entries } } }' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["stats"]["store"]["entries"])'; }
start_tap() { # extra tap args...
    timeout 1800 "$REMORA_BIN" --cache-dir "$out/live-cache" tap --data-dir "$data" --store-size 8GiB \
        --listen "127.0.0.1:$PORT" "$@" > "$logs/tap.log" 2>&1 &
    tap_pid=$!
    local i
    for i in $(seq 150); do curl -sf "$URL/healthz" > /dev/null 2>&1 && return 0; sleep 0.2; done
    echo "tap did not come up; see $logs/tap.log" >&2; exit 1
}
wait_stable() { # until store entries stop changing for 2 polls (max 300 s)
    local last=-1 now i
    for i in $(seq 300); do
        now="$(store_entries)"
        [ "$now" = "$last" ] && [ "$now" != 0 ] && { echo "$now"; return 0; }
        last="$now"; sleep 1
    done
    echo "$now"
}

# ------------------------------------------------------------ 1. fill
stamp="$data/.bench-stamp"
want="entries>=$ENTRIES $(stat -c %Y "$GEN_BIN") $(stat -c %Y "$REMORA_BIN")"
if [ ! -f "$stamp" ] || [ "$(head -1 "$stamp")" != "$want" ]; then
    rm -rf "$data"; mkdir -p "$data"
    have=0 seed=101
    while [ "$have" -lt "$ENTRIES" ] && [ "$seed" -lt 130 ]; do
        echo "filling: seed $seed, store has $have entries" >&2
        timeout 600 "$GEN_BIN" --packets 1000000 --seed "$seed" -o "$tmp/fill.pcap" 2>> "$logs/fill.log"
        start_tap -r "$tmp/fill.pcap"
        have="$(wait_stable)"
        stop_tap
        rm -f "$tmp/fill.pcap"
        seed=$((seed + 1))
    done
    echo "$want" > "$stamp"
fi

# ------------------------------------------------------------ 2. serve
python3 -c 'import struct,sys; open(sys.argv[1],"wb").write(struct.pack("<IHHiIII",0xA1B2C3D4,2,4,0,0,65535,1))' "$tmp/empty.pcap"
start_tap -r "$tmp/empty.pcap"
total="$(store_entries)"
echo "serving $total entries" >&2

# ------------------------------------------------------------ 3. filter scan
rows="$logs/query.tsv"; : > "$rows"
for filter in 'http && status_code >= 500' 'http && status_code == 599'; do
    scanned="$(gql "{ entries(filter: $(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$filter"), limit: 50) { scanned entries { id } } }" \
        | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]["entries"]; print(d["scanned"], len(d["entries"]))')"
    tag="$(tr -c 'a-z0-9' _ <<< "$filter")"
    hyperfine -N --style none --warmup 1 --runs "$RUNS" --export-json "$logs/$tag.json" \
        "timeout 300 $REMORA_BIN query --server $URL --format jsonl -n 50 '$filter'" > /dev/null 2> "$logs/$tag.err"
    med="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$logs/$tag.json")"
    printf '%s\t%s\t%s\n' "$filter" "$scanned" "$med" >> "$rows"
done

# ------------------------------------------------------------ 4. GraphQL latency
cat > "$tmp/entries.lua" <<'EOF'
-- GraphQL answers errors with status 200, so each body is checked; `bad` lives
-- in each thread's Lua state and is summed in done() through setup()'s handles.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"query":"{ entries(limit: 100) { next scanned entries { id timestamp elapsedTime protocol summary status requestSize responseSize } } }"}'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or not body:find('"entries":[{', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("bad") or 0) end
  io.write(string.format("BAD %d\n", total))
end
EOF
# the same query once by hand: it must return 100 entries
gql '{ entries(limit: 100) { entries { id timestamp elapsedTime protocol summary status requestSize responseSize } } }' \
    | python3 -c 'import json,sys; n=len(json.load(sys.stdin)["data"]["entries"]["entries"]); sys.exit(0 if n == 100 else f"entries(limit: 100) returned {n} entries")'
: > "$logs/wrk.tsv"
for run in $(seq "$RUNS"); do
    timeout $((WRK_SECONDS + 60)) wrk -t2 -c50 -d "${WRK_SECONDS}s" --timeout 10s --latency -s "$tmp/entries.lua" \
        "$URL/graphql" > "$logs/wrk-$run.txt" 2>&1
    python3 - "$logs/wrk-$run.txt" >> "$logs/wrk.tsv" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
def ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
p = {q: ms(re.search(rf"^\s+{q}%\s+(\S+)", t, re.M).group(1)) for q in ("50", "90", "99")}
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
sock = re.search(r"Socket errors: (.*)", t)
bad = re.search(r"^BAD (\d+)", t, re.M)
print(f"{p['50']}\t{p['90']}\t{p['99']}\t{rps}\t{errs.group(1) if errs else 0}\t{bad.group(1) if bad else '?'}\t{sock.group(1) if sock else ''}")
EOF
done
stop_tap

python3 - "$rows" "$logs/wrk.tsv" "$RUNS" "$total" "$WRK_SECONDS" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import sys, statistics
rows, wrk, runs, total, secs, load = sys.argv[1:7]
print(f"### Store queries over {int(total):,} stored entries (median of {runs} runs; load avg at end {load})\n")
print("| `remora query -n 50` filter | entries scanned | entries returned | median s | entries scanned/s |")
print("|---|---:|---:|---:|---:|")
for line in open(rows):
    f, sc, med = line.rstrip("\n").split("\t")
    scanned, got = map(int, sc.split())
    print(f"| `{f}` | {scanned:,} | {got} | {float(med):.3f} | {scanned / float(med):,.0f} |")
w = [l.rstrip("\n").split("\t") for l in open(wrk)]
m = lambda i: statistics.median(float(r[i]) for r in w)
print(f"\n#### GraphQL `entries(limit: 100)`: wrk -t2 -c50 -d{secs}s, loopback\n")
print("| run | p50 ms | p90 ms | p99 ms | requests/s | non-2xx | bad bodies | socket errors |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for i, r in enumerate(w, 1):
    print(f"| {i} | {float(r[0]):.2f} | {float(r[1]):.2f} | {float(r[2]):.2f} | {float(r[3]):,.0f} | {r[4]} | {r[5]} | {r[6] or '–'} |")
print(f"| **median** | **{m(0):.2f}** | **{m(1):.2f}** | **{m(2):.2f}** | **{m(3):,.0f}** | | | |")
EOF
