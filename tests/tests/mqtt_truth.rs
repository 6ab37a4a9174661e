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
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use common::*;
use proto_fixture::{compare, load_shared};
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

fn check(capture: &str, truth: &str) {
    let f = load_shared(capture, truth, "mqtt", "MQTT");
    let (mqtt, expected, run) = (&f.entries, &f.truth, &f.run);
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
    for e in mqtt {
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

    let a = compare(
        messages.iter().map(|f| message_key(f).0),
        expected.iter().map(|t| truth_key(t).0),
    );
    eprintln!("{capture}: key agreement {}/{}", a.agree, expected.len());
    let d = a.diff;
    assert!(
        d.is_empty(),
        "{capture}: (direction, type, topic, client id) differ (key, remora, truth): {d:#?}"
    );

    let a = compare(
        messages.iter().map(|f| message_key(f)),
        expected.iter().map(truth_key),
    );
    eprintln!("{capture}: strict agreement {}/{}", a.agree, expected.len());
    let d = a.diff;
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
