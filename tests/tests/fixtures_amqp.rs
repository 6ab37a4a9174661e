//! Our AMQP fixture (tests/fixtures/amqp, recorded by its record.sh):
//! RabbitMQ 3.10 on 35672 and a pika client: declare/bind, publisher
//! confirms, publish (one 8 000-byte body over several frames), consume +
//! ack, basic.get (GetOk, GetEmpty), purge, and two channel errors (404 for a
//! passive declare of a missing queue and for a publish to a missing
//! exchange).
//!
//! Units as in amqp_truth.rs: one per method frame; an entry pairing a
//! method with its `-ok` counts as two. Key: (direction, channel, method,
//! exchange, routing key, queue, reply code).
//!
//! Current agreement (snapshot binary and plugins): 72/72, exact.

#[path = "common/amqp_key.rs"]
mod amqp_key;
mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use std::path::PathBuf;

use amqp_key::{entry_units, truth_unit, Unit};
use common::*;
use proto_fixture::compare;
use serde_json::Value;

fn dir() -> PathBuf {
    workspace_root().join("tests").join("fixtures").join("amqp")
}

#[test]
fn rabbitmq_pika_matches_truth() {
    let truth: Vec<Value> = read_json_lines_file(&dir().join("amqp-rabbitmq.truth.jsonl"))
        .into_iter()
        .filter(|t| t["proto"] == "amqp")
        .collect();
    assert!(!truth.is_empty(), "no amqp truth records");
    let (entries, _) = read_jsonl(&dir().join("amqp-rabbitmq.pcap"), &[]);
    let units: Vec<Unit> = entries
        .iter()
        .filter(|e| e["protocol"] == "AMQP")
        .flat_map(entry_units)
        .collect();
    let a = compare(units.iter().cloned(), truth.iter().map(truth_unit));
    a.assert_min("amqp-rabbitmq method frames");
    // Exact today: no disagreement to explain.
    assert_eq!(units.len(), truth.len(), "unit count");
    assert!(a.diff.is_empty(), "(key, remora, truth): {:#?}", a.diff);
}

#[test]
fn channel_errors_carry_reply_code_and_text() {
    let (entries, _) = read_jsonl(&dir().join("amqp-rabbitmq.pcap"), &[]);
    let closes: Vec<&Value> = entries
        .iter()
        .flat_map(|e| [&e["request"]["fields"], &e["response"]["fields"]])
        .filter(|f| f["amqp_method"] == "channel.close" && f["amqp_reply_code"] == 404)
        .collect();
    assert_eq!(closes.len(), 2, "two channel.close 404 NOT_FOUND");
    for f in closes {
        let text = f["amqp_reply_text"].as_str().unwrap_or("");
        assert!(text.starts_with("NOT_FOUND"), "{f}");
    }
}

#[test]
fn capture_is_small() {
    let n = std::fs::metadata(dir().join("amqp-rabbitmq.pcap"))
        .expect("amqp-rabbitmq.pcap")
        .len();
    assert!(n < 300 << 10, "amqp-rabbitmq.pcap is {n} bytes");
}
