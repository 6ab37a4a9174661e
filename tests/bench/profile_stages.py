#!/usr/bin/env python3
"""Share of a `perf` profile per pipeline stage.

Reproduces README's "Where the time goes now" table:

    RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=/tmp/fp \\
        cargo build --release -p remora-bench
    REMORA_WASM_PROFILE=perfmap perf record -F 2000 --call-graph fp -o perf.data \\
        /tmp/fp/release/remora-bench --plugins target/release/plugins \\
        --threads 1 --stage wasm FILE
    perf script -i perf.data -F ip,sym > stacks.txt
    tests/bench/profile_stages.py stacks.txt

Each sample counts once, for the first stage below with a frame on its
stack; plugin loading and compilation (before the timed run) are left out
of the percentages.
"""

import collections
import sys

STAGES = [
    ("loading plugins (not timed)", ["Runtime::load_dir", "Runtime::compile"]),
    ("reading the file", ["CaptureReader::next_frame"]),
    ("L2-L4 decode", ["Decoder::decode"]),
    ("guest code", ["#run"]),  # remora:plugin/dissector@0.x.y#run
    ("entering Wasm, lifting results", ["TypedFunc", "Func::call_raw", "with_lift_context"]),
    ("plugin output into entries", ["convert::collect", "pairing::"]),
    ("runtime per call", ["remora_runtime::Shard::run"]),
    ("stream bytes into dissect buffers", ["DissectStage<B>::on_event", "DissectStage<B>::data"]),
    ("the batch (run_queued)", ["DissectStage<B>::run_queued"]),
    ("flows and TCP reassembly", ["FlowTable::process", "Stream::segment", "Stream::deliver"]),
    ("pipeline loop", ["remora_pipeline::"]),
]


def samples(path):
    stack = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                if stack:
                    yield stack
                stack = []
                continue
            parts = line.split(None, 1)
            stack.append(parts[-1])
    if stack:
        yield stack


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    counts = collections.Counter()
    for stack in samples(sys.argv[1]):
        stage = next(
            (name for name, pats in STAGES if any(p in f for f in stack for p in pats)),
            "other",
        )
        counts[stage] += 1
    untimed = counts.pop(STAGES[0][0], 0)
    total = sum(counts.values())
    if total == 0:
        sys.exit(f"{sys.argv[1]}: no samples")
    for stage, n in counts.most_common():
        print(f"{stage:36s} {100 * n / total:5.1f}%")
    print(f"({untimed} samples of plugin loading left out, {total} counted)")


if __name__ == "__main__":
    main()
