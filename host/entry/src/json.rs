//! The JSONL record of an entry (schema documented in the README).

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use crate::grouping::{group, Grouped};
use crate::vars::entry_vars;
use crate::{Body, Catalog, Entry, Message, PluginSchema, ValueRef};
use remora_core::{Endpoint, Timestamp};

/// `2026-11-25T18:14:03.123456Z`
pub fn rfc3339_micros(ts: Timestamp) -> String {
    let mut out = Vec::with_capacity(27);
    write_rfc3339_micros(&mut out, ts);
    // Digits, punctuation and the ASCII fallback below only.
    String::from_utf8(out).unwrap_or_default()
}

/// [`rfc3339_micros`] appended to `out`, without formatting machinery: the
/// JSONL writer prints four per entry.
pub(crate) fn write_rfc3339_micros(out: &mut Vec<u8>, ts: Timestamp) {
    let us = ts.micros();
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        out.extend_from_slice(format!("invalid-time({us})").as_bytes());
        return;
    };
    let year = t.year();
    // `{:04}` counts a sign in the width: -5 is "-005".
    if year < 0 {
        out.push(b'-');
    }
    padded(out, year.unsigned_abs(), if year < 0 { 3 } else { 4 });
    out.push(b'-');
    padded(out, t.month() as u32, 2);
    out.push(b'-');
    padded(out, t.day().into(), 2);
    out.push(b'T');
    padded(out, t.hour().into(), 2);
    out.push(b':');
    padded(out, t.minute().into(), 2);
    out.push(b':');
    padded(out, t.second().into(), 2);
    out.push(b'.');
    padded(out, frac as u32, 6);
    out.push(b'Z');
}

/// `n` zero-padded to `width`, wider when it needs more digits (`{:0width$}`).
fn padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut buf = itoa::Buffer::new();
    let n = buf.format(n).as_bytes();
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(n.len())));
    out.extend_from_slice(n);
}

pub(crate) fn endpoint_json(e: &Endpoint) -> Json {
    json!({ "ip": e.ip.to_string(), "port": e.port })
}

pub(crate) fn value_json(v: ValueRef<'_>) -> Json {
    match v {
        ValueRef::Bool(b) => Json::Bool(b),
        ValueRef::Int(i) => Json::from(i),
        ValueRef::Float(f) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        ValueRef::Str(s) => Json::String(s.to_owned()),
        ValueRef::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        ValueRef::Pair(k, v) => json!([k, v]),
    }
}

/// A body as in the JSONL record: sizes, `text` (UTF-8) or `base64`.
pub fn body_json(b: &Body) -> Json {
    let mut o = Map::new();
    o.insert("size".into(), Json::from(b.original_len));
    o.insert("captured".into(), Json::from(b.data.len()));
    o.insert("truncated".into(), Json::Bool(b.truncated));
    o.insert(
        "decoded_from".into(),
        b.decoded_from
            .clone()
            .map(Json::String)
            .unwrap_or(Json::Null),
    );
    match std::str::from_utf8(&b.data) {
        Ok(s) => o.insert("text".into(), Json::String(s.to_owned())),
        Err(_) => o.insert(
            "base64".into(),
            Json::String(base64::engine::general_purpose::STANDARD.encode(&b.data)),
        ),
    };
    Json::Object(o)
}

/// A message's fields by name: maps as lists of `[name, value]` pairs in wire
/// order, lists as arrays, scalars as themselves.
pub fn message_fields_json(schema: &PluginSchema, m: &Message) -> Json {
    let mut fields = Map::new();
    for (decl, g) in group(schema, m) {
        let v = match g {
            Grouped::Scalar(v) => value_json(v),
            Grouped::List(l) => Json::Array(l.into_iter().map(value_json).collect()),
            Grouped::Map(m) => Json::Array(m.into_iter().map(|(k, v)| json!([k, v])).collect()),
        };
        fields.insert(decl.name.clone(), v);
    }
    Json::Object(fields)
}

fn message_json(schema: &PluginSchema, m: &Message) -> Json {
    json!({
        "timestamp": rfc3339_micros(m.ts),
        "fields": message_fields_json(schema, m),
        "body": m.body.as_deref().map(body_json),
    })
}

/// The whole JSONL record of `e`.
pub fn entry_to_json(catalog: &Catalog, e: &Entry) -> Json {
    let schema = catalog.plugin(e.plugin);
    let proto = &schema.protocols[e.protocol as usize];
    json!({
        "id": e.id,
        "timestamp": rfc3339_micros(e.timestamp()),
        "elapsed_time": e.elapsed_us(),
        "protocol": proto.name,
        "transport": e.transport.to_string(),
        "flow_id": e.flow_id,
        "src": endpoint_json(&e.client),
        "dst": endpoint_json(&e.server),
        "complete": e.complete(),
        "request": e.request.as_ref().map(|m| message_json(schema, m)),
        "response": e.response.as_ref().map(|m| message_json(schema, m)),
        "vars": entry_vars(catalog, e),
    })
}
