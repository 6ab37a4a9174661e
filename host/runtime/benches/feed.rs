//! ns per `feed` of a 450-byte chunk through the trivial `lines` test plugin.
//!
//! `cargo bench -p remora-runtime --bench feed` (builds the test plugins first).

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use remora_runtime::testing::plugin_path;
use remora_runtime::wit::{Direction, FlowInfo, Transport};
use remora_runtime::{Runtime, RuntimeConfig, Shard};

fn chunk(lines: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(450);
    if lines == 0 {
        v.resize(450, b'a');
        return v;
    }
    let per = 450 / lines;
    for i in 0..lines {
        let len = if i + 1 == lines { 450 - v.len() } else { per };
        v.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len - 1));
        v.push(b'\n');
    }
    assert_eq!(v.len(), 450);
    v
}

fn bench(c: &mut Criterion) {
    let cfg = RuntimeConfig {
        cache_dir: Some(std::env::temp_dir().join("remora-runtime-bench-cache")),
        ..RuntimeConfig::default()
    };
    let mut rt = Runtime::new(cfg).expect("runtime");
    let p = rt
        .load_file(&plugin_path("remora-test-lines"))
        .expect("load");
    let mut shard = Shard::new(Arc::new(rt));
    let flow = FlowInfo {
        id: 1,
        transport: Transport::Tcp,
        client_ip: std::net::IpAddr::from([10, 0, 0, 1]).into(),
        client_port: 40000,
        server_ip: std::net::IpAddr::from([10, 0, 0, 2]).into(),
        server_port: 7777,
    };
    let s = shard.open(p, &flow).expect("open");

    let mut g = c.benchmark_group("feed");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    for (name, lines) in [
        ("450B_no_message", 0),
        ("450B_1_message", 1),
        ("450B_8_messages", 8),
    ] {
        let data = chunk(lines);
        let mut base = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = shard
                    .feed(&s, Direction::ToServer, base, &data)
                    .expect("feed");
                base += 450;
                assert_eq!(r.messages.len(), lines);
                r
            })
        });
    }
    g.finish();
    shard.close(&s);
}

criterion_group!(benches, bench);
criterion_main!(benches);
