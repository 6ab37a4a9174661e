//! The DNS comparison key of an entry, shared by the shared-capture truth
//! test and the recorded-fixture test.

use serde_json::Value;

/// (id, qname, qtype, rcode name or "-", answer count or "-")
pub type DnsKey = (i64, String, String, String, String);

fn side<'a>(e: &'a Value, s: &str) -> Option<&'a Value> {
    e.get(s)
        .filter(|v| !v.is_null())
        .and_then(|v| v.get("fields"))
}

pub fn dns_entry_key(e: &Value) -> DnsKey {
    let req = side(e, "request");
    let resp = side(e, "response");
    let f = req.or(resp).cloned().unwrap_or(Value::Null);
    let first = |name: &str| {
        f.get(name)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    let (rcode, answers) = match resp {
        Some(r) => (
            r.get("dns_rcode_name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            r.get("dns_answers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
                .to_string(),
        ),
        None => ("-".to_owned(), "-".to_owned()),
    };
    (
        f.get("dns_id").and_then(Value::as_i64).unwrap_or(-1),
        first("dns_questions"),
        first("dns_question_types"),
        rcode,
        answers,
    )
}
