//! Our own HTTP/1 fixtures (tests/fixtures/captures, recorded by
//! tests/fixtures/record-http1.sh from curl / a pipelining client against nginx
//! and a Python server): the tshark-derived expectations in NAME.expect.json
//! (with documented corrections where tshark 4.0 is wrong) plus specific
//! body-size and pairing assertions.

mod common;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use common::*;
use serde_json::Value;

struct Fixture {
    entries: Vec<Value>,
    expect: Value,
}

impl Fixture {
    fn http(&self) -> Vec<&Value> {
        http1_entries(&self.entries)
    }
    fn expected(&self) -> Vec<Expected> {
        self.expect["transactions"]
            .as_array()
            .expect("transactions")
            .iter()
            .map(Expected::from_record)
            .collect()
    }
    /// HTTP/1 entries with this method and url, in capture order.
    fn find(&self, m: &str, u: &str) -> Vec<&Value> {
        let mut v: Vec<&Value> = self
            .http()
            .into_iter()
            .filter(|e| method(e).as_deref() == Some(m) && url(e).as_deref() == Some(u))
            .collect();
        v.sort_by_key(|e| order_key(e));
        v
    }
    fn one(&self, m: &str, u: &str) -> &Value {
        let v = self.find(m, u);
        assert_eq!(
            v.len(),
            1,
            "expected exactly one `{m} {u}` entry, found {}",
            v.len()
        );
        v[0]
    }
    /// Known body size from NAME.expect.json `bodies`.
    fn known_size(&self, key: &str) -> i64 {
        self.expect["bodies"][key]["size"]
            .as_i64()
            .unwrap_or_else(|| panic!("expect.json bodies[{key}]"))
    }
}

/// Run remora once per fixture per test process.
fn fixture(name: &str) -> &'static Fixture {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static Fixture>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(f) = cache.get(name) {
        return f;
    }
    let dir = fixtures_dir();
    let pcap = dir.join(format!("{name}.pcap"));
    let expect_p = dir.join(format!("{name}.expect.json"));
    let expect: Value =
        serde_json::from_str(&std::fs::read_to_string(&expect_p).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run tests/fixtures/record-http1.sh)",
                expect_p.display()
            )
        }))
        .expect("expect.json");
    let (entries, _) = read_jsonl(&pcap, &[]);
    let f: &'static Fixture = Box::leak(Box::new(Fixture { entries, expect }));
    cache.insert(name.to_owned(), f);
    f
}

const FIXTURES: [&str; 3] = ["http1-nginx", "http1-python", "http1-pipelined"];

fn response_body_fields(e: &Value) -> (Option<i64>, Option<i64>, Option<bool>) {
    let b = body(e, "response");
    (
        b.and_then(|b| b["size"].as_i64()),
        b.and_then(|b| b["captured"].as_i64()),
        b.and_then(|b| b["truncated"].as_bool()),
    )
}

#[test]
fn transactions_match_expectations() {
    let mut failures = Vec::new();
    for name in FIXTURES {
        let f = fixture(name);
        let http = f.http();
        let expected = f.expected();
        assert_eq!(
            expected.len() as u64,
            f.expect["http_transactions"].as_u64().unwrap(),
            "{name}.expect.json is inconsistent"
        );
        if let Err(r) = compare_http1(name, &http, &expected) {
            failures.push(r);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn requests_pair_in_order_per_connection() {
    let mut failures = Vec::new();
    for name in FIXTURES {
        let f = fixture(name);
        if let Err(r) = compare_order(name, &f.http(), &f.expected()) {
            failures.push(r);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn pipelined_requests_pair_in_order() {
    // Six requests in one segment: 200, 200, 404, HEAD 200 (Content-Length but
    // no body), 500 (nginx then closes), and a request that is never answered.
    let f = fixture("http1-pipelined");
    let http = f.http();
    compare_order("http1-pipelined", &http, &f.expected()).unwrap_or_else(|r| panic!("{r}"));
    let fail = f.one("GET", "/fail");
    assert_eq!(
        status(fail),
        Some(500),
        "the response after a pipelined HEAD must not be taken as the HEAD body"
    );
    let lost = f.one("GET", "/index.html?p=6");
    assert!(
        !has_response(lost),
        "GET /index.html?p=6 was never answered: {lost}"
    );
    assert_eq!(
        lost["complete"],
        Value::Bool(false),
        "an unanswered request is not complete: {lost}"
    );
}

#[test]
fn chunked_response_body_size_is_dechunked_length() {
    let f = fixture("http1-python");
    let e = f.one("GET", "/chunked");
    assert_eq!(status(e), Some(200));
    let want = f.known_size("GET /chunked"); // 100+2000+1+4096+333 = 6530
    let (size, captured, truncated) = response_body_fields(e);
    assert_eq!(
        size,
        Some(want),
        "de-chunked body size of GET /chunked: {}",
        e["response"]["body"]
    );
    if let (Some(c), Some(t)) = (captured, truncated) {
        assert_eq!(
            t,
            c < want,
            "truncated must be captured < size: {}",
            e["response"]["body"]
        );
    }
    // nginx's gzip'd JSON is chunked too: it must have a non-empty body.
    let g = fixture("http1-nginx").one("GET", "/data.json");
    let (gs, _, _) = response_body_fields(g);
    assert!(
        gs.is_some_and(|s| s > 0),
        "gzip+chunked GET /data.json has no body: {}",
        g["response"]
    );
}

#[test]
fn one_mib_body_keeps_original_size_and_is_truncated() {
    let f = fixture("http1-nginx");
    let e = f.one("GET", "/big.bin");
    assert_eq!(status(e), Some(200));
    let want = f.known_size("GET /big.bin");
    assert_eq!(want, 1_048_576);
    let (size, captured, truncated) = response_body_fields(e);
    assert_eq!(
        size,
        Some(want),
        "original body size: {}",
        e["response"]["body"]
    );
    assert_eq!(
        truncated,
        Some(true),
        "1 MiB body should exceed the capture limit: {}",
        e["response"]["body"]
    );
    assert!(
        captured.is_some_and(|c| c < want),
        "captured must be below size: {}",
        e["response"]["body"]
    );
}

#[test]
fn head_response_has_no_body() {
    for (name, target) in [
        ("http1-nginx", "/data.json"),
        ("http1-pipelined", "/index.html"),
    ] {
        let f = fixture(name);
        let e = f.one("HEAD", target);
        assert_eq!(status(e), Some(200), "{name}: HEAD {target}");
        let size = body_size(e, "response");
        assert!(
            size.is_none() || size == Some(0),
            "{name}: HEAD {target} response must have no body: {}",
            e["response"]
        );
        assert_eq!(
            e["complete"],
            Value::Bool(true),
            "{name}: HEAD {target} is complete: {e}"
        );
    }
}

#[test]
fn expect_100_continue_pairs_with_final_status() {
    let f = fixture("http1-python");
    let posts = f.find("POST", "/upload");
    assert_eq!(
        posts.len(),
        3,
        "three uploads (100-continue, 300000 bytes, chunked)"
    );
    // The first upload sent `Expect: 100-continue` and got 100 then 200.
    assert_eq!(
        status(posts[0]),
        Some(200),
        "100-continue request pairs with its final status: {}",
        posts[0]
    );
    for name in FIXTURES {
        for e in fixture(name).http() {
            let s = status(e);
            assert!(
                !matches!(s, Some(100..=199)) || s == Some(101),
                "{name}: an interim 1xx response became its own transaction: {e}"
            );
        }
    }
    let want: Vec<Option<i64>> = f.expect["bodies"]["POST /upload"]["request_sizes"]
        .as_array()
        .expect("request_sizes")
        .iter()
        .map(Value::as_i64)
        .collect();
    let got: Vec<Option<i64>> = posts.iter().map(|e| body_size(e, "request")).collect();
    assert_eq!(got, want, "request body sizes: small with 100-continue, 300000-byte upload, chunked upload (de-chunked)");
}

#[test]
fn http10_close_delimited_response_body() {
    let f = fixture("http1-python");
    let e = f.one("GET", "/close10");
    assert_eq!(status(e), Some(200));
    assert_eq!(
        http_version(e).as_deref(),
        Some("1.0"),
        "request was HTTP/1.0: {e}"
    );
    if let Some(v) = e["response"]["fields"]["http_version"].as_str() {
        assert_eq!(
            v.trim_start_matches("HTTP/"),
            "1.0",
            "response status line was HTTP/1.0"
        );
    }
    let want = f.known_size("GET /close10");
    assert_eq!(
        body_size(e, "response"),
        Some(want),
        "close-delimited body ends at FIN: {}",
        e["response"]
    );
    assert_eq!(
        e["complete"],
        Value::Bool(true),
        "a body delimited by the server's FIN is complete: {e}"
    );
}

#[test]
fn fixture_files_are_small() {
    let mut total = 0;
    for name in FIXTURES {
        let p = fixtures_dir().join(format!("{name}.pcap"));
        let n = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .len();
        assert!(n < 2 << 20, "{} is {n} bytes (limit 2 MiB)", p.display());
        total += n;
    }
    assert!(
        total < 5 << 20,
        "fixtures total {total} bytes (limit 5 MiB)"
    );
}
