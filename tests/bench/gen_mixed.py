#!/usr/bin/env python3
"""Build a large mixed-protocol capture by looping the real fixtures.

Used by tests/bench/mixed.sh. Each round takes every input capture, rebases its
timestamps to the round's start and merges them by time (so ~25 flows of
different protocols are in flight together), and gives every (round, input,
address) a fresh address (IPv4 from 10.0.0.0/8, IPv6 from fd00::/64): flows
stay distinct across rounds without touching ports, which the plugins' port
hints rely on. MACs are kept. IP/TCP checksums are not recomputed: Remora does
not verify them (the capture is never replayed onto a wire).

    gen_mixed.py --packets 1000000 -o mixed.pcap FILE...
    gen_mixed.py --rounds 50 --only redis -o redis.pcap FILE...   # one protocol's share
    gen_mixed.py --packets 1000000 --by-protocol -o grouped.pcap FILE...

--by-protocol writes each round's protocols one after the other (each
protocol's inputs merged by time, in a time slot of its own) instead of all
of them merged by time: the same packets, flows and entries, without the
interleaving, to measure what interleaving costs.

The protocol label of an input is its fixture directory (tests/fixtures/<p>/)
or the file name's stem up to the first '-' (http1-nginx.pcap -> http1).
Only classic pcap with Ethernet link type is accepted; anything else is listed
on stderr as skipped (with the reason) and left out.
"""
import argparse
import os
import struct
import sys

ROUND_GAP_US = 1_000_000  # between rounds, so idle flows from the last round expire by capture time


def label_of(path):
    parent = os.path.basename(os.path.dirname(path))
    if parent not in ("captures", "generated", "public", "fixtures"):
        return parent
    return os.path.basename(path).split(".")[0].split("-")[0]


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f"{path}: too short for a pcap header ({len(data)} bytes)")
    magic = data[:4]
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1), b"\xa1\xb2\xc3\xd4": (">", 1),
        b"\x4d\x3c\xb2\xa1": ("<", 1000), b"\xa1\xb2\x3c\x4d": (">", 1000),
    }
    if magic not in formats:
        raise ValueError(f"{path}: not a classic pcap (magic {magic.hex()})")
    endian, div = formats[magic]
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"{path}: link type {linktype}, only Ethernet (1) is supported")
    pkts = []
    off = 24
    rec = struct.Struct(endian + "IIII")
    while off + 16 <= len(data):
        sec, frac, incl, orig = rec.unpack_from(data, off)
        off += 16
        if off + incl > len(data):
            print(f"{path}: truncated record at offset {off - 16}, stopping there", file=sys.stderr)
            break
        pkts.append((sec * 1_000_000 + frac // div, data[off:off + incl], orig))
        off += incl
    if not pkts:
        raise ValueError(f"{path}: no packets")
    return pkts


def addr_offsets(frame):
    """(offset, length) of the source and destination IP addresses, or None."""
    off = 12
    etype = struct.unpack_from(">H", frame, off)[0] if len(frame) >= 14 else 0
    while etype in (0x8100, 0x88A8) and len(frame) >= off + 6:
        off += 4
        etype = struct.unpack_from(">H", frame, off)[0]
    ip = off + 2
    if etype == 0x0800 and len(frame) >= ip + 20:
        return ((ip + 12, 4), (ip + 16, 4))
    if etype == 0x86DD and len(frame) >= ip + 40:
        return ((ip + 8, 16), (ip + 24, 16))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--packets", type=int, help="stop after the round that reaches this many packets")
    g.add_argument("--rounds", type=int)
    ap.add_argument("--only", help="write only the inputs with this protocol label (same rounds and addresses)")
    ap.add_argument("--by-protocol", action="store_true",
                    help="within a round, one protocol after the other instead of all merged by time")
    args = ap.parse_args()
    if args.packets is not None and args.packets <= 0:
        ap.error(f"--packets must be positive, got {args.packets}")
    if args.rounds is not None and args.rounds <= 0:
        ap.error(f"--rounds must be positive, got {args.rounds}")

    inputs = []
    for p in args.inputs:
        try:
            pk = read_pcap(p)
        except ValueError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        t0 = pk[0][0]
        inputs.append((label_of(p), [(ts - t0, fr, orig) for ts, fr, orig in pk]))
    if not inputs:
        sys.exit("no usable input captures")
    labels = sorted({l for l, _ in inputs})
    if args.only and args.only not in labels:
        sys.exit(f"--only {args.only!r}: no input has that label (labels: {', '.join(labels)})")
    per_round = sum(len(p) for _, p in inputs)
    rounds = args.rounds or -(-args.packets // per_round)
    # one round's time: all inputs at once, or (--by-protocol) one slot per protocol
    slot = max(p[-1][0] for _, p in inputs) + ROUND_GAP_US
    span = slot * len(labels) if args.by_protocol else slot

    def when(ts, i):
        """A packet's time within its round."""
        return labels.index(inputs[i][0]) * slot + ts if args.by_protocol else ts

    # one merged, time-ordered round: (rel_ts, input index, frame, orig_len)
    merged = sorted(
        ((when(ts, i), i, fr, orig) for i, (_, pk) in enumerate(inputs) for ts, fr, orig in pk),
        key=lambda r: (r[0], r[1]),
    )
    offsets = [addr_offsets(fr) for _, _, fr, _ in merged]
    base = 1_764_000_000 * 1_000_000  # 2025-11-24, any fixed time works
    next_addr = [1]
    written = 0
    counts = {l: 0 for l in labels}
    rec = struct.Struct("<IIII")
    with open(args.output, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for r in range(rounds):
            amap = {}

            def fresh(i, addr):
                key = (i, addr)
                new = amap.get(key)
                if new is None:
                    n = next_addr[0]
                    next_addr[0] += 1
                    if n >= 1 << 24:
                        sys.exit("ran out of 10.0.0.0/8 addresses; use fewer rounds")
                    if len(addr) == 4:
                        new = struct.pack(">I", (10 << 24) | n)
                    else:
                        new = b"\xfd" + b"\x00" * 11 + struct.pack(">I", n)
                    amap[key] = new
                return new

            rbase = base + r * span
            for (ts, i, fr, orig), ao in zip(merged, offsets):
                label = inputs[i][0]
                if args.only and label != args.only:
                    if ao:  # allocate anyway, so addresses match the full mix
                        fresh(i, bytes(fr[ao[0][0]:ao[0][0] + ao[0][1]]))
                        fresh(i, bytes(fr[ao[1][0]:ao[1][0] + ao[1][1]]))
                    continue
                if ao:
                    b = bytearray(fr)
                    for o, n in ao:
                        b[o:o + n] = fresh(i, bytes(fr[o:o + n]))
                    fr = b
                t = rbase + ts
                out.write(rec.pack(t // 1_000_000, t % 1_000_000, len(fr), orig))
                out.write(fr)
                written += 1
                counts[label] += 1
    share = ", ".join(f"{l} {c}" for l, c in sorted(counts.items()) if c)
    print(f"wrote {args.output}: {written} packets in {rounds} rounds of {per_round} "
          f"from {len(inputs)} inputs; per protocol: {share}", file=sys.stderr)


if __name__ == "__main__":
    main()
