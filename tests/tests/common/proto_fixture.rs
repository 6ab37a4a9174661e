//! A capture with tshark truth — our own per-protocol fixtures
//! (tests/fixtures/<proto>/<proto>.pcap with <proto>.truth.jsonl from
//! truth.sh) or a shared one (../shared/captures with truth/<name>.jsonl):
//! run remora once per capture and compare keyed units with the truth as
//! multisets, reporting agreement and a diff.
//!
//! Included by the fixtures_<proto>.rs and <proto>_truth.rs tests with
//! `#[path = "common/proto_fixture.rs"] mod proto_fixture;` next to `mod common;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::{read_json_lines_file, read_jsonl, shared_dir, workspace_root, Run};

/// Agreement every protocol fixture must reach (issue 3 acceptance).
pub const MIN_AGREEMENT: f64 = 0.99;

pub struct ProtoFixture {
    pub capture: PathBuf,
    /// remora entries whose `protocol` is the one under test.
    pub entries: Vec<Value>,
    /// truth records whose `proto` is the one under test, in frame order.
    pub truth: Vec<Value>,
    pub run: Run,
}

pub fn fixture_file(dir: &str, name: &str) -> PathBuf {
    workspace_root()
        .join("tests")
        .join("fixtures")
        .join(dir)
        .join(name)
}

/// Run remora on tests/fixtures/DIR/DIR.pcap and load DIR.truth.jsonl.
pub fn load(dir: &str, truth_proto: &str, remora_protocol: &str) -> ProtoFixture {
    let capture = fixture_file(dir, &format!("{dir}.pcap"));
    let truth = fixture_file(dir, &format!("{dir}.truth.jsonl"));
    let hint = format!("re-record with tests/fixtures/{dir}/record.sh");
    load_files(capture, truth, &hint, truth_proto, remora_protocol)
}

/// Run remora on ../shared/captures/CAPTURE and load truth/TRUTH there.
pub fn load_shared(
    capture: &str,
    truth: &str,
    truth_proto: &str,
    remora_protocol: &str,
) -> ProtoFixture {
    let captures = shared_dir().join("captures");
    let hint = "set REMORA_SHARED to the directory holding captures/";
    load_files(
        captures.join(capture),
        captures.join("truth").join(truth),
        hint,
        truth_proto,
        remora_protocol,
    )
}

fn load_files(
    capture: PathBuf,
    truth_p: PathBuf,
    missing_hint: &str,
    truth_proto: &str,
    remora_protocol: &str,
) -> ProtoFixture {
    assert!(
        capture.is_file() && truth_p.is_file(),
        "capture or truth missing: {} / {} ({missing_hint})",
        capture.display(),
        truth_p.display()
    );
    let mut truth: Vec<Value> = read_json_lines_file(&truth_p)
        .into_iter()
        .filter(|t| t.get("proto").and_then(Value::as_str) == Some(truth_proto))
        .collect();
    assert!(
        !truth.is_empty(),
        "{}: no {truth_proto} records",
        truth_p.display()
    );
    truth.sort_by_key(|t| t.get("frame").and_then(Value::as_i64).unwrap_or(0));
    let (all, run) = read_jsonl(&capture, &[]);
    let entries = all
        .into_iter()
        .filter(|e| e.get("protocol").and_then(Value::as_str) == Some(remora_protocol))
        .collect();
    ProtoFixture {
        capture,
        entries,
        truth,
        run,
    }
}

/// `request.fields.NAME` / `response.fields.NAME`.
pub fn field<'a>(e: &'a Value, half: &str, name: &str) -> Option<&'a Value> {
    e.get(half)?.get("fields")?.get(name)
}

pub fn field_str(e: &Value, half: &str, name: &str) -> Option<String> {
    field(e, half, name)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub fn truth_str(t: &Value, name: &str) -> Option<String> {
    t.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// tshark replaces non-ASCII bytes in SQL text with U+FFFD and remora with one
/// U+FFFD per invalid sequence: compare the ASCII characters only.
pub fn ascii(s: &str) -> String {
    s.chars().filter(char::is_ascii).collect()
}

pub fn multiset<K: Ord, I: IntoIterator<Item = K>>(it: I) -> BTreeMap<K, usize> {
    let mut m = BTreeMap::new();
    for k in it {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Result of comparing remora's keys with the truth's.
pub struct Agreement<K> {
    /// Units on which both sides agree (multiset intersection size).
    pub agree: usize,
    pub truth_total: usize,
    pub remora_total: usize,
    /// (key, remora count, truth count) for every key whose counts differ.
    pub diff: Vec<(K, usize, usize)>,
}

impl<K: Debug> Agreement<K> {
    pub fn ratio(&self) -> f64 {
        let denom = self.truth_total.max(self.remora_total);
        if denom == 0 {
            1.0
        } else {
            self.agree as f64 / denom as f64
        }
    }

    /// `what` agreement must reach [`MIN_AGREEMENT`]; prints the numbers so a
    /// `--nocapture` run shows them.
    pub fn assert_min(&self, what: &str) {
        eprintln!(
            "{what}: {}/{} agree (remora {} units)",
            self.agree, self.truth_total, self.remora_total
        );
        assert!(
            self.ratio() >= MIN_AGREEMENT,
            "{what}: agreement {}/{} (remora has {}) is below {MIN_AGREEMENT}; \
             differing keys (key, remora, truth): {:#?}",
            self.agree,
            self.truth_total,
            self.remora_total,
            self.diff
        );
    }
}

pub fn compare<K: Ord + Clone + Debug>(
    remora: impl IntoIterator<Item = K>,
    truth: impl IntoIterator<Item = K>,
) -> Agreement<K> {
    let got = multiset(remora);
    let want = multiset(truth);
    let agree = got
        .iter()
        .map(|(k, n)| (*n).min(want.get(k).copied().unwrap_or(0)))
        .sum();
    let mut diff = Vec::new();
    for k in got.keys().chain(want.keys()) {
        let (x, y) = (
            got.get(k).copied().unwrap_or(0),
            want.get(k).copied().unwrap_or(0),
        );
        if x != y && !diff.iter().any(|(dk, _, _): &(K, usize, usize)| dk == k) {
            diff.push((k.clone(), x, y));
        }
    }
    Agreement {
        agree,
        truth_total: want.values().sum(),
        remora_total: got.values().sum(),
        diff,
    }
}

/// Server port of an entry (`dst.port`).
pub fn server_port(e: &Value) -> Option<i64> {
    e.get("dst")?.get("port")?.as_i64()
}
