//! WebSocket after an HTTP/1.1 Upgrade against tshark's truth: one
//! `websocket` record per frame, one remora `WebSocket` entry per frame.
//!
//! The HTTP/1 plugin hands the flow over at the `101 Switching Protocols`
//! (a protocol switch, `remora:plugin@0.2`); the handshake itself is one
//! `http` entry (checked by `http1_truth`).
//!
//! Frames are compared per connection and direction, in order: opcode name,
//! FIN, mask bit, RSV1 (compressed) and payload length; text frames up to the
//! body cap must carry their whole unmasked text.
//!
//! Current agreement: generated/websocket.pcap: 46/46 frames, every field.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// (opcode name, fin, masked, payload length, compressed)
type Frame = (String, bool, bool, i64, bool);

fn field<'a>(e: &'a Value, half: &str, name: &str) -> Option<&'a Value> {
    e.get(half)?.get("fields")?.get(name)
}

fn truth_frames(records: &[Value]) -> BTreeMap<(i64, String), Vec<Frame>> {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for t in records {
        let port = t
            .get("client")
            .and_then(Value::as_str)
            .and_then(|c| c.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(-2);
        let dir = t["direction"].as_str().unwrap_or("?").to_owned();
        out.entry((port, dir)).or_default().push((
            t["opcode_name"].as_str().unwrap_or("?").to_owned(),
            t["fin"].as_bool().unwrap_or(false),
            t["masked"].as_bool().unwrap_or(false),
            t["payload_len"].as_i64().unwrap_or(-1),
            t["rsv1_compressed"].as_bool().unwrap_or(false),
        ));
    }
    out
}

fn entry_frame(e: &Value) -> ((i64, String), Frame) {
    let (half, dir, len) = if e.get("request").is_some_and(|r| !r.is_null()) {
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

#[test]
fn generated_websocket() {
    let shared = shared_dir();
    let pcap = shared.join("captures/generated/websocket.pcap");
    let truth = shared.join("captures/truth/generated-websocket.jsonl");
    assert!(
        pcap.is_file() && truth.is_file(),
        "shared captures not found ({} / {}); set REMORA_SHARED to the directory holding captures/",
        pcap.display(),
        truth.display()
    );
    let expected: Vec<Value> = read_json_lines_file(&truth)
        .into_iter()
        .filter(|t| t.get("proto").and_then(Value::as_str) == Some("websocket"))
        .collect();
    assert!(
        !expected.is_empty(),
        "{}: no websocket records",
        truth.display()
    );
    let (entries, run) = read_jsonl(&pcap, &[]);
    let ws: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("protocol").and_then(Value::as_str) == Some("WebSocket"))
        .collect();
    assert_eq!(
        ws.len(),
        expected.len(),
        "frame count (stderr: {})",
        run.stderr
    );

    let mut got: BTreeMap<_, Vec<Frame>> = BTreeMap::new();
    for e in &ws {
        let (k, f) = entry_frame(e);
        got.entry(k.clone()).or_default().push(f.clone());
        // Text the plugin kept must be the whole unmasked payload (up to the cap).
        let (half, text) = if k.1 == "c2s" {
            ("request", "ws_request")
        } else {
            ("response", "ws_response")
        };
        if f.0 == "text" && !f.4 && f.3 <= 16384 {
            let t = field(e, half, text).and_then(Value::as_str);
            assert_eq!(
                t.map(str::len),
                Some(f.3 as usize),
                "text frame without its whole text: {e}"
            );
        }
    }
    let want = truth_frames(&expected);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "connections and directions"
    );
    for (k, frames) in &want {
        assert_eq!(&got[k], frames, "frames of {k:?} (remora, truth)");
    }

    // The handshakes stay `http` entries, one per upgrade request.
    let http = http1_entries(&entries);
    assert_eq!(
        http.iter().filter(|e| status(e) == Some(101)).count(),
        2,
        "101 handshakes"
    );
}

#[test]
fn every_websocket_truth_file_is_covered() {
    assert_truth_covered("websocket", &["generated-websocket.jsonl"]);
}
