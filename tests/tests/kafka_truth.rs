//! Every shared capture whose tshark truth has `kafka` records: remora's Kafka
//! request entries must match the truth, one per request: the same count and
//! the same multiset of (client port, api key, api version, correlation id,
//! client id, responded).
//!
//! Truth records are requests only. Remora also emits responses whose
//! request precedes the capture (the nDPI trace picks up connections
//! mid-stream: correlation ids 131, 140, 141) as incomplete response-only
//! entries; they are counted and checked separately (response-only, with a
//! correlation id) and not compared with the truth.
//!
//! Known disagreement, explained (not fixed, remora is right): the Produce
//! v9 request with correlation id 6 on client port 46136 (frame 36) is
//! answered in frame 37, but tshark 4.0 supports Produce only up to v8,
//! marks the request malformed and the response "Request missing", so the
//! truth says `responded: false`. Remora pairs them (`responded: true`).
//! This one field of one record is excepted below; everything else agrees.
//!
//! Current agreement, public/kafka-ndpi.pcapng: 14/14 requests on (api key,
//! version, correlation id, client id); 13/14 on `responded` as tshark has
//! it, 14/14 once the tshark Produce v9 limitation above is accounted for.
//! Plus 3 response-only entries for requests before the capture.

mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use common::*;
use proto_fixture::{compare, field, load_shared};
use serde_json::Value;

/// (client port, api key, api version, correlation id, client id, responded)
type Key = (i64, i64, i64, i64, Option<String>, bool);

/// Truth records where tshark's `responded` is known to be wrong:
/// (capture, client port, correlation id) → the correct value.
const TSHARK_RESPONDED_WRONG: &[(&str, i64, i64, bool)] =
    &[("public/kafka-ndpi.pcapng", 46136, 6, true)];

fn port(addr: &str) -> i64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(-1)
}

fn entry_key(e: &Value) -> Key {
    let i = |name| {
        field(e, "request", name)
            .and_then(Value::as_i64)
            .unwrap_or(-1)
    };
    (
        e.get("src")
            .and_then(|s| s.get("port"))
            .and_then(Value::as_i64)
            .unwrap_or(-1),
        i("kafka_api_key"),
        i("kafka_api_version"),
        i("kafka_correlation_id"),
        field(e, "request", "kafka_client_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        has_response(e),
    )
}

fn truth_key(capture: &str, t: &Value) -> Key {
    let i = |name| t.get(name).and_then(Value::as_i64).unwrap_or(-1);
    let client = port(t.get("client").and_then(Value::as_str).unwrap_or(""));
    let corr = i("correlation_id");
    let mut responded = t.get("responded").and_then(Value::as_bool).unwrap_or(false);
    for (c, p, id, fixed) in TSHARK_RESPONDED_WRONG {
        if *c == capture && *p == client && *id == corr {
            responded = *fixed;
        }
    }
    (
        client,
        i("api_key"),
        i("api_version"),
        corr,
        t.get("client_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        responded,
    )
}

/// Returns (agreeing records, truth records).
fn check(capture: &str, truth: &str) -> (usize, usize) {
    let f = load_shared(capture, truth, "kafka", "Kafka");
    let (kafka, expected, run) = (&f.entries, &f.truth, &f.run);
    let requests: Vec<&Value> = kafka.iter().filter(|e| has_request(e)).collect();
    assert_eq!(
        requests.len(),
        expected.len(),
        "{capture}: request count (stderr: {})",
        run.stderr
    );
    // Response-only entries: requests sent before the capture started.
    for e in kafka.iter().filter(|e| !has_request(e)) {
        assert!(
            has_response(e) && field(e, "response", "kafka_correlation_id").is_some(),
            "{capture}: entry with neither request nor correlation id: {e}"
        );
    }
    let a = compare(
        requests.iter().map(|e| entry_key(e)),
        expected.iter().map(|t| truth_key(capture, t)),
    );
    assert!(
        a.diff.is_empty(),
        "{capture}: (port, key, version, corr, client id, responded) differ \
         (key, remora, truth): {:#?}",
        a.diff
    );
    // Key fields present on every request.
    for e in &requests {
        assert!(
            field(e, "request", "kafka_api_key_name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_')),
            "{capture}: bad api key name: {e}"
        );
        assert!(field(e, "request", "kafka_request_size").is_some());
    }
    (a.agree, expected.len())
}

#[test]
fn public_kafka_ndpi() {
    let (agree, total) = check("public/kafka-ndpi.pcapng", "public-kafka-ndpi.jsonl");
    assert_eq!((agree, total), (14, 14));
}

/// Guard: every shared truth file with kafka records is covered above.
#[test]
fn all_shared_kafka_truth_is_covered() {
    assert_truth_covered("kafka", &["public-kafka-ndpi.jsonl"]);
}
