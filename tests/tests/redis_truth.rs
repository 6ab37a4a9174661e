//! Every shared capture whose tshark truth has `redis` records: remora's Redis
//! entries must match the truth: same entry count, and the same multiset of
//! (command, error) — plus argc, reply kind and error text, which agree
//! exactly too.
//!
//! Truth `command` is the upper-cased verb (`redis_type`), null for server
//! pushes (pub/sub `message` arrays), which remora emits as standalone
//! entries without a request. Truth `error` is the error text of a `-` reply;
//! remora has `redis_error` (bool) and the text in `redis_reply`.
//! Current agreement: 1247/1247 (generated) and 3/3 (public, IPv6), exact.

mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use common::assert_truth_covered;
use proto_fixture::{compare, field, load_shared};
use serde_json::Value;

/// (command, argc, reply kind, error text): one transaction.
type Key = (Option<String>, Option<i64>, Option<String>, Option<String>);

fn entry_key(e: &Value) -> Key {
    let s = |half, name| {
        field(e, half, name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let error = field(e, "response", "redis_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (
        s("request", "redis_type"),
        field(e, "request", "redis_argc").and_then(Value::as_i64),
        s("response", "redis_reply_type"),
        if error {
            s("response", "redis_reply")
        } else {
            None
        },
    )
}

fn truth_key(t: &Value) -> Key {
    let s = |name| t.get(name).and_then(Value::as_str).map(str::to_owned);
    (
        s("command"),
        t.get("argc").and_then(Value::as_i64),
        s("response"),
        s("error"),
    )
}

fn check(capture: &str, truth: &str) {
    let f = load_shared(capture, truth, "redis", "Redis");
    let (redis, expected) = (&f.entries, &f.truth);
    assert_eq!(
        redis.len(),
        expected.len(),
        "{capture}: entry count (stderr: {})",
        f.run.stderr
    );

    // The required comparison: (command, error?) multisets.
    let d = compare(
        redis.iter().map(|e| {
            let k = entry_key(e);
            (k.0, k.3.is_some())
        }),
        expected.iter().map(|t| {
            let k = truth_key(t);
            (k.0, k.3.is_some())
        }),
    )
    .diff;
    assert!(
        d.is_empty(),
        "{capture}: (command, error) differ (key, remora, truth): {d:#?}"
    );

    // Stricter: argc, reply kind and error text agree as well.
    let d = compare(redis.iter().map(entry_key), expected.iter().map(truth_key)).diff;
    assert!(
        d.is_empty(),
        "{capture}: (command, argc, reply kind, error) differ (key, remora, truth): {d:#?}"
    );

    // Every request entry is complete (paired), pushes are standalone.
    for e in redis {
        let has_req = e.get("request").is_some_and(|r| !r.is_null());
        let has_resp = e.get("response").is_some_and(|r| !r.is_null());
        assert!(has_resp, "{capture}: entry without a reply: {e}");
        if !has_req {
            assert_eq!(
                field(e, "response", "redis_push_kind").and_then(Value::as_str),
                Some("message"),
                "{capture}: reply without request is not a push: {e}"
            );
        }
    }
}

#[test]
fn generated_redis() {
    check("generated/redis.pcap", "generated-redis.jsonl");
}

#[test]
fn public_zeek_pipelining() {
    check(
        "public/redis-zeek-pipelining.pcap",
        "public-redis-zeek-pipelining.jsonl",
    );
}

/// Guard: every shared truth file with redis records is covered above.
#[test]
fn all_shared_redis_truth_is_covered() {
    assert_truth_covered(
        "redis",
        &[
            "generated-redis.jsonl",
            "public-redis-zeek-pipelining.jsonl",
        ],
    );
}
