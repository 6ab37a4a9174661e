//! Every shared capture whose tshark truth has `http` records: remora's HTTP/1
//! entries must match the truth (count, and (method, url, status) multisets).
//!
//! Truth `path` is tshark's `http.request.uri`, i.e. the request target as sent
//! (path plus query string), so it is compared with remora's `url`, not `path`.
//! Truth records with `status: null` (request never answered in the capture)
//! must match entries without a response, compared by (method, url).

mod common;

use common::*;

fn check(capture: &str, truth: &str) {
    let shared = shared_dir();
    let pcap = shared.join("captures").join(capture);
    let truth = shared.join("captures").join("truth").join(truth);
    assert!(
        pcap.is_file() && truth.is_file(),
        "shared captures not found ({} / {}); set REMORA_SHARED to the directory holding captures/",
        pcap.display(),
        truth.display()
    );
    let expected = load_truth_http(&truth);
    assert!(
        !expected.is_empty(),
        "{}: no http records in truth",
        truth.display()
    );
    let (entries, _) = read_jsonl(&pcap, &[]);
    let http = http1_entries(&entries);
    if let Err(report) = compare_http1(capture, &http, &expected) {
        panic!("{report}");
    }
}

#[test]
fn generated_http1() {
    check("generated/http1.pcap", "generated-http1.jsonl");
}

#[test]
fn generated_websocket_handshakes() {
    check("generated/websocket.pcap", "generated-websocket.jsonl");
}

#[test]
fn public_zeek_pipelined() {
    check(
        "public/http1-zeek-pipelined.pcap",
        "public-http1-zeek-pipelined.jsonl",
    );
}

#[test]
fn public_zeek_100_continue() {
    check(
        "public/http1-zeek-100-continue.pcap",
        "public-http1-zeek-100-continue.jsonl",
    );
}

#[test]
fn public_suricata_h2c_upgrade() {
    check(
        "public/http2-suricata-range.pcap",
        "public-http2-suricata-range.jsonl",
    );
}

/// Guard: the list above covers every shared truth file with http records, so
/// a new shared capture can't be silently skipped.
#[test]
fn all_shared_http_truth_is_covered() {
    let dir = shared_dir().join("captures").join("truth");
    let covered = [
        "generated-http1.jsonl",
        "generated-websocket.jsonl",
        "public-http1-zeek-pipelined.jsonl",
        "public-http1-zeek-100-continue.jsonl",
        "public-http2-suricata-range.jsonl",
    ];
    let mut missing = Vec::new();
    for ent in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = ent.expect("dir entry").path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if !name.ends_with(".jsonl") || covered.contains(&name.as_str()) {
            continue;
        }
        if !load_truth_http(&p).is_empty() {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "truth files with http records not covered by http1_truth.rs: {missing:?}"
    );
}
