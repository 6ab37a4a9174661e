#!/usr/bin/env python3
"""Write seed corpora for the fuzz targets from captured traffic.

Each TCP or UDP conversation of a capture becomes one seed in the layout
`src/lib.rs` documents, with its segments in capture order and direction, so
fuzzing starts from real traffic. Needs tshark.

    plugins/fuzz/make_seeds.py [CAPTURE_DIR...]   (default: /work/shared/captures
                                                   and tests/fixtures)
"""
import collections
import hashlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

# Target -> (server ports, capture file name prefixes).
TARGETS = {
    "amqp": ({5672}, ["amqp"]),
    "dns": ({53, 5353}, ["dns"]),
    "http1": ({80, 8080, 8000, 3128}, ["http1", "websocket"]),
    "http2": ({80, 443, 8080, 50051}, ["http2", "grpc"]),
    "kafka": ({9092}, ["kafka"]),
    "mqtt": ({1883}, ["mqtt"]),
    "mysql": ({3306}, ["mysql"]),
    "postgres": ({5432}, ["postgres"]),
    "redis": ({6379}, ["redis"]),
}
MAX_SEED = 16 << 10  # scripts/fuzz.sh runs with -max_len=16384
MAX_SEEDS = 20


def conversations(path):
    """[(transport, [(to_server_port, payload bytes)...], ports)] in capture order."""
    fields = ["tcp.stream", "udp.stream", "tcp.srcport", "tcp.dstport",
              "udp.srcport", "udp.dstport", "tcp.payload", "udp.payload",
              "tcp.analysis.retransmission"]
    cmd = ["tshark", "-n", "-r", path, "-o", "tcp.desegment_tcp_streams:FALSE",
           "-Y", "tcp.len > 0 || udp", "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    convs = collections.OrderedDict()
    for line in out.splitlines():
        c = (line.split("\t") + [""] * len(fields))[: len(fields)]
        tstream, ustream, tsp, tdp, usp, udp_, tpay, upay, retrans = c
        if retrans:
            continue
        if tstream:
            key, sport, dport, pay = ("tcp", tstream), tsp, tdp, tpay
        elif ustream:
            key, sport, dport, pay = ("udp", ustream), usp, udp_, upay
        else:
            continue
        pay = pay.replace(":", "")
        if not pay:
            continue
        convs.setdefault(key, []).append((int(sport), int(dport), bytes.fromhex(pay)))
    return [(k[0], segs) for k, segs in convs.items()]


def record(to_client, payload):
    d = 0x40 if to_client else 0
    if 1 <= len(payload) <= 63:
        return bytes([d | (len(payload) - 1)]) + payload
    out = b""
    for i in range(0, len(payload), 0xFFFF):
        part = payload[i:i + 0xFFFF]
        out += bytes([d | 0x3F]) + len(part).to_bytes(2, "little") + part
    return out


def encode(transport, segs, ports, chunk=None):
    flags = 1 if transport == "tcp" and "dns" in ports[1] else 0
    out = bytes([flags])
    sport0, dport0, _ = segs[0]
    server = dport0 if dport0 in ports[0] or sport0 not in ports[0] and dport0 < sport0 else sport0
    for sport, dport, pay in segs:
        to_client = sport == server
        step = chunk or len(pay)
        for i in range(0, len(pay), step):
            out += record(to_client, pay[i:i + step])
        if len(out) >= MAX_SEED:
            break
    return out[:MAX_SEED]


def main():
    dirs = sys.argv[1:] or ["/work/shared/captures", os.path.join(ROOT, "tests", "fixtures")]
    files = []
    for d in dirs:
        for base, _, names in os.walk(d):
            files += [os.path.join(base, n) for n in sorted(names) if ".pcap" in n]
    for target, (ports, prefixes) in TARGETS.items():
        seeds = []
        for f in files:
            name = os.path.basename(f)
            if not any(name.startswith(p) or name.startswith(p + "-") for p in prefixes):
                continue
            for transport, segs in conversations(f):
                seeds.append(encode(transport, segs, (ports, target)))
                if len(seeds) == 1:
                    # The same conversation in small pieces: the buffering paths.
                    seeds.append(encode(transport, segs, (ports, target), chunk=7))
        outdir = os.path.join(HERE, "seeds", target)
        os.makedirs(outdir, exist_ok=True)
        uniq = {}
        for s in seeds:  # first ones win: they include the small-piece variant
            uniq.setdefault(hashlib.sha1(s).hexdigest()[:16], s)
        for h, s in list(uniq.items())[:MAX_SEEDS]:
            with open(os.path.join(outdir, h), "wb") as fh:
                fh.write(s)
        print(f"{target}: {min(len(uniq), MAX_SEEDS)} seeds")


if __name__ == "__main__":
    main()
