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

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use serde_json::Value;

/// (direction, channel, method, exchange, routing_key, queue, reply_code)
type Unit = (
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn dir() -> PathBuf {
    workspace_root().join("tests").join("fixtures").join("amqp")
}

fn norm_method(m: &str) -> String {
    m.replace('-', "").to_ascii_lowercase()
}

fn entry_units(e: &Value) -> Vec<Unit> {
    let mut v = Vec::new();
    for half in ["request", "response"] {
        let Some(f) = e.get(half).and_then(|h| h.get("fields")) else {
            continue;
        };
        let s = |n: &str| f.get(n).and_then(Value::as_str).map(str::to_owned);
        let method = s("amqp_method").unwrap_or_default();
        if method == "protocol-header" {
            continue;
        }
        v.push((
            s("amqp_direction").unwrap_or_default(),
            f.get("amqp_channel").and_then(Value::as_i64),
            norm_method(&method),
            s("amqp_exchange"),
            s("amqp_routing_key"),
            s("amqp_queue"),
            f.get("amqp_reply_code").and_then(Value::as_i64),
        ));
    }
    v
}

fn truth_unit(t: &Value) -> Unit {
    let s = |n: &str| t.get(n).and_then(Value::as_str).map(str::to_owned);
    (
        s("direction").unwrap_or_default(),
        t.get("channel").and_then(Value::as_i64),
        norm_method(&s("method").unwrap_or_default()),
        s("exchange"),
        s("routing_key"),
        s("queue"),
        t.get("reply_code").and_then(Value::as_i64),
    )
}

fn multiset<I: IntoIterator<Item = Unit>>(it: I) -> BTreeMap<Unit, usize> {
    let mut m = BTreeMap::new();
    for k in it {
        *m.entry(k).or_insert(0) += 1;
    }
    m
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
    let got = multiset(units.iter().cloned());
    let want = multiset(truth.iter().map(truth_unit));
    let agree: usize = want
        .iter()
        .map(|(k, n)| (*n).min(got.get(k).copied().unwrap_or(0)))
        .sum();
    let n = truth.len();
    eprintln!("amqp-rabbitmq: {agree}/{n} method frames agree");
    let only = |a: &BTreeMap<Unit, usize>, b: &BTreeMap<Unit, usize>| {
        a.iter()
            .filter(|(k, c)| b.get(*k).copied().unwrap_or(0) < **c)
            .map(|(k, c)| format!("{k:?} x{c}"))
            .collect::<Vec<_>>()
    };
    assert!(
        agree * 100 >= n * 99,
        "{agree}/{n}; truth only: {:#?}; remora only: {:#?}",
        only(&want, &got),
        only(&got, &want)
    );
    // Exact today: no disagreement to explain.
    assert_eq!(units.len(), n, "unit count");
    assert_eq!(got, want);
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
