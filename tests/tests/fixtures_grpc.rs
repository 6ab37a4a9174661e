//! Our gRPC fixture (tests/fixtures/grpc, recorded by its record.sh): a
//! python grpcio server on 25051 and a grpcio client: unary calls, non-zero
//! statuses (NOT_FOUND 5, INVALID_ARGUMENT 3, INTERNAL 13, PERMISSION_DENIED
//! 7, UNIMPLEMENTED 12) as trailers-only responses, server streaming (OK, and
//! UNAVAILABLE 14 after two messages), client streaming, concurrent calls.
//! One remora `HTTP/2` entry per stream must match tshark's `grpc` record on
//! method, path, authority, :status, grpc-status and DATA byte counts.
//!
//! All 15 streams must agree. The gRPC C-core server sends its SETTINGS
//! frame as soon as it accepts, before the client's connection preface
//! (frames 4 then 6 on client port 36412; 76 then 78 on 36430): the HTTP/2
//! probe must recognise that server-first SETTINGS frame, or those two
//! connections (10 streams) stay raw.

mod common;
#[path = "common/h2_streams.rs"]
mod h2_streams;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use h2_streams::compare_streams;
use serde_json::Value;

fn dir() -> PathBuf {
    workspace_root().join("tests").join("fixtures").join("grpc")
}

#[test]
fn grpcio_calls_match_truth() {
    let r = compare_streams(
        &dir().join("grpc-python.pcap"),
        &dir().join("grpc-python.truth.jsonl"),
        "grpc",
    );
    let n = r.truth.len();
    eprintln!("grpc-python: {}/{n} streams agree", r.agree);
    assert!(
        r.agree * 100 >= n * 99,
        "grpc-python: {}/{n} streams agree:\n{}",
        r.agree,
        r.disagreements.join("\n")
    );
    assert!(r.disagreements.is_empty(), "{}", r.disagreements.join("\n"));
}

#[test]
fn non_zero_grpc_statuses_are_reported() {
    let r = compare_streams(
        &dir().join("grpc-python.pcap"),
        &dir().join("grpc-python.truth.jsonl"),
        "grpc",
    );
    let want: BTreeSet<i64> = r
        .truth
        .iter()
        .filter_map(|t| t["grpc_status"].as_i64())
        .collect();
    // The client script makes these; a re-record that lost one fails here.
    for s in [0, 3, 5, 7, 12, 13, 14] {
        assert!(want.contains(&s), "truth lacks grpc-status {s}: {want:?}");
    }
    let got: BTreeSet<i64> = r
        .entries
        .iter()
        .filter_map(|e| e["response"]["fields"]["grpc_status"].as_i64())
        .collect();
    assert_eq!(got, want, "grpc-status values seen by remora");
    for e in &r.entries {
        assert_eq!(
            e["request"]["fields"]["grpc"],
            Value::Bool(true),
            "not marked grpc: {e}"
        );
    }
}

#[test]
fn capture_is_small() {
    let n = std::fs::metadata(dir().join("grpc-python.pcap"))
        .expect("grpc-python.pcap")
        .len();
    assert!(n < 300 << 10, "grpc-python.pcap is {n} bytes");
}
