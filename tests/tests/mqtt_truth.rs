//! Every shared capture whose tshark truth has `mqtt` records: remora's MQTT
//! entries must match the truth, one truth record per control packet.
//!
//! Remora pairs packets (CONNECT with CONNACK, PUBLISH QoS1 with PUBACK, ...),
//! so every request and response message an entry holds counts as one unit.
//! Per message the key is (direction, packet type, topic, client id), compared
//! as multisets; the stricter key adds QoS, packet id, payload size, reason
//! codes and retain. Direction comes from `mqtt_direction`: a server PUBLISH
//! is the *request* of its entry, so the entry half does not tell it.
//! Current agreement: 106/106 (generated) and 20/20 (public), exact on the
//! strict key; no disagreement to explain.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// (direction, type, topic, client id).
type Key = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);
/// (qos, packet id, payload size, reason codes, retain).
type Extra = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Vec<i64>,
    Option<bool>,
);

fn ints(v: Option<&Value>) -> Vec<i64> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

fn message_key(f: &Value) -> (Key, Extra) {
    let s = |n: &str| f.get(n).and_then(Value::as_str).map(str::to_owned);
    let i = |n: &str| f.get(n).and_then(Value::as_i64);
    (
        (
            s("mqtt_direction"),
            s("mqtt_type"),
            s("mqtt_topic"),
            s("mqtt_client_id"),
        ),
        (
            i("mqtt_qos"),
            i("mqtt_packet_id"),
            i("mqtt_payload_size"),
            ints(f.get("mqtt_reason_codes")),
            f.get("mqtt_retain").and_then(Value::as_bool),
        ),
    )
}

fn truth_key(t: &Value) -> (Key, Extra) {
    let s = |n: &str| t.get(n).and_then(Value::as_str).map(str::to_owned);
    let i = |n: &str| t.get(n).and_then(Value::as_i64);
    (
        (s("direction"), s("packet_type"), s("topic"), s("client_id")),
        (
            i("qos"),
            i("msgid"),
            i("payload_len"),
            ints(t.get("reason_codes")),
            t.get("retain").and_then(Value::as_bool),
        ),
    )
}

fn multiset<I: IntoIterator<Item = K>, K: Ord>(it: I) -> BTreeMap<K, usize> {
    let mut m = BTreeMap::new();
    for k in it {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Units on which both sides agree (multiset intersection size).
fn agreement<K: Ord>(a: &BTreeMap<K, usize>, b: &BTreeMap<K, usize>) -> usize {
    a.iter()
        .map(|(k, n)| (*n).min(b.get(k).copied().unwrap_or(0)))
        .sum()
}

fn diff<K: Ord + std::fmt::Debug + Clone>(
    a: &BTreeMap<K, usize>,
    b: &BTreeMap<K, usize>,
) -> Vec<(K, usize, usize)> {
    let mut d = Vec::new();
    for k in a.keys().chain(b.keys()) {
        let (x, y) = (
            a.get(k).copied().unwrap_or(0),
            b.get(k).copied().unwrap_or(0),
        );
        if x != y && !d.iter().any(|(dk, _, _): &(K, usize, usize)| dk == k) {
            d.push((k.clone(), x, y));
        }
    }
    d
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
        .filter(|t| t.get("proto").and_then(Value::as_str) == Some("mqtt"))
        .collect();
    assert!(!expected.is_empty(), "{}: no mqtt records", truth.display());
    let (entries, run) = read_jsonl(&pcap, &[]);
    let mqtt: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("protocol").and_then(Value::as_str) == Some("MQTT"))
        .collect();
    let messages: Vec<&Value> = mqtt
        .iter()
        .flat_map(|e| ["request", "response"].map(|h| e.get(h)))
        .flatten()
        .filter(|m| !m.is_null())
        .filter_map(|m| m.get("fields"))
        .collect();
    assert_eq!(
        messages.len(),
        expected.len(),
        "{capture}: control packet count (stderr: {})",
        run.stderr
    );

    // Every entry is complete: paired, or a standalone kind (PUBLISH QoS 0,
    // DISCONNECT, AUTH) with one half.
    for e in &mqtt {
        assert_eq!(
            e.get("complete").and_then(Value::as_bool),
            Some(true),
            "{capture}: incomplete entry: {e}"
        );
        if !(has_request(e) && has_response(e)) {
            let half = if has_request(e) {
                "request"
            } else {
                "response"
            };
            let f = &e[half]["fields"];
            let ty = f.get("mqtt_type").and_then(Value::as_str);
            let qos0 = f.get("mqtt_qos").and_then(Value::as_i64) == Some(0);
            assert!(
                matches!(ty, Some("DISCONNECT" | "AUTH")) || (ty == Some("PUBLISH") && qos0),
                "{capture}: unpaired entry: {e}"
            );
        }
    }

    let got = multiset(messages.iter().map(|f| message_key(f).0));
    let want = multiset(expected.iter().map(|t| truth_key(t).0));
    let agree = agreement(&got, &want);
    eprintln!("{capture}: key agreement {agree}/{}", expected.len());
    let d = diff(&got, &want);
    assert!(
        d.is_empty(),
        "{capture}: (direction, type, topic, client id) differ (key, remora, truth): {d:#?}"
    );

    let got = multiset(messages.iter().map(|f| message_key(f)));
    let want = multiset(expected.iter().map(truth_key));
    let agree = agreement(&got, &want);
    eprintln!("{capture}: strict agreement {agree}/{}", expected.len());
    let d = diff(&got, &want);
    assert!(
        d.is_empty(),
        "{capture}: strict keys differ (key, remora, truth): {d:#?}"
    );
}

#[test]
fn generated_mqtt() {
    check("generated/mqtt.pcap", "generated-mqtt.jsonl");
}

#[test]
fn public_zeek() {
    check("public/mqtt-zeek.pcap", "public-mqtt-zeek.jsonl");
}

/// Guard: every shared truth file with mqtt records is covered above.
#[test]
fn all_shared_mqtt_truth_is_covered() {
    assert_truth_covered("mqtt", &["generated-mqtt.jsonl", "public-mqtt-zeek.jsonl"]);
}
