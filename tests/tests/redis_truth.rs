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

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// (command, argc, reply kind, error text): one transaction.
type Key = (Option<String>, Option<i64>, Option<String>, Option<String>);

fn field<'a>(e: &'a Value, half: &str, name: &str) -> Option<&'a Value> {
    e.get(half)?.get("fields")?.get(name)
}

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

fn multiset<I: IntoIterator<Item = K>, K: Ord>(it: I) -> BTreeMap<K, usize> {
    let mut m = BTreeMap::new();
    for k in it {
        *m.entry(k).or_insert(0) += 1;
    }
    m
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
        .filter(|t| t.get("proto").and_then(Value::as_str) == Some("redis"))
        .collect();
    assert!(
        !expected.is_empty(),
        "{}: no redis records",
        truth.display()
    );
    let (entries, run) = read_jsonl(&pcap, &[]);
    let redis: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("protocol").and_then(Value::as_str) == Some("Redis"))
        .collect();
    assert_eq!(
        redis.len(),
        expected.len(),
        "{capture}: entry count (stderr: {})",
        run.stderr
    );

    // The required comparison: (command, error?) multisets.
    let got = multiset(redis.iter().map(|e| {
        let k = entry_key(e);
        (k.0, k.3.is_some())
    }));
    let want = multiset(expected.iter().map(|t| {
        let k = truth_key(t);
        (k.0, k.3.is_some())
    }));
    let d = diff(&got, &want);
    assert!(
        d.is_empty(),
        "{capture}: (command, error) differ (key, remora, truth): {d:#?}"
    );

    // Stricter: argc, reply kind and error text agree as well.
    let got = multiset(redis.iter().map(|e| entry_key(e)));
    let want = multiset(expected.iter().map(truth_key));
    let d = diff(&got, &want);
    assert!(
        d.is_empty(),
        "{capture}: (command, argc, reply kind, error) differ (key, remora, truth): {d:#?}"
    );

    // Every request entry is complete (paired), pushes are standalone.
    for e in &redis {
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
