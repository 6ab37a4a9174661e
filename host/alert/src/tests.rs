use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use remora_core::{Endpoint, Timestamp, Transport};
use remora_entry::{
    Catalog, Entry, Field, FieldSchema, FieldType, Message, PluginSchema, ProtocolSchema, Value,
};
use remora_store::StoredEntry;

use crate::config::AlertConfig;
use crate::{AlertHub, Detector, RuleSet};

fn catalog() -> Arc<Catalog> {
    let field = |id, name: &str, ty| FieldSchema {
        id,
        name: name.into(),
        ty,
        top_level: true,
        doc: String::new(),
    };
    Arc::new(Catalog {
        plugins: vec![PluginSchema::new(
            "http".into(),
            "0.1.0".into(),
            vec![ProtocolSchema {
                name: "HTTP".into(),
                flag: "http".into(),
                transport: Transport::Tcp,
                ports: vec![],
                request_summary: String::new(),
                response_summary: String::new(),
            }],
            vec![
                field(0, "method", FieldType::Str),
                field(1, "status_code", FieldType::Int),
            ],
        )],
    })
}

/// An HTTP entry `id` at `secs` seconds, to server `dst`, with `status`.
fn entry(c: &Arc<Catalog>, id: u64, secs: i64, dst: &str, status: i64) -> Arc<StoredEntry> {
    let ts = Timestamp::from_micros(1_700_000_000_000_000 + secs * 1_000_000);
    let msg = |fields| Message {
        ts,
        fields,
        body: None,
    };
    Arc::new(StoredEntry {
        catalog: c.clone(),
        entry: Entry {
            id,
            flow_id: id,
            plugin: 0,
            protocol: 0,
            transport: Transport::Tcp,
            client: Endpoint::new("10.0.0.1".parse().unwrap(), 40000),
            server: Endpoint::new(dst.parse().unwrap(), 80),
            request: Some(msg(vec![Field {
                id: 0,
                value: Value::Str("GET".into()),
            }]
            .into())),
            response: Some(msg(vec![Field {
                id: 1,
                value: Value::Int(status),
            }]
            .into())),
            standalone: false,
        },
    })
}

fn rules(toml: &str) -> RuleSet {
    let cfg = AlertConfig::parse(toml, "test.toml").expect("config parses");
    RuleSet::compile(&cfg.rules, &catalog()).expect("rules compile")
}

#[test]
fn per_entry_rule_fires_once_per_matching_entry() {
    let c = catalog();
    let mut r = rules("[[rule]]\nname = \"5xx\"\nfilter = \"http && status_code >= 500\"\nseverity = \"critical\"\nlabels = { team = \"web\" }\n");
    let got = r.on_entries(&[
        entry(&c, 1, 0, "10.0.0.2", 500),
        entry(&c, 2, 1, "10.0.0.2", 200),
        entry(&c, 3, 2, "10.0.0.2", 503),
    ]);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].entry_ids, vec![1]);
    assert_eq!(got[1].entry_ids, vec![3]);
    assert_eq!(got[0].severity, crate::Severity::Critical);
    assert_eq!(got[0].labels, vec![("team".to_string(), "web".to_string())]);
}

#[test]
fn threshold_fires_once_per_window() {
    let c = catalog();
    let mut r = rules("[[rule]]\nname = \"burst\"\nfilter = \"http && status_code >= 400\"\nthreshold = \"count > 2 within 10s\"\n");
    // Window 1 starts at t=0: the third match (t=2) fires; t=3..9 do not.
    let w1: Vec<_> = (0..10)
        .map(|i| entry(&c, i + 1, i as i64, "10.0.0.2", 404))
        .collect();
    let got = r.on_entries(&w1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].entry_ids, vec![1, 2, 3]);
    // t=10 opens window 2; two matches are not enough, the third fires.
    assert!(r
        .on_entries(&[
            entry(&c, 20, 10, "10.0.0.2", 404),
            entry(&c, 21, 11, "10.0.0.2", 404)
        ])
        .is_empty());
    assert_eq!(r.on_entries(&[entry(&c, 22, 12, "10.0.0.2", 404)]).len(), 1);
}

#[test]
fn threshold_groups_count_separately() {
    let c = catalog();
    let mut r = rules("[[rule]]\nname = \"per-dst\"\nfilter = \"http && status_code >= 500\"\nthreshold = \"count > 1 within 1m\"\ngroup_by = \"dst.ip\"\n");
    let got = r.on_entries(&[
        entry(&c, 1, 0, "10.0.0.2", 500),
        entry(&c, 2, 1, "10.0.0.3", 500),
        entry(&c, 3, 2, "10.0.0.2", 500),
        entry(&c, 4, 3, "10.0.0.3", 500),
    ]);
    assert_eq!(got.len(), 2);
    assert!(got[0]
        .labels
        .contains(&("dst.ip".into(), "10.0.0.2".into())));
    assert!(got[1]
        .labels
        .contains(&("dst.ip".into(), "10.0.0.3".into())));
}

#[test]
fn rate_limit_and_dedupe_withhold_and_count() {
    let c = catalog();
    let mut r = rules("[[rule]]\nname = \"rl\"\nfilter = \"http\"\nrate_limit = \"10s\"\n[[rule]]\nname = \"dd\"\nfilter = \"http\"\ndedupe = \"5s\"\n");
    let got = r.on_entries(&[
        entry(&c, 1, 0, "10.0.0.2", 200),
        entry(&c, 2, 4, "10.0.0.2", 200),
        entry(&c, 3, 6, "10.0.0.2", 200),
        entry(&c, 4, 10, "10.0.0.2", 200),
    ]);
    let by = |n: &str| {
        got.iter()
            .filter(|a| a.rule == n)
            .map(|a| a.entry_ids[0])
            .collect::<Vec<_>>()
    };
    assert_eq!(by("rl"), vec![1, 4]);
    assert_eq!(by("dd"), vec![1, 3]);
    assert_eq!(r.rules()[0].counters.rate_limited, 2);
    assert_eq!(r.rules()[1].counters.deduplicated, 2);
}

#[test]
fn bad_rules_name_the_rule_and_position() {
    let cfg = AlertConfig::parse(
        "[[rule]]\nname = \"oops\"\nfilter = \"http && nosuchvar > 1\"\n",
        "t",
    )
    .unwrap();
    let e = RuleSet::compile(&cfg.rules, &catalog())
        .err()
        .expect("rejected")
        .to_string();
    assert!(
        e.contains("\"oops\"") && e.contains("nosuchvar") && e.contains("at 8"),
        "{e}"
    );
    let cfg = AlertConfig::parse(
        "[[rule]]\nname = \"t\"\nfilter = \"http\"\nthreshold = \"more than 3\"\n",
        "t",
    )
    .unwrap();
    let e = RuleSet::compile(&cfg.rules, &catalog())
        .err()
        .expect("rejected")
        .to_string();
    assert!(e.contains("more than 3"), "{e}");
}

#[test]
fn webhook_off_the_allow_list_is_a_config_error() {
    let e = AlertConfig::parse(
        "allow_hosts = [\"127.0.0.1\"]\n[[webhook]]\nname = \"x\"\nurl = \"http://evil.example:80/h\"\n",
        "t",
    )
    .expect_err("rejected")
    .to_string();
    assert!(
        e.contains("evil.example") && e.contains("allow_hosts"),
        "{e}"
    );
}

#[test]
fn hub_keeps_a_bounded_history_with_ids() {
    let hub = AlertHub::new(2, vec![]);
    let c = catalog();
    let mut r = rules("[[rule]]\nname = \"all\"\nfilter = \"http\"\n");
    for a in r.on_entries(&[
        entry(&c, 1, 0, "10.0.0.2", 200),
        entry(&c, 2, 1, "10.0.0.2", 200),
        entry(&c, 3, 2, "10.0.0.2", 200),
    ]) {
        hub.raise(a);
    }
    let ids: Vec<u64> = hub.list(0, 10).iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![2, 3]);
    assert_eq!(hub.list(2, 10).len(), 1);
    assert_eq!(hub.counters().raised_by_rule["all"], 3);
}

#[test]
fn webhook_retries_until_the_receiver_comes_up() {
    // Reserve a port, then free it so the first attempts are refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = AlertConfig::parse(
        &format!("allow_hosts = [\"127.0.0.1\"]\n[[webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:{port}/hook\"\nformat = \"slack\"\nbackoff = \"100ms\"\nattempts = 20\n[[rule]]\nname = \"all\"\nfilter = \"http\"\n"),
        "t",
    )
    .unwrap();
    let hub = AlertHub::from_config(&cfg).unwrap();
    let c = catalog();
    let mut r = RuleSet::compile(&cfg.rules, &c).unwrap();
    for a in r.on_entries(&[entry(&c, 7, 0, "10.0.0.2", 500)]) {
        hub.raise(a);
    }
    std::thread::sleep(Duration::from_millis(350));
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("port still free");
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let n = s.read(&mut buf).unwrap();
        req.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&req);
        if let Some(i) = text.find("\r\n\r\n") {
            if text[i + 4..].ends_with('}') {
                break;
            }
        }
        if n == 0 {
            break;
        }
    }
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    drop(s);
    let text = String::from_utf8_lossy(&req).to_string();
    assert!(text.starts_with("POST /hook HTTP/1.1"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert!(body["text"].as_str().unwrap().contains("entry 7"), "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while hub.counters().delivered == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let k = hub.counters();
    assert_eq!(k.delivered, 1);
    assert!(k.retried >= 1, "{k:?}");
    assert_eq!(k.dropped, 0);
}
