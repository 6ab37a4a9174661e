//! tests/fixtures/mqtt/mqtt.pcap (recorded by tests/fixtures/mqtt/record.sh:
//! mosquitto 2.0 on 11883 with a password file; mosquitto_pub/sub over MQTT
//! 3.1, 3.1.1 and 5, QoS 0/1/2, a retained message, an 8 KB payload, refused
//! CONNECTs) against its tshark truth.
//!
//! Truth has one record per control packet; remora pairs packets (CONNECT
//! with CONNACK, PUBLISH with PUBACK/PUBREC, ...), so every request and
//! response message of an entry counts as one unit, as in
//! tests/mqtt_truth.rs. Key: (direction, type, topic, client id, QoS, packet
//! id, payload size, reason codes, retain). Current agreement: 78/78, exact.

mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use std::sync::OnceLock;

use proto_fixture::*;
use serde_json::Value;

type Key = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Vec<i64>,
    Option<bool>,
);

fn fixture() -> &'static ProtoFixture {
    static F: OnceLock<ProtoFixture> = OnceLock::new();
    F.get_or_init(|| load("mqtt", "mqtt", "MQTT"))
}

fn ints(v: Option<&Value>) -> Vec<i64> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// The `fields` of every message (request and response half) of every entry.
fn messages(f: &ProtoFixture) -> Vec<&Value> {
    f.entries
        .iter()
        .flat_map(|e| ["request", "response"].map(|h| e.get(h)))
        .flatten()
        .filter(|m| !m.is_null())
        .filter_map(|m| m.get("fields"))
        .collect()
}

fn message_key(f: &Value) -> Key {
    let s = |n: &str| f.get(n).and_then(Value::as_str).map(str::to_owned);
    let i = |n: &str| f.get(n).and_then(Value::as_i64);
    (
        s("mqtt_direction"),
        s("mqtt_type"),
        s("mqtt_topic"),
        s("mqtt_client_id"),
        i("mqtt_qos"),
        i("mqtt_packet_id"),
        i("mqtt_payload_size"),
        ints(f.get("mqtt_reason_codes")),
        f.get("mqtt_retain").and_then(Value::as_bool),
    )
}

fn truth_key(t: &Value) -> Key {
    let i = |n: &str| t.get(n).and_then(Value::as_i64);
    (
        truth_str(t, "direction"),
        truth_str(t, "packet_type"),
        truth_str(t, "topic"),
        truth_str(t, "client_id"),
        i("qos"),
        i("msgid"),
        i("payload_len"),
        ints(t.get("reason_codes")),
        t.get("retain").and_then(Value::as_bool),
    )
}

#[test]
fn control_packets_agree_with_truth() {
    let f = fixture();
    let msgs = messages(f);
    assert_eq!(
        msgs.len(),
        f.truth.len(),
        "{}: MQTT control packet count (stderr: {})",
        f.capture.display(),
        f.run.stderr
    );
    let a = compare(
        msgs.iter().map(|m| message_key(m)),
        f.truth.iter().map(truth_key),
    );
    a.assert_min("mqtt (direction, type, topic, client id, qos, id, size, codes, retain)");
    assert!(a.diff.is_empty(), "mqtt: differing keys: {:#?}", a.diff);
}

/// Every entry is complete; the refused CONNECTs carry the refusal codes of
/// their protocol version (3.1.1: 5 "not authorized"; 5: 0x87).
#[test]
fn refused_connects() {
    let f = fixture();
    for e in &f.entries {
        assert_eq!(
            e.get("complete").and_then(Value::as_bool),
            Some(true),
            "incomplete entry: {e}"
        );
    }
    let refused: Vec<(Option<String>, Vec<i64>)> = f
        .entries
        .iter()
        .filter(|e| field_str(e, "response", "mqtt_type").as_deref() == Some("CONNACK"))
        .map(|e| {
            (
                field_str(e, "request", "mqtt_client_id"),
                ints(field(e, "response", "mqtt_reason_codes")),
            )
        })
        .filter(|(_, codes)| codes != &[0])
        .collect();
    assert_eq!(
        refused,
        vec![
            (Some("bad-311".to_owned()), vec![5]),
            (Some("bad-v5".to_owned()), vec![0x87]),
        ]
    );
}

/// All three protocol versions occur, and QoS 2 publishes complete their
/// PUBREC/PUBREL/PUBCOMP handshake.
#[test]
fn versions_and_qos2_flow() {
    let f = fixture();
    let msgs = messages(f);
    for v in [3, 4, 5] {
        assert!(
            msgs.iter()
                .any(|m| m.get("mqtt_version").and_then(Value::as_i64) == Some(v)),
            "no MQTT protocol level {v} message"
        );
    }
    let count = |ty: &str| {
        msgs.iter()
            .filter(|m| m.get("mqtt_type").and_then(Value::as_str) == Some(ty))
            .count()
    };
    assert!(count("PUBREC") > 0, "no PUBREC");
    assert_eq!(count("PUBREC"), count("PUBREL"));
    assert_eq!(count("PUBREL"), count("PUBCOMP"));
}
