//! Our WebSocket fixture (tests/fixtures/websocket, recorded by its
//! record.sh): a python websockets echo server on 28765 and a websockets
//! client: text, 1024-byte binary (16-bit length), 70 000-byte text (64-bit
//! length), a message fragmented into text + continuation frames, ping/pong,
//! an empty message, client close 1000, server close 1008, and an upgrade
//! refused with 404.
//!
//! One remora `WebSocket` entry per frame (the schema websocket_truth.rs
//! uses: `ws_opcode`, `fin`, `masked`, `ws_{request,response}_payload_length`,
//! `compressed`; request = client frame) must match tshark's `websocket`
//! record per connection and direction, in order; the handshakes are `http`
//! entries (101, 101, 404).
//!
//! Written before the WebSocket plugin landed: expected to pass once it does
//! (with the snapshot plugins there are no WebSocket entries and it fails).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use serde_json::Value;

/// (opcode name, fin, masked, payload length, compressed)
type Frame = (String, bool, bool, i64, bool);
/// (client port, direction "c2s"/"s2c")
type Side = (i64, String);

fn dir() -> PathBuf {
    workspace_root()
        .join("tests")
        .join("fixtures")
        .join("websocket")
}

fn field<'a>(e: &'a Value, half: &str, name: &str) -> Option<&'a Value> {
    e.get(half)?.get("fields")?.get(name)
}

fn truth_frames(records: &[Value]) -> BTreeMap<Side, Vec<Frame>> {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for t in records {
        let port = t["client"]
            .as_str()
            .and_then(|c| c.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(-2);
        out.entry((port, t["direction"].as_str().unwrap_or("?").to_owned()))
            .or_default()
            .push((
                t["opcode_name"].as_str().unwrap_or("?").to_owned(),
                t["fin"].as_bool().unwrap_or(false),
                t["masked"].as_bool().unwrap_or(false),
                t["payload_len"].as_i64().unwrap_or(-1),
                t["rsv1_compressed"].as_bool().unwrap_or(false),
            ));
    }
    out
}

fn entry_frame(e: &Value) -> (Side, Frame) {
    let (half, dir, len) = if has_request(e) {
        ("request", "c2s", "ws_request_payload_length")
    } else {
        ("response", "s2c", "ws_response_payload_length")
    };
    let b = |n| field(e, half, n).and_then(Value::as_bool).unwrap_or(false);
    (
        (src_port(e).unwrap_or(-1), dir.to_owned()),
        (
            field(e, half, "ws_opcode")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            b("fin"),
            b("masked"),
            field(e, half, len).and_then(Value::as_i64).unwrap_or(-1),
            b("compressed"),
        ),
    )
}

struct Fixture {
    truth: Vec<Value>,
    entries: Vec<Value>,
}

fn fixture() -> Fixture {
    let truth = read_json_lines_file(&dir().join("websocket-python.truth.jsonl"));
    let (entries, _) = read_jsonl(&dir().join("websocket-python.pcap"), &[]);
    Fixture { truth, entries }
}

#[test]
fn frames_match_truth() {
    let f = fixture();
    let expected: Vec<Value> = f
        .truth
        .iter()
        .filter(|t| t["proto"] == "websocket")
        .cloned()
        .collect();
    assert_eq!(expected.len(), 20, "websocket-python.truth.jsonl frames");
    let ws: Vec<&Value> = f
        .entries
        .iter()
        .filter(|e| e["protocol"] == "WebSocket")
        .collect();
    let mut got: BTreeMap<Side, Vec<Frame>> = BTreeMap::new();
    for e in &ws {
        let (k, fr) = entry_frame(e);
        got.entry(k).or_default().push(fr);
    }
    let want = truth_frames(&expected);
    let agree: usize = want
        .iter()
        .map(|(k, w)| {
            let g = got.get(k).map(Vec::as_slice).unwrap_or(&[]);
            w.iter().zip(g).filter(|(a, b)| a == b).count()
        })
        .sum();
    eprintln!("websocket-python: {agree}/{} frames agree", expected.len());
    assert_eq!(ws.len(), expected.len(), "one WebSocket entry per frame");
    assert_eq!(got, want, "frames per (client port, direction), in order");
}

#[test]
fn close_codes_and_fragments_are_reported() {
    let f = fixture();
    let ws: Vec<&Value> = f
        .entries
        .iter()
        .filter(|e| e["protocol"] == "WebSocket")
        .collect();
    let opcodes: Vec<String> = ws.iter().map(|e| entry_frame(e).1 .0).collect();
    for op in ["text", "binary", "continuation", "ping", "pong", "close"] {
        assert!(
            opcodes.iter().any(|o| o == op),
            "no {op} frame: {opcodes:?}"
        );
    }
    // The 70 000-byte frame has a 64-bit length; its size must be exact.
    assert!(
        ws.iter().filter(|e| entry_frame(e).1 .3 == 70_000).count() == 2,
        "the 70 000-byte text frame, each way"
    );
}

#[test]
fn handshakes_are_http_entries() {
    let f = fixture();
    let expected = load_truth_http(&dir().join("websocket-python.truth.jsonl"));
    assert_eq!(expected.len(), 3, "two upgrades and a refused one");
    let http = http1_entries(&f.entries);
    compare_http1("websocket-python", &http, &expected).unwrap_or_else(|r| panic!("{r}"));
}

#[test]
fn capture_is_small() {
    let n = std::fs::metadata(dir().join("websocket-python.pcap"))
        .expect("websocket-python.pcap")
        .len();
    assert!(n < 300 << 10, "websocket-python.pcap is {n} bytes");
}
