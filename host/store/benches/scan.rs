//! Scan and append throughput of the entry store, next to a same-run
//! baseline: cloning the same entries out of an in-memory Vec.
//!
//! `cargo bench -p remora-store --bench scan`

use std::hint::black_box;
use std::ops::ControlFlow;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use remora_store::{Order, Scan, Store, StoreConfig, StoredEntry};

#[path = "../tests/common/mod.rs"]
mod common;

const SCAN_ENTRIES: u64 = 1_000_000;
const BATCH: u64 = 512;

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        max_bytes: 8 << 30,
        sync: false,
        ..StoreConfig::new(dir.path())
    };
    let (store, _) = Store::open(cfg).unwrap();
    let catalog = common::catalog("http");
    let mut memory = Vec::with_capacity(SCAN_ENTRIES as usize);
    for first in (1..=SCAN_ENTRIES).step_by(BATCH as usize) {
        let mut b = common::batch(first, BATCH.min(SCAN_ENTRIES - first + 1));
        store.append(&catalog, &mut b).unwrap();
        memory.extend(b);
    }
    let stats = store.stats();
    eprintln!(
        "store: {} entries, {} bytes on disk ({:.0} bytes/entry incl. bodies), {} segments",
        stats.entries,
        stats.bytes,
        stats.bytes as f64 / stats.entries as f64,
        stats.segments
    );

    let mut g = c.benchmark_group("scan_1M_summaries");
    g.sample_size(10);
    g.throughput(Throughput::Elements(SCAN_ENTRIES));
    g.bench_function("baseline_clone_from_memory", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for e in memory.iter().rev() {
                let s = StoredEntry {
                    catalog: catalog.clone(),
                    entry: e.clone(),
                };
                n += black_box(&s).entry.id & 1;
            }
            n
        })
    });
    for order in [Order::NewestFirst, Order::OldestFirst] {
        g.bench_function(format!("store_{order:?}"), |b| {
            b.iter(|| {
                let mut n = 0u64;
                let q = Scan {
                    order,
                    ..Scan::default()
                };
                store
                    .scan(&q, &mut |e| {
                        n += black_box(e).entry.id & 1;
                        ControlFlow::Continue(())
                    })
                    .unwrap();
                n
            })
        });
    }
    g.finish();
}

fn append(c: &mut Criterion) {
    let catalog: Arc<_> = common::catalog("http");
    let mut g = c.benchmark_group("append_512_entry_batches");
    g.sample_size(20);
    g.throughput(Throughput::Elements(BATCH));
    for sync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            max_bytes: 256 << 20,
            sync,
            ..StoreConfig::new(dir.path())
        };
        let (store, _) = Store::open(cfg).unwrap();
        let template = common::batch(1, BATCH);
        g.bench_function(if sync { "fdatasync" } else { "no_sync" }, |b| {
            b.iter_batched_ref(
                || template.clone(),
                |batch| store.append(&catalog, batch).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, scan, append);
criterion_main!(benches);
