//! tests/fixtures/dns/dns.pcap (recorded by tests/fixtures/dns/record.sh:
//! dnsmasq 2.90 on 15353 with local records only, dig over UDP and TCP,
//! several queries on one TCP connection, NOERROR/NODATA, NXDOMAIN and
//! REFUSED) against its tshark truth.
//!
//! Key per query: (transport, id, qname, qtype, rcode name, answer count),
//! the fields of tests/dns_truth.rs plus the transport. Current agreement:
//! 22/22 (15 UDP, 7 TCP), exact.

mod common;
#[path = "common/dns_key.rs"]
mod dns_key;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use std::sync::OnceLock;

use dns_key::dns_entry_key;
use proto_fixture::*;
use serde_json::Value;

type Key = (String, i64, String, String, String, String);

fn fixture() -> &'static ProtoFixture {
    static F: OnceLock<ProtoFixture> = OnceLock::new();
    F.get_or_init(|| load("dns", "dns", "DNS"))
}

fn entry_key(e: &Value) -> Key {
    let (id, qname, qtype, rcode, answers) = dns_entry_key(e);
    let transport = e
        .get("transport")
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_owned();
    (transport, id, qname, qtype, rcode, answers)
}

fn truth_key(r: &Value) -> Key {
    let s = |k: &str| truth_str(r, k).unwrap_or_else(|| "-".to_owned());
    (
        s("transport"),
        r.get("id").and_then(Value::as_i64).unwrap_or(-1),
        s("qname"),
        s("qtype"),
        s("rcode"),
        r.get("answers")
            .and_then(Value::as_i64)
            .map_or("-".to_owned(), |n| n.to_string()),
    )
}

#[test]
fn queries_agree_with_truth() {
    let f = fixture();
    assert_eq!(
        f.entries.len(),
        f.truth.len(),
        "{}: DNS entry count (stderr: {})",
        f.capture.display(),
        f.run.stderr
    );
    let a = compare(
        f.entries.iter().map(entry_key),
        f.truth.iter().map(truth_key),
    );
    a.assert_min("dns (transport, id, qname, qtype, rcode, answers)");
    assert!(a.diff.is_empty(), "dns: differing keys: {:#?}", a.diff);
}

fn find(f: &ProtoFixture, transport: &str, qname: &str, qtype: &str) -> Vec<Key> {
    f.entries
        .iter()
        .map(entry_key)
        .filter(|k| k.0 == transport && k.2 == qname && k.3 == qtype)
        .collect()
}

/// The answers dnsmasq was configured to give, over UDP and TCP, including
/// the NXDOMAIN and REFUSED error responses.
#[test]
fn configured_answers_and_errors() {
    let f = fixture();
    for (transport, qname, qtype, rcode, answers) in [
        ("udp", "www.fixture.test", "A", "NOERROR", "1"),
        ("udp", "api.fixture.test", "A", "NOERROR", "2"),
        ("udp", "api.fixture.test", "AAAA", "NOERROR", "0"),
        ("udp", "alias.fixture.test", "A", "NOERROR", "2"),
        ("udp", "_meta.fixture.test", "TXT", "NOERROR", "1"),
        ("udp", "missing.fixture.test", "A", "NXDOMAIN", "0"),
        ("udp", "example.org", "A", "REFUSED", "0"),
        ("tcp", "missing.fixture.test", "A", "NXDOMAIN", "0"),
        ("tcp", "gone.fixture.test", "A", "NXDOMAIN", "0"),
        ("tcp", "fixture.test", "MX", "NOERROR", "1"),
    ] {
        let hits = find(f, transport, qname, qtype);
        assert!(
            hits.iter().any(|k| k.4 == rcode && k.5 == answers),
            "{transport} {qname} {qtype}: want {rcode} with {answers} answers, got {hits:?}"
        );
    }
}

/// dig +tcp +keepopen sends four queries over one connection: four entries
/// with one client port.
#[test]
fn several_queries_on_one_tcp_connection() {
    let f = fixture();
    let mut per_port = std::collections::BTreeMap::<i64, usize>::new();
    for e in &f.entries {
        if e.get("transport").and_then(Value::as_str) == Some("tcp") {
            *per_port
                .entry(common::src_port(e).unwrap_or(-1))
                .or_default() += 1;
        }
    }
    assert!(
        per_port.values().any(|n| *n == 4),
        "no TCP connection with 4 queries: {per_port:?}"
    );
}
