//! tests/fixtures/redis/redis.pcap (recorded by tests/fixtures/redis/record.sh:
//! redis-server 7.0 on the non-standard port 16379 with redis-cli, pub/sub,
//! --pipe and redis-benchmark -P 10) against its tshark truth.
//!
//! Key per transaction: (command, argc, reply kind, error text), the same as
//! tests/redis_truth.rs. Current agreement: 270/270, exact.

mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use std::sync::OnceLock;

use proto_fixture::*;
use serde_json::Value;

type Key = (Option<String>, Option<i64>, Option<String>, Option<String>);

fn fixture() -> &'static ProtoFixture {
    static F: OnceLock<ProtoFixture> = OnceLock::new();
    F.get_or_init(|| load("redis", "redis", "Redis"))
}

fn entry_key(e: &Value) -> Key {
    let error = field(e, "response", "redis_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (
        field_str(e, "request", "redis_type"),
        field(e, "request", "redis_argc").and_then(Value::as_i64),
        field_str(e, "response", "redis_reply_type"),
        if error {
            field_str(e, "response", "redis_reply")
        } else {
            None
        },
    )
}

fn truth_key(t: &Value) -> Key {
    (
        truth_str(t, "command"),
        t.get("argc").and_then(Value::as_i64),
        truth_str(t, "response"),
        truth_str(t, "error"),
    )
}

#[test]
fn transactions_agree_with_truth() {
    let f = fixture();
    assert_eq!(
        f.entries.len(),
        f.truth.len(),
        "{}: Redis entry count (stderr: {})",
        f.capture.display(),
        f.run.stderr
    );
    let a = compare(
        f.entries.iter().map(entry_key),
        f.truth.iter().map(truth_key),
    );
    a.assert_min("redis (command, argc, reply kind, error)");
    assert!(a.diff.is_empty(), "redis: differing keys: {:#?}", a.diff);
}

/// Issue 3: a Redis server on 16379 (not 6379) is recognised by content.
#[test]
fn recognised_on_non_standard_port() {
    let f = fixture();
    assert!(
        !f.entries.is_empty() && f.entries.iter().all(|e| server_port(e) == Some(16379)),
        "every Redis entry should be on server port 16379"
    );
}

/// The error replies the record script provokes, with the server's text.
#[test]
fn error_replies_are_reported() {
    let f = fixture();
    let errors: Vec<(Option<String>, String)> = f
        .entries
        .iter()
        .filter(|e| field(e, "response", "redis_error").and_then(Value::as_bool) == Some(true))
        .map(|e| {
            (
                field_str(e, "request", "redis_type"),
                field_str(e, "response", "redis_reply").unwrap_or_default(),
            )
        })
        .collect();
    for (cmd, prefix) in [
        ("INCR", "WRONGTYPE"),
        ("NOSUCHCOMMAND", "ERR unknown command"),
        ("GET", "ERR wrong number of arguments"),
        ("INCR", "ERR value is not an integer"),
        ("BADCMD", "ERR unknown command"),
        ("EXEC", "EXECABORT"),
    ] {
        assert!(
            errors
                .iter()
                .any(|(c, r)| c.as_deref() == Some(cmd) && r.starts_with(prefix)),
            "no {cmd} entry with a `{prefix}...` error reply; errors seen: {errors:#?}"
        );
    }
}

/// Pub/sub: the two PUBLISHes reach the subscriber as server pushes (entries
/// without a request), and a nil reply is a reply, not a missing one.
#[test]
fn pushes_and_nil_reply() {
    let f = fixture();
    let pushes: Vec<&Value> = f
        .entries
        .iter()
        .filter(|e| e.get("request").is_none_or(Value::is_null))
        .collect();
    assert_eq!(pushes.len(), 2, "pub/sub pushes: {pushes:#?}");
    for p in pushes {
        assert_eq!(
            field_str(p, "response", "redis_push_kind").as_deref(),
            Some("message"),
            "push: {p}"
        );
    }
    assert!(
        f.entries.iter().any(|e| {
            field_str(e, "request", "redis_type").as_deref() == Some("GET")
                && field_str(e, "response", "redis_reply_type").as_deref() == Some("null")
        }),
        "GET no-such-key should have a null reply"
    );
}

/// Mass insertion (tests/fixtures/redis/record-pipe.sh: `redis-cli --pipe`
/// of 100,000 SETs, recorded from redis-server): the client runs ~5,000
/// commands ahead of their replies. Every command pairs with its reply (the
/// ECHO --pipe ends with included). With at most 1,024 messages waiting per
/// flow, and each reply whose request had been pushed out waiting in turn
/// and pushing out requests still able to pair, 153,836 of 176,919 entries
/// came out incomplete.
#[test]
fn mass_insertion_pairs_every_command() {
    let pcap = common::fixtures_dir().join("../redis/redis-pipe.pcap.gz");
    let run = common::remora(&["read", pcap.to_str().unwrap(), "--format", "count"], None);
    run.expect_ok();
    assert!(
        run.stderr.contains("100001 entries (0 incomplete)"),
        "{}",
        run.stderr
    );
}
