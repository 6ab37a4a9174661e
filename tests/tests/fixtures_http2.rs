//! Our HTTP/2 fixture (tests/fixtures/http2, recorded by its record.sh):
//! nginx serving h2c with prior knowledge on port 8081 (no Upgrade, no TLS),
//! driven by curl --http2-prior-knowledge, nghttp and h2load. One remora
//! `HTTP/2` entry per stream must match tshark's `http2` record for it on
//! method, url, authority, :status and request/response DATA byte counts.
//!
//! Current agreement (snapshot binary and plugins): 32/32 streams, exact.

mod common;
#[path = "common/h2_streams.rs"]
mod h2_streams;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use h2_streams::compare_streams;
use serde_json::Value;

fn dir() -> PathBuf {
    workspace_root()
        .join("tests")
        .join("fixtures")
        .join("http2")
}

#[test]
fn nginx_h2c_prior_knowledge_matches_truth() {
    let r = compare_streams(
        &dir().join("http2-nginx.pcap"),
        &dir().join("http2-nginx.truth.jsonl"),
        "http2",
    );
    let n = r.truth.len();
    eprintln!("http2-nginx: {}/{n} streams agree", r.agree);
    assert!(
        r.agree * 100 >= n * 99,
        "http2-nginx: {}/{n} streams agree:\n{}",
        r.agree,
        r.disagreements.join("\n")
    );
    // No disagreement is expected or explained today.
    assert!(r.disagreements.is_empty(), "{}", r.disagreements.join("\n"));
    assert_eq!(r.entries.len(), n, "one entry per stream");
}

#[test]
fn port_8081_prior_knowledge_is_recognised() {
    // 8081 is not HTTP/2's port: the flows must be claimed by content (the
    // connection preface), every one of them.
    let r = compare_streams(
        &dir().join("http2-nginx.pcap"),
        &dir().join("http2-nginx.truth.jsonl"),
        "http2",
    );
    for e in &r.entries {
        assert_eq!(e["dst"]["port"], Value::from(8081), "{e}");
        assert_eq!(http_version(e).as_deref(), Some("2"), "{e}");
    }
    let conns = |ports: Vec<i64>| ports.into_iter().collect::<BTreeSet<_>>();
    let want = conns(
        r.truth
            .iter()
            .filter_map(|t| t["client"].as_str()?.rsplit(':').next()?.parse().ok())
            .collect(),
    );
    let got = conns(r.entries.iter().filter_map(src_port).collect());
    assert_eq!(got, want, "client connections with HTTP/2 entries");
}

#[test]
fn errors_and_bodies_are_reported() {
    let r = compare_streams(
        &dir().join("http2-nginx.pcap"),
        &dir().join("http2-nginx.truth.jsonl"),
        "http2",
    );
    let statuses: BTreeSet<i64> = r.entries.iter().filter_map(status).collect();
    for s in [200, 201, 404, 405, 500] {
        assert!(statuses.contains(&s), "no {s} entry; have {statuses:?}");
    }
    // The 80 000-byte body spans many DATA frames and TCP segments.
    let big = r
        .entries
        .iter()
        .find(|e| url(e).as_deref() == Some("/big.bin"))
        .expect("GET /big.bin");
    assert_eq!(
        big["response"]["fields"]["response_body_size"],
        Value::from(80_000),
        "{}",
        big["response"]["fields"]
    );
    let post = r
        .entries
        .iter()
        .find(|e| method(e).as_deref() == Some("POST") && status(e) == Some(201))
        .expect("POST /submit -> 201");
    assert!(
        post["request"]["fields"]["request_body_size"]
            .as_i64()
            .is_some_and(|n| n > 0),
        "POST body size: {}",
        post["request"]["fields"]
    );
}

#[test]
fn capture_is_small() {
    let n = std::fs::metadata(dir().join("http2-nginx.pcap"))
        .expect("http2-nginx.pcap")
        .len();
    assert!(n < 300 << 10, "http2-nginx.pcap is {n} bytes");
}
