#!/usr/bin/env python3
"""Write the capture a port scan leaves: many flows, each one packet or two.

Used by tests/bench/scan.sh. One scanner (10.1.0.0/16, a source port per
probe) probes each of --flows (address, port) targets in 10.2.0.0/16, 10 µs
apart.

TCP (default): one SYN per target; every other target answers RST-ACK (a
closed port) and the rest stay silent (filtered), so half the flows close
at once and half stay open until the capture ends. Nothing carries
payload: what such traffic costs is the flow tracking alone.

--udp: one datagram of 32 pseudo-random bytes per target (ports 2000-2999,
which no built-in plugin hints), unanswered: every flow is probed by the
plugins that speak UDP, none claims it, and it stays open (raw) until the
capture ends.

The packets are built here, with valid IPv4 header checksums; TCP and UDP
checksums are left zero (Remora does not verify them).

    gen_scan.py --flows 200000 -o scan.pcap
    gen_scan.py --udp --flows 200000 -o udp.pcap
"""
import argparse
import struct

SCANNER_MAC = bytes.fromhex("020000000001")
TARGET_MAC = bytes.fromhex("020000000002")
SYN, RST, ACK = 0x02, 0x04, 0x10


def ip_checksum(header):
    total = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ethernet_ipv4(src, dst, proto, l4, ident, from_scanner):
    """An Ethernet frame carrying `l4` in an IPv4 packet with a valid header checksum."""
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0, 64, proto, 0, src, dst))
    ip[10:12] = struct.pack("!H", ip_checksum(bytes(ip)))
    macs = TARGET_MAC + SCANNER_MAC if from_scanner else SCANNER_MAC + TARGET_MAC
    return macs + b"\x08\x00" + bytes(ip) + l4


def frame(src, dst, sport, dport, seq, ack, flags, ident, from_scanner):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 1024, 0, 0)
    return ethernet_ipv4(src, dst, 6, tcp, ident, from_scanner)


def datagram(src, dst, sport, dport, payload, ident):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ethernet_ipv4(src, dst, 17, udp, ident, True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, required=True, help="targets probed (one flow each)")
    ap.add_argument("--udp", action="store_true", help="one unanswered datagram per target instead of a SYN")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    if not 1 <= args.flows <= 1 << 24:
        ap.error(f"--flows must be 1..16777216, got {args.flows}")
    t0 = 1_700_000_000 * 1_000_000
    packets = 0
    with open(args.output, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

        def write(ts_us, data):
            nonlocal packets
            out.write(struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(data), len(data)))
            out.write(data)
            packets += 1

        for i in range(args.flows):
            scanner = bytes([10, 1, (i >> 16) & 0xFF, 1])
            target = bytes([10, 2, (i >> 8) & 0xFF, i & 0xFF])
            sport, dport = 20000 + i % 40000, 1 + i % 1024
            ts = t0 + i * 10
            if args.udp:
                seed = ((i + 1) * 0x9E3779B97F4A7C15) & (2**64 - 1)
                payload = b"".join(((seed * (k + 1)) >> 24 & 0xFFFFFFFF).to_bytes(4, "big") for k in range(8))
                write(ts, datagram(scanner, target, sport, 2000 + i % 1000, payload, i & 0xFFFF))
                continue
            isn = (i * 2654435761) & 0xFFFFFFFF
            write(ts, frame(scanner, target, sport, dport, isn, 0, SYN, i & 0xFFFF, True))
            if i % 2 == 0:
                write(ts + 5, frame(target, scanner, dport, sport, 0, (isn + 1) & 0xFFFFFFFF, RST | ACK, i & 0xFFFF, False))
    print(f"wrote {args.output}: {packets} packets, {args.flows} flows")


if __name__ == "__main__":
    main()
