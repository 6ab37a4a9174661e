//! Throughput of the read stage alone: frames/s over one capture file.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use remora_source::CaptureReader;

fn bench_file() -> PathBuf {
    std::env::var_os("REMORA_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/captures/generated/redis.pcap"))
}

fn count_frames(path: &std::path::Path) -> (u64, u64) {
    let mut reader = CaptureReader::open(path).expect("open bench capture");
    let mut bytes = 0u64;
    while let Some(frame) = reader.next_frame() {
        bytes += frame.expect("bench capture is valid").data.len() as u64;
    }
    (reader.frames(), bytes)
}

fn read(c: &mut Criterion) {
    let path = bench_file();
    let (frames, _) = count_frames(&path);
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(frames));
    group.bench_function(path.file_name().unwrap().to_string_lossy().as_ref(), |b| {
        b.iter(|| count_frames(&path))
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
