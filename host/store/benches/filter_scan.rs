//! The filter target: entries/s that `http && status_code >= 500`
//! scans out of the store, over 1 M stored HTTP-like entries (~1% 5xx).
//!
//! Same-run baselines: the same filter over the same entries already in
//! memory (the ceiling the store can approach), and a scan without a filter
//! (the store's own decode cost).
//!
//! `cargo bench -p remora-store --bench filter_scan`

use std::hint::black_box;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use remora_core::{Endpoint, Timestamp, Transport};
use remora_entry::{
    Body, Catalog, Entry, Field, FieldSchema, FieldType, Message, PluginSchema, ProtocolSchema,
    Value,
};
use remora_filter::{Filter, Variables};
use remora_store::{Order, Scan, Store, StoreConfig};

// The product binary runs on mimalloc; entries are many small allocations,
// so the system allocator would misstate what users get.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENTRIES: u64 = 1_000_000;
const BATCH: u64 = 512;
const FILTER: &str = "http && status_code >= 500";

const METHOD: u16 = 0;
const URL: u16 = 1;
const PATH: u16 = 2;
const VERSION: u16 = 3;
const HEADERS: u16 = 4;
const STATUS_CODE: u16 = 5;
const STATUS_TEXT: u16 = 6;
const REQUEST_SIZE: u16 = 7;
const RESPONSE_SIZE: u16 = 8;

fn catalog() -> Arc<Catalog> {
    let fields = [
        ("method", FieldType::Str),
        ("url", FieldType::Str),
        ("path", FieldType::Str),
        ("http_version", FieldType::Str),
        ("headers", FieldType::StrMap),
        ("status_code", FieldType::Int),
        ("status_text", FieldType::Str),
        ("request_size", FieldType::Int),
        ("response_size", FieldType::Int),
    ];
    Arc::new(Catalog {
        plugins: vec![PluginSchema::new(
            "http1".into(),
            "0.1.0".into(),
            vec![ProtocolSchema {
                name: "HTTP/1.1".into(),
                flag: "http".into(),
                transport: Transport::Tcp,
                ports: vec![80, 8080],
                request_summary: "{method} {url}".into(),
                response_summary: "{status_code}".into(),
            }],
            fields
                .iter()
                .enumerate()
                .map(|(i, (name, ty))| FieldSchema {
                    id: i as u16,
                    name: (*name).into(),
                    ty: *ty,
                    top_level: true,
                    doc: String::new(),
                })
                .collect(),
        )],
    })
}

/// One response in 200 is missing (timed-out request).
fn has_response(n: u64) -> bool {
    n % 200 != 199
}

/// One entry in 100 is a 5xx; never one without a response.
fn is_5xx(n: u64) -> bool {
    n % 100 == 37 && has_response(n)
}

fn field(id: u16, value: Value) -> Field {
    Field { id, value }
}
fn s(v: impl Into<String>) -> Value {
    Value::Str(v.into())
}
fn pair(k: &str, v: impl Into<String>) -> Value {
    Value::Pair(k.into(), v.into())
}

/// HTTP-like entry `n`: 3 to 5 request headers, 2 to 4 response headers,
/// bodies on writes and most responses.
fn entry(n: u64) -> Entry {
    let ts = 1_795_000_000_000_000 + n as i64 * 250;
    let method = ["GET", "GET", "GET", "POST", "PUT", "DELETE"][(n % 6) as usize];
    let item = n % 5000;
    let mut req = vec![
        field(METHOD, s(method)),
        field(URL, s(format!("/api/v1/items/{item}?page={}", n % 7))),
        field(PATH, s(format!("/api/v1/items/{item}"))),
        field(VERSION, s("1.1")),
        field(
            HEADERS,
            pair("Host", format!("svc-{}.default.svc.cluster.local", n % 17)),
        ),
        field(HEADERS, pair("User-Agent", "Go-http-client/1.1")),
        field(HEADERS, pair("Accept", "application/json")),
    ];
    let writes = matches!(method, "POST" | "PUT");
    if writes {
        req.push(field(HEADERS, pair("Content-Type", "application/json")));
    }
    if n.is_multiple_of(5) {
        req.push(field(
            HEADERS,
            pair(
                "Authorization",
                format!("Bearer tok-{:08x}", n * 2654435761),
            ),
        ));
    }
    let req_body = writes.then(|| format!("{{\"id\":{item},\"qty\":{}}}", n % 9).into_bytes());
    req.push(field(
        REQUEST_SIZE,
        Value::Int(req_body.as_ref().map_or(0, |b| b.len() as i64)),
    ));
    let request = Message {
        ts: Timestamp(ts),
        fields: req.into(),
        body: req_body.map(|data| {
            Box::new(Body {
                original_len: data.len() as u64,
                data,
                truncated: false,
                decoded_from: None,
            })
        }),
    };
    let response = has_response(n).then(|| {
        let (code, text) = if is_5xx(n) {
            (500 + (n / 100 % 4) as i64, "Internal Server Error")
        } else if n % 10 == 3 {
            (404, "Not Found")
        } else {
            (200, "OK")
        };
        let data = format!("{{\"id\":{item},\"name\":\"item {item}\"}}")
            .repeat(1 + (n % 3) as usize)
            .into_bytes();
        let mut fields = vec![
            field(VERSION, s("1.1")),
            field(STATUS_CODE, Value::Int(code)),
            field(STATUS_TEXT, s(text)),
            field(HEADERS, pair("Content-Type", "application/json")),
            field(HEADERS, pair("Content-Length", data.len().to_string())),
        ];
        if n.is_multiple_of(3) {
            fields.push(field(HEADERS, pair("Cache-Control", "no-store")));
            fields.push(field(HEADERS, pair("Server", "envoy")));
        }
        fields.push(field(RESPONSE_SIZE, Value::Int(data.len() as i64)));
        Message {
            ts: Timestamp(ts + 900 + (n % 300) as i64),
            fields: fields.into(),
            body: Some(Box::new(Body {
                original_len: data.len() as u64,
                decoded_from: n.is_multiple_of(4).then(|| "gzip".to_string()),
                truncated: false,
                data,
            })),
        }
    });
    Entry {
        id: 0,
        flow_id: n / 4,
        plugin: 0,
        protocol: 0,
        transport: Transport::Tcp,
        client: Endpoint::new(
            [10, 1, (n % 7) as u8, (n % 250) as u8].into(),
            40000 + (n % 20000) as u16,
        ),
        server: Endpoint::new([10, 96, 0, (n % 17) as u8].into(), 8080),
        standalone: response.is_none(),
        request: Some(request),
        response,
    }
}

/// Nanoseconds this thread has run on a CPU (Linux), so a report on a busy,
/// shared machine can say what one core achieves; `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `f` (which handles `ENTRIES` entries) three times and prints the
/// best rate per second of this thread's CPU time next to wall time.
fn report_cpu_rate(name: &str, mut f: impl FnMut()) {
    let mut best: Option<(f64, f64)> = None;
    for _ in 0..3 {
        let (cpu0, wall0) = (thread_cpu_ns(), std::time::Instant::now());
        f();
        let wall = wall0.elapsed().as_secs_f64();
        let Some(cpu) = cpu0.zip(thread_cpu_ns()).map(|(a, b)| (b - a) as f64 / 1e9) else {
            return;
        };
        if best.is_none_or(|(c, _)| cpu < c) {
            best = Some((cpu, wall));
        }
    }
    if let Some((cpu, wall)) = best {
        eprintln!(
            "{name}: {:.2} M entries per CPU-second ({:.2} M/s wall)",
            ENTRIES as f64 / cpu / 1e6,
            ENTRIES as f64 / wall / 1e6
        );
    }
}

fn filter_scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        max_bytes: 8 << 30,
        sync: false,
        ..StoreConfig::new(dir.path())
    };
    let (store, _) = Store::open(cfg).unwrap();
    let catalog = catalog();
    let mut memory = Vec::with_capacity(ENTRIES as usize);
    for first in (1..=ENTRIES).step_by(BATCH as usize) {
        let mut b: Vec<Entry> = (first..(first + BATCH).min(ENTRIES + 1))
            .map(entry)
            .collect();
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
    let want = (1..=ENTRIES).filter(|&n| is_5xx(n)).count() as u64;
    assert!(want > ENTRIES / 200, "the data set must hold 5xx entries");

    let vars = Variables::new(&[&catalog]);
    let filter = Filter::compile(FILTER, &vars).unwrap();

    let count_in_memory = || {
        let n = memory
            .iter()
            .filter(|e| filter.matches(&catalog, black_box(e)))
            .count() as u64;
        assert_eq!(n, want);
    };
    let count_scanned = |order| {
        let mut n = 0u64;
        let q = Scan {
            order,
            ..Scan::default()
        };
        let st = store
            .scan(&q, &mut |e| {
                n += u64::from(filter.matches(&e.catalog, &e.entry));
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!((st.visited, n), (ENTRIES, want));
    };
    report_cpu_rate("filter in memory", count_in_memory);
    report_cpu_rate("scan without filter", || {
        let mut n = 0u64;
        store
            .scan(&Scan::default(), &mut |e| {
                n += black_box(e).entry.id & 1;
                ControlFlow::Continue(())
            })
            .unwrap();
    });
    for order in [Order::NewestFirst, Order::OldestFirst] {
        report_cpu_rate(&format!("scan + filter {order:?}"), || count_scanned(order));
    }

    let mut g = c.benchmark_group("filter_scan_1M");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(ENTRIES));
    g.bench_function("baseline_filter_in_memory", |b| b.iter(count_in_memory));
    g.bench_function("baseline_store_scan_no_filter", |b| {
        b.iter(|| {
            let mut n = 0u64;
            store
                .scan(&Scan::default(), &mut |e| {
                    n += black_box(e).entry.id & 1;
                    ControlFlow::Continue(())
                })
                .unwrap();
            n
        })
    });
    for order in [Order::NewestFirst, Order::OldestFirst] {
        g.bench_function(format!("store_scan_http_5xx_{order:?}"), |b| {
            b.iter(|| count_scanned(order))
        });
    }
    g.finish();
}

criterion_group!(benches, filter_scan);
criterion_main!(benches);
