//! matches/s of compiled filters against a hand-written Rust check of the
//! same condition, on the same entries, in the same run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use remora_entry::{Catalog, Entry, Value, ValueRef};
use remora_filter::{Filter, Variables};

#[path = "../src/testdata.rs"]
#[allow(dead_code)]
mod testdata;
use testdata::{catalog, pair, s, EntryBuilder};

/// A mix like a capture: mostly HTTP, some DNS and Redis.
fn entries(cat: &Catalog) -> Vec<Entry> {
    (0..1000)
        .map(|i| match i % 10 {
            0 => EntryBuilder::new(cat, "dns")
                .req("dns_questions", s("example.com"))
                .build(),
            1 => EntryBuilder::new(cat, "redis")
                .req("redis_type", s("GET"))
                .req("redis_key", s("session:1"))
                .build(),
            _ => EntryBuilder::new(cat, "http1")
                .req("method", s(if i % 3 == 0 { "POST" } else { "GET" }))
                .req("url", s("/api/v1/items?x=1"))
                .req("path", s("/api/v1/items"))
                .req("http_version", s("1.1"))
                .req("headers", pair("Host", "example.com"))
                .req("headers", pair("Content-Type", "application/json"))
                .req("headers", pair("User-Agent", "curl/8"))
                .resp(
                    "status_code",
                    Value::Int(if i % 7 == 0 { 503 } else { 200 }),
                )
                .resp("headers", pair("Content-Length", "10"))
                .build(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cat = catalog();
    let es = entries(&cat);
    let vars = Variables::new(&[&cat]);
    let http_idx = cat.plugins.iter().position(|p| p.name == "http1").unwrap() as u16;
    let status_id = cat.plugins[http_idx as usize]
        .field_by_name("status_code")
        .unwrap()
        .id;
    let mut g = c.benchmark_group("filter");
    g.throughput(Throughput::Elements(es.len() as u64));

    let baseline = |e: &Entry| {
        e.plugin == http_idx
            && e.response
                .as_ref()
                .and_then(|m| m.get(status_id))
                .is_some_and(|v| matches!(v, ValueRef::Int(c) if c >= 500))
    };
    let want = es.iter().filter(|e| baseline(e)).count();
    assert!(want > 0);
    g.bench_function("baseline_closure/http_5xx", |b| {
        b.iter(|| es.iter().filter(|e| baseline(black_box(e))).count())
    });
    for (name, src) in [
        ("http_5xx", "http && status_code >= 500"),
        ("5xx_no_flag", "status_code >= 500"),
        (
            "header_prefix",
            r#"http && request.headers["content-type"].startsWith("application/json")"#,
        ),
        ("dns_in_list", r#"dns && "example.com" in dns_questions"#),
        (
            "not_dns_names",
            r#"!dns && (src.name == "frontend" || dst.name == "frontend")"#,
        ),
    ] {
        let f = Filter::compile(src, &vars).expect("filter compiles");
        let n = es.iter().filter(|e| f.matches(&cat, e)).count();
        if name == "http_5xx" || name == "5xx_no_flag" {
            assert_eq!(n, want, "{src} disagrees with the baseline");
        }
        g.bench_function(format!("cel/{name}"), |b| {
            b.iter(|| es.iter().filter(|e| f.matches(&cat, black_box(e))).count())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
