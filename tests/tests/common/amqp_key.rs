//! One AMQP unit (a method frame) from a remora entry or a tshark truth
//! record; shared by amqp_truth.rs and fixtures_amqp.rs. An entry pairing a
//! method with its `-ok` gives two units; the protocol header gives none.
#![allow(dead_code)]

use serde_json::Value;

/// (direction, channel, method, exchange, routing_key, queue, reply_code)
pub type Unit = (
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// tshark writes `basic.consume-ok` as `Consume-Ok` in some versions.
fn norm_method(m: &str) -> String {
    m.replace('-', "").to_ascii_lowercase()
}

pub fn entry_units(e: &Value) -> Vec<Unit> {
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

pub fn truth_unit(t: &Value) -> Unit {
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
