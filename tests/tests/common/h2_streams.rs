//! HTTP/2 and gRPC fixture comparison: one remora `HTTP/2` entry per stream
//! against one tshark `http2` / `grpc` record per stream, matched by (client
//! port, stream id). Included with `#[path]` by fixtures_http2.rs and
//! fixtures_grpc.rs (after `mod common;`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use serde_json::Value;

/// Per-stream key fields: method, url, authority, :status, grpc-status,
/// request DATA bytes, response DATA bytes.
pub type Fields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn field<'a>(e: &'a Value, half: &str, name: &str) -> Option<&'a Value> {
    e.get(half)?.get("fields")?.get(name)
}

fn entry_fields(e: &Value, grpc: bool) -> ((i64, i64), Fields) {
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
            grpc.then(|| i("response", "grpc_status")).flatten(),
            i("request", "request_body_size"),
            i("response", "response_body_size"),
        ),
    )
}

fn truth_fields(t: &Value, grpc: bool) -> ((i64, i64), Fields) {
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
            grpc.then(|| i("grpc_status")).flatten(),
            i("req_data_bytes"),
            i("resp_data_bytes"),
        ),
    )
}

/// The comparison of one capture: truth records, remora entries, and the
/// streams that agree on every key field.
pub struct StreamReport {
    pub truth: Vec<Value>,
    pub entries: Vec<Value>,
    pub agree: usize,
    pub disagreements: Vec<String>,
}

/// Compare `remora read PCAP` with the `proto` records of TRUTH.
pub fn compare_streams(pcap: &Path, truth: &Path, proto: &str) -> StreamReport {
    let grpc = proto == "grpc";
    let expected: Vec<Value> = read_json_lines_file(truth)
        .into_iter()
        .filter(|t| t.get("proto").and_then(Value::as_str) == Some(proto))
        .collect();
    assert!(
        !expected.is_empty(),
        "{}: no {proto} records (re-run the fixture's record.sh)",
        truth.display()
    );
    let (all, _) = read_jsonl(pcap, &[]);
    let entries: Vec<Value> = all
        .into_iter()
        .filter(|e| e.get("protocol").and_then(Value::as_str) == Some("HTTP/2"))
        .collect();
    let got: BTreeMap<(i64, i64), Fields> = entries.iter().map(|e| entry_fields(e, grpc)).collect();
    let mut agree = 0;
    let mut disagreements = Vec::new();
    for t in &expected {
        let (k, want) = truth_fields(t, grpc);
        match got.get(&k) {
            Some(g) if *g == want => agree += 1,
            Some(g) => disagreements.push(format!(
                "port {} stream {}: truth {want:?}, remora {g:?}",
                k.0, k.1
            )),
            None => disagreements.push(format!(
                "port {} stream {} (frame {}): no remora entry; truth {want:?}",
                k.0, k.1, t["frame"]
            )),
        }
    }
    if got.len() != entries.len() {
        disagreements.push(format!(
            "{} entries share a (port, stream id) with another",
            entries.len() - got.len()
        ));
    }
    if entries.len() > expected.len() {
        disagreements.push(format!(
            "remora has {} HTTP/2 entries, truth {} streams",
            entries.len(),
            expected.len()
        ));
    }
    StreamReport {
        truth: expected,
        entries,
        agree,
        disagreements,
    }
}
