//! Every shared capture whose tshark truth has `amqp` records: remora's AMQP
//! entries must match the truth, one unit per method frame.
//!
//! Remora pairs a synchronous method with its `-ok` reply in one entry
//! (`queue.declare` + `queue.declare-ok`), so each request and response
//! message of an entry counts as one unit; the standalone protocol-header
//! message is not a method frame and is not counted. Method names compare
//! case-insensitively with the dash removed (`queue.declare-ok` ~
//! `Queue.DeclareOk`). The key per unit: (direction, channel, method,
//! exchange, routing_key, queue), with fields a method lacks as null on both
//! sides.
//!
//! Current agreement: 83/83 (generated, RabbitMQ 3.10 + pika) and 36/36
//! (public nDPI celery trace, flows captured mid-stream), exact: no
//! disagreement to explain. Target is >= 99% per capture.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// (direction, channel, method, exchange, routing_key, queue).
type Key = (
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn norm_method(m: &str) -> String {
    m.replace('-', "").to_ascii_lowercase()
}

/// The per-message units of one entry.
fn entry_units(e: &Value) -> Vec<Key> {
    let mut v = Vec::new();
    for half in ["request", "response"] {
        let Some(f) = e.get(half).and_then(|h| h.get("fields")) else {
            continue;
        };
        let s = |name: &str| f.get(name).and_then(Value::as_str).map(str::to_owned);
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
        ));
    }
    v
}

fn truth_key(t: &Value) -> Key {
    let s = |name: &str| t.get(name).and_then(Value::as_str).map(str::to_owned);
    (
        s("direction").unwrap_or_default(),
        t.get("channel").and_then(Value::as_i64),
        norm_method(&s("method").unwrap_or_default()),
        s("exchange"),
        s("routing_key"),
        s("queue"),
    )
}

fn multiset<I: IntoIterator<Item = K>, K: Ord>(it: I) -> BTreeMap<K, usize> {
    let mut m = BTreeMap::new();
    for k in it {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Units present in both multisets.
fn agreement<K: Ord>(a: &BTreeMap<K, usize>, b: &BTreeMap<K, usize>) -> usize {
    a.iter()
        .map(|(k, n)| (*n).min(b.get(k).copied().unwrap_or(0)))
        .sum()
}

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
    let expected: Vec<Value> = read_json_lines_file(&truth)
        .into_iter()
        .filter(|t| t.get("proto").and_then(Value::as_str) == Some("amqp"))
        .collect();
    assert!(!expected.is_empty(), "{}: no amqp records", truth.display());
    let (entries, run) = read_jsonl(&pcap, &[]);
    let units: Vec<Key> = entries
        .iter()
        .filter(|e| e.get("protocol").and_then(Value::as_str) == Some("AMQP"))
        .flat_map(entry_units)
        .collect();
    assert_eq!(
        units.len(),
        expected.len(),
        "{capture}: unit count (stderr: {})",
        run.stderr
    );
    let got = multiset(units);
    let want = multiset(expected.iter().map(truth_key));
    let agree = agreement(&got, &want);
    let total = expected.len();
    eprintln!("{capture}: {agree}/{total} units agree");
    let only_remora: Vec<_> = got
        .iter()
        .filter(|(k, n)| want.get(*k).copied().unwrap_or(0) < **n)
        .collect();
    let only_truth: Vec<_> = want
        .iter()
        .filter(|(k, n)| got.get(*k).copied().unwrap_or(0) < **n)
        .collect();
    assert!(
        agree * 100 >= total * 99,
        "{capture}: {agree}/{total} agree; remora only: {only_remora:#?}; truth only: {only_truth:#?}"
    );
    // Currently exact; a regression below 100% should be looked at.
    assert_eq!(
        agree, total,
        "{capture}: remora only: {only_remora:#?}; truth only: {only_truth:#?}"
    );
}

#[test]
fn generated_amqp() {
    check("generated/amqp.pcap", "generated-amqp.jsonl");
}

#[test]
fn public_amqp_ndpi() {
    check("public/amqp-ndpi.pcap", "public-amqp-ndpi.jsonl");
}

/// Guard: every shared truth file with amqp records is covered above.
#[test]
fn all_shared_amqp_truth_is_covered() {
    assert_truth_covered("amqp", &["generated-amqp.jsonl", "public-amqp-ndpi.jsonl"]);
}
