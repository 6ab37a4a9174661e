#!/usr/bin/env python3
"""Runs the senders of one live-capture run and measures what really arrived.

Usage (from tests/bench/live.sh):
    live_send.py --ns-pid PID --iface rbB --capture-pid PID --timeout S \\
        --sender 'tcpreplay ...' [--sender '...']

Senders' own figures are claims (tcpreplay's "Rated" counts packets the
socket accepted, at the rate it aimed for); what counts is the captured
interface's rx_packets, sampled every 20 ms from /proc/NS_PID/net/dev (any
process inside the namespace shows that namespace's counters, so no
`ip netns exec` per sample). The senders start together and run in
parallel, each in a session of its own whose autogroup gets nice --nice
(see live.sh); all are killed after --timeout seconds, or when this script
is interrupted.

Prints one tab-separated line:
    delivered  rx_dropped  active_s  rate  peak_1s  capture_cpu  sender_cpu_s  idle
delivered: packets that reached IFACE; rate: delivered / active seconds
(first to last change of the counter); peak_1s: the best rate over any
window of 0.5-1 s; capture_cpu: CPU seconds per second of the capture
process during the active window (1.0 = one core); sender_cpu_s: CPU seconds
of all senders together over their whole life, reading the capture included
(delivering a frame through the veth, the capture socket's copy too, runs on
the sender's CPU); idle: the machine's
idle share of all cores over the same window.
"""

import argparse
import os
import resource
import shlex
import subprocess
import sys
import time

SAMPLE_S = 0.02


def iface_counters(net_dev, iface):
    """(rx_packets, rx_dropped) of IFACE from an open /proc/PID/net/dev."""
    net_dev.seek(0)
    for line in net_dev.read().splitlines()[2:]:
        name, _, fields = line.partition(":")
        if name.strip() == iface:
            f = fields.split()
            return int(f[1]), int(f[3])
    sys.exit(f"live_send.py: interface {iface!r} is not in the namespace's /proc/net/dev")


def process_cpu_s(pid):
    """CPU seconds (user + system) of PID and its threads, or 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # fields[0] is field 3 (state): utime, stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_idle():
    """(idle, total) jiffies over all cores from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return cpu[3] + cpu[4], sum(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns-pid", type=int, required=True)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--capture-pid", type=int, required=True)
    ap.add_argument("--timeout", type=float, required=True)
    ap.add_argument("--nice", type=int, default=0, help="autogroup nice of the senders")
    ap.add_argument("--sender", action="append", required=True)
    ap.add_argument("--log", required=True, help="senders' stdout and stderr go here")
    a = ap.parse_args()

    net_dev = open(f"/proc/{a.ns_pid}/net/dev")
    rx0, drop0 = iface_counters(net_dev, a.iface)
    log = open(a.log, "w")
    procs = []
    try:
        for s in a.sender:
            p = subprocess.Popen(
                shlex.split(s), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            procs.append(p)
            with open(f"/proc/{p.pid}/autogroup", "w") as f:
                f.write(str(a.nice))
        measure(a, net_dev, procs, rx0, drop0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def measure(a, net_dev, procs, rx0, drop0):
    start = time.monotonic()
    # (time, rx_packets, capture CPU s, machine idle jiffies, total jiffies)
    samples = []
    while True:
        now = time.monotonic()
        rx, _ = iface_counters(net_dev, a.iface)
        samples.append((now, rx, process_cpu_s(a.capture_pid), *machine_idle()))
        if all(p.poll() is not None for p in procs):
            break
        if now - start > a.timeout:
            for p in procs:
                p.kill()
            print(f"live_send.py: senders killed after {a.timeout:.0f} s", file=sys.stderr)
            break
        time.sleep(SAMPLE_S)
    # frames still in flight through the veth
    time.sleep(0.2)
    rx1, drop1 = iface_counters(net_dev, a.iface)
    for p in procs:
        p.wait()
        if p.returncode != 0:
            print(f"live_send.py: a sender exited with {p.returncode}; see {a.log}", file=sys.stderr)

    moving = [i for i in range(1, len(samples)) if samples[i][1] != samples[i - 1][1]]
    if not moving:
        print(f"{rx1 - rx0}\t{drop1 - drop0}\t0\t0\t0\t0\t0\t0")
        return
    first, last = moving[0] - 1, moving[-1]
    t0, n0, c0, i0, j0 = samples[first]
    t1, n1, c1, i1, j1 = samples[last]
    active = t1 - t0
    peak, lo = 0.0, first
    for hi in range(first, last + 1):
        while samples[hi][0] - samples[lo][0] > 1.0:
            lo += 1
        span = samples[hi][0] - samples[lo][0]
        if span >= 0.5:
            peak = max(peak, (samples[hi][1] - samples[lo][1]) / span)
    if peak == 0.0:  # shorter than half a second
        peak = (n1 - n0) / active
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    sender_cpu_s = ru.ru_utime + ru.ru_stime
    idle = (i1 - i0) / (j1 - j0) if j1 > j0 else 0.0
    print(
        f"{rx1 - rx0}\t{drop1 - drop0}\t{active:.3f}\t{(n1 - n0) / active:.0f}\t{peak:.0f}"
        f"\t{(c1 - c0) / active:.2f}\t{sender_cpu_s:.2f}\t{idle:.2f}"
    )


if __name__ == "__main__":
    main()
