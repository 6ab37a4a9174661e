//! HTTP/2 (prior knowledge) and gRPC captures against tshark's truth: one
//! `http2` / `grpc` record per stream, one remora `HTTP/2` entry per stream.
//!
//! Streams are matched by (client port, stream id) — the entry's `src.port`
//! and `h2_stream_id`. Compared: entry count; method, `:path` (url),
//! authority, status and (gRPC) grpc_status; request/response DATA byte
//! counts.
//!
//! Current agreement:
//! - generated/http2.pcap: 95/95 entries; key fields 95/95; DATA byte counts
//!   95/95. (Client port 55100, stream 13 sends preface, HEADERS and a
//!   10000-byte body in one 10185-byte segment, larger than the host's probe
//!   buffer: the host replays whole packets after probing, so it counts right.)
//! - generated/grpc.pcap: 24/24 entries, key fields 24/24, DATA bytes 24/24.
//!
//! - public/grpc-deepflow-unary.pcap (mid-stream pickup, two packets): key
//!   fields 1/1 (the sender used literal headers, so they decode without the
//!   HPACK table built before the capture began). DATA bytes are not
//!   compared: the response DATA frame is cut by the end of the capture;
//!   tshark counts 0 bytes, remora the 1336 it saw.
//!
//! - public/http2-suricata-range.pcap: h2c via an HTTP/1.1 Upgrade on port
//!   8080: 3/3 streams, key fields and DATA bytes. The HTTP/1 plugin reports
//!   the upgrade request and its 101 as one `http` entry and switches the
//!   flow to this plugin, where the upgrade request is stream 1 (RFC 7540
//!   §3.2); like tshark, stream 1 has a response (status 206) but no
//!   HTTP/2 request headers, so method, path and authority are null.
//!
//! Not covered: mid-stream pickup in general is best effort and not asserted
//! beyond the DeepFlow trace: headers that reference an unseen HPACK dynamic
//! entry are reported as `<unknown>`.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// (client port, stream id) of streams whose DATA counts differ for a known
/// reason, each explained above; none today.
const KNOWN_DATA_MISMATCH: &[(i64, i64)] = &[];

fn field<'a>(e: &'a Value, half: &str, name: &str) -> Option<&'a Value> {
    e.get(half)?.get("fields")?.get(name)
}

type Fields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// (client port, stream id), key fields, (request, response) DATA bytes.
type Key = ((i64, i64), Fields, (Option<i64>, Option<i64>));

fn entry_key(e: &Value, grpc: bool) -> Key {
    let s = |h, n| field(e, h, n).and_then(Value::as_str).map(str::to_owned);
    let i = |h, n| field(e, h, n).and_then(Value::as_i64);
    let id = i("request", "h2_stream_id")
        .or_else(|| i("response", "h2_stream_id"))
        .unwrap_or(-1);
    (
        (src_port(e).unwrap_or(-1), id),
        (
            s("request", "method"),
            s("request", "url"),
            s("request", "authority"),
            i("response", "status_code"),
            if grpc {
                i("response", "grpc_status")
            } else {
                None
            },
        ),
        (
            i("request", "request_body_size"),
            i("response", "response_body_size"),
        ),
    )
}

fn truth_key(t: &Value, grpc: bool) -> Key {
    let s = |n| t.get(n).and_then(Value::as_str).map(str::to_owned);
    let i = |n| t.get(n).and_then(Value::as_i64);
    let port = t
        .get("client")
        .and_then(Value::as_str)
        .and_then(|c| c.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(-2);
    (
        (port, i("h2_stream_id").unwrap_or(-2)),
        (
            s("method"),
            s("path"),
            s("authority"),
            i("status"),
            if grpc { i("grpc_status") } else { None },
        ),
        (i("req_data_bytes"), i("resp_data_bytes")),
    )
}

fn check(capture: &str, truth: &str, proto: &str, compare_data: bool) {
    let shared = shared_dir();
    let pcap = shared.join("captures").join(capture);
    let truth = shared.join("captures").join("truth").join(truth);
    assert!(
        pcap.is_file() && truth.is_file(),
        "shared captures not found ({} / {}); set REMORA_SHARED to the directory holding captures/",
        pcap.display(),
        truth.display()
    );
    let grpc = proto == "grpc";
    let expected: Vec<Value> = read_json_lines_file(&truth)
        .into_iter()
        .filter(|t| t.get("proto").and_then(Value::as_str) == Some(proto))
        .collect();
    assert!(
        !expected.is_empty(),
        "{}: no {proto} records",
        truth.display()
    );
    let (entries, run) = read_jsonl(&pcap, &[]);
    let h2: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("protocol").and_then(Value::as_str) == Some("HTTP/2"))
        .collect();
    assert_eq!(
        h2.len(),
        expected.len(),
        "{capture}: entry count (stderr: {})",
        run.stderr
    );
    for e in &h2 {
        assert_eq!(http_version(e).as_deref(), Some("2"), "{capture}: {e}");
        assert!(
            has_request(e) && has_response(e),
            "{capture}: incomplete {e}"
        );
        if grpc {
            assert_eq!(
                field(e, "request", "grpc").and_then(Value::as_bool),
                Some(true),
                "{capture}: not marked grpc: {e}"
            );
        }
    }
    let got: BTreeMap<_, _> = h2
        .iter()
        .map(|e| {
            let (k, f, d) = entry_key(e, grpc);
            (k, (f, d))
        })
        .collect();
    assert_eq!(got.len(), h2.len(), "{capture}: duplicate (port, stream)");
    let (mut key_ok, mut data_ok) = (0usize, 0usize);
    let mut key_bad = Vec::new();
    let mut data_bad = Vec::new();
    for t in &expected {
        let (k, f, d) = truth_key(t, grpc);
        match got.get(&k) {
            Some((gf, gd)) => {
                if *gf == f {
                    key_ok += 1;
                } else {
                    key_bad.push((k, f, gf.clone()));
                }
                if *gd == d {
                    data_ok += 1;
                } else {
                    data_bad.push((k, d, *gd));
                }
            }
            None => key_bad.push((k, f, Default::default())),
        }
    }
    let n = expected.len();
    eprintln!("{capture}: key fields {key_ok}/{n}, DATA bytes {data_ok}/{n}");
    assert!(
        key_ok * 100 >= n * 99,
        "{capture}: key fields agree {key_ok}/{n} (truth, remora): {key_bad:#?}"
    );
    assert!(
        key_bad.is_empty(),
        "{capture}: key fields differ (truth, remora): {key_bad:#?}"
    );
    let unexplained: Vec<_> = data_bad
        .iter()
        .filter(|_| compare_data)
        .filter(|(k, _, _)| !KNOWN_DATA_MISMATCH.contains(k))
        .collect();
    assert!(
        unexplained.is_empty(),
        "{capture}: DATA byte counts differ (truth, remora): {unexplained:#?}"
    );
}

#[test]
fn generated_http2() {
    check(
        "generated/http2.pcap",
        "generated-http2.jsonl",
        "http2",
        true,
    );
}

#[test]
fn generated_grpc() {
    check("generated/grpc.pcap", "generated-grpc.jsonl", "grpc", true);
}

#[test]
fn public_suricata_h2c_upgrade_streams() {
    check(
        "public/http2-suricata-range.pcap",
        "public-http2-suricata-range.jsonl",
        "http2",
        true,
    );
}

#[test]
fn public_grpc_deepflow_midstream() {
    check(
        "public/grpc-deepflow-unary.pcap",
        "public-grpc-deepflow-unary.jsonl",
        "grpc",
        false,
    );
}
