//! Throughput of read + decode: frames/s over one capture file.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use remora_decode::{DecodeConfig, Decoded, Decoder};
use remora_source::CaptureReader;

fn bench_file() -> PathBuf {
    std::env::var_os("REMORA_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/captures/generated/redis.pcap"))
}

fn read_and_decode(path: &Path) -> (u64, u64) {
    let mut reader = CaptureReader::open(path).expect("open bench capture");
    let mut decoder = Decoder::new(DecodeConfig::default());
    let mut payload = 0u64;
    while let Some(frame) = reader.next_frame() {
        let frame = frame.expect("bench capture is valid");
        if let Decoded::Packet(p) = decoder.decode(&frame) {
            payload += p.payload.len() as u64;
        }
    }
    (reader.frames(), payload)
}

fn decode(c: &mut Criterion) {
    let path = bench_file();
    let (frames, _) = read_and_decode(&path);
    let mut group = c.benchmark_group("read+decode");
    group.throughput(Throughput::Elements(frames));
    group.bench_function(path.file_name().unwrap().to_string_lossy().as_ref(), |b| {
        b.iter(|| read_and_decode(&path))
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
