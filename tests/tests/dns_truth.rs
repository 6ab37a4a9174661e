//! DNS captures with tshark truth: remora's DNS entries must match the truth
//! (count, and the multiset of (id, qname, qtype, rcode, answer count)).
//!
//! Truth `rcode` is tshark's response code name, `null` when the query was
//! never answered in the capture: such records must match entries without a
//! response. `answers` is the response's answer count.

mod common;
#[path = "common/dns_key.rs"]
mod dns_key;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use common::*;
use dns_key::{dns_entry_key, DnsKey};
use serde_json::Value;

type Key = DnsKey;

fn entry_key(e: &Value) -> Key {
    dns_entry_key(e)
}

fn truth_key(r: &Value) -> Key {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    (
        r.get("id").and_then(Value::as_i64).unwrap_or(-1),
        s("qname"),
        s("qtype"),
        s("rcode"),
        r.get("answers")
            .and_then(Value::as_i64)
            .map_or("-".to_owned(), |n| n.to_string()),
    )
}

fn multiset(keys: impl IntoIterator<Item = Key>) -> BTreeMap<Key, i64> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

fn check(capture: &str, truth: &str, expected_count: usize) {
    let shared = shared_dir();
    let pcap = shared.join("captures").join(capture);
    let truth = shared.join("captures").join("truth").join(truth);
    assert!(
        pcap.is_file() && truth.is_file(),
        "shared captures not found ({} / {}); set REMORA_SHARED to the directory holding captures/",
        pcap.display(),
        truth.display()
    );
    let records: Vec<Value> = read_json_lines_file(&truth)
        .into_iter()
        .filter(|r| r.get("proto").and_then(Value::as_str) == Some("dns"))
        .collect();
    assert_eq!(
        records.len(),
        expected_count,
        "{}: unexpected number of dns truth records",
        truth.display()
    );
    let (entries, _) = read_jsonl(&pcap, &[]);
    let dns: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("protocol").and_then(Value::as_str) == Some("DNS"))
        .collect();
    let want = multiset(records.iter().map(truth_key));
    let got = multiset(dns.iter().map(|e| entry_key(e)));
    let mut report = String::new();
    if dns.len() != records.len() {
        let _ = writeln!(
            report,
            "  count: remora has {} DNS entries, truth has {}",
            dns.len(),
            records.len()
        );
    }
    for (k, n) in &want {
        let g = got.get(k).copied().unwrap_or(0);
        if g < *n {
            let _ = writeln!(report, "  missing x{}: {k:?}", n - g);
        }
    }
    for (k, n) in &got {
        let w = want.get(k).copied().unwrap_or(0);
        if w < *n {
            let _ = writeln!(report, "  extra   x{}: {k:?}", n - w);
        }
    }
    assert!(
        report.is_empty(),
        "{capture}: remora DNS entries differ from tshark truth (id, qname, qtype, rcode, answers)\n{report}"
    );
}

#[test]
fn generated_dns() {
    check("generated/dns.pcap", "generated-dns.jsonl", 38);
}

#[test]
fn public_gopacket_unanswered() {
    check("public/dns-gopacket.pcap", "public-dns-gopacket.jsonl", 10);
}
