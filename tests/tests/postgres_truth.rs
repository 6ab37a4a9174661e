//! Every shared capture whose tshark truth has `postgres` records: remora's
//! PostgreSQL entries must match the truth unit for unit.
//!
//! Truth units (startup, simple query, extended batch up to Sync, each with
//! the server messages up to ReadyForQuery) are what remora emits as one
//! entry each, so counts agree exactly. Entries and truth records are matched
//! per connection (client port) in order, and compared on the key fields:
//! `kind` (`pg_kind`), `query` (`sql_query`, compared as ASCII: tshark
//! replaces non-ASCII bytes with U+FFFD, remora with one U+FFFD per invalid
//! UTF-8 sequence, so both sides drop non-ASCII characters), `tags`
//! (`sql_tags`), `rows` (`sql_rows`: the unit's DataRow count, which is what
//! the truth counts too — not the CommandComplete row count, e.g. truth has
//! `INSERT 0 100000` with rows 0) and the `error` message (`sql_error`).
//! Current agreement: 122/122 (generated) and 8/8 (public), exact.

mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use std::collections::BTreeMap;

use common::*;
use proto_fixture::load_shared;
use serde_json::Value;

/// (kind, query, tags, rows, error message).
type Key = (
    Option<String>,
    Option<String>,
    Vec<String>,
    i64,
    Option<String>,
);

fn field<'a>(e: &'a Value, half: &str, name: &str) -> Option<&'a Value> {
    e.get(half)?.get("fields")?.get(name)
}

fn ascii(s: &str) -> String {
    s.chars().filter(char::is_ascii).collect()
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn entry_key(e: &Value) -> Key {
    let s = |half, name| {
        field(e, half, name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    (
        s("request", "pg_kind"),
        s("request", "sql_query").map(|q| ascii(&q)),
        strs(field(e, "response", "sql_tags")),
        field(e, "response", "sql_rows")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        s("response", "sql_error"),
    )
}

fn truth_key(t: &Value) -> Key {
    let s = |name| t.get(name).and_then(Value::as_str).map(str::to_owned);
    (
        s("kind"),
        // remora truncates sql_query to 1024 bytes
        s("query").map(|q| ascii(&q).chars().take(1024).collect()),
        strs(t.get("tags")),
        t.get("rows").and_then(Value::as_i64).unwrap_or(0),
        t.get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    )
}

fn client_port_of(addr: &str) -> i64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(-1)
}

fn check(capture: &str, truth: &str) {
    let f = load_shared(capture, truth, "postgres", "PostgreSQL");
    let (pg, expected, run) = (&f.entries, &f.truth, &f.run);
    assert_eq!(
        pg.len(),
        expected.len(),
        "{capture}: entry count (stderr: {})",
        run.stderr
    );

    // Per connection, in order.
    let mut got: BTreeMap<i64, Vec<Key>> = BTreeMap::new();
    for e in pg {
        assert!(
            e.get("request").is_some_and(|r| !r.is_null())
                && e.get("response").is_some_and(|r| !r.is_null()),
            "{capture}: incomplete entry: {e}"
        );
        let port = src_port(e).unwrap_or(-1);
        got.entry(port).or_default().push(entry_key(e));
    }
    let mut want: BTreeMap<i64, Vec<Key>> = BTreeMap::new();
    for t in expected {
        let port = client_port_of(t.get("client").and_then(Value::as_str).unwrap_or(""));
        want.entry(port).or_default().push(truth_key(t));
    }
    let mut agree = 0usize;
    let mut bad = Vec::new();
    for (port, w) in &want {
        let g = got.get(port).cloned().unwrap_or_default();
        assert_eq!(g.len(), w.len(), "{capture}: units on client port {port}");
        for (a, b) in g.iter().zip(w) {
            if a == b {
                agree += 1;
            } else {
                bad.push((port, a.clone(), b.clone()));
            }
        }
    }
    eprintln!("{capture}: {agree}/{} units agree", expected.len());
    // Target ≥ 99%; currently every unit agrees exactly, so require that.
    assert!(
        bad.is_empty(),
        "{capture}: {agree}/{} agree; differing (port, remora, truth): {bad:#?}",
        expected.len()
    );

    // Startup units carry user and database.
    let mut gu: Vec<(String, String)> = pg
        .iter()
        .filter(|e| field(e, "request", "pg_kind").and_then(Value::as_str) == Some("startup"))
        .map(|e| {
            let s = |n| {
                field(e, "request", n)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            (s("pg_user"), s("pg_database"))
        })
        .collect();
    let mut wu: Vec<(String, String)> = expected
        .iter()
        .filter(|t| t.get("kind").and_then(Value::as_str) == Some("startup"))
        .map(|t| {
            let s = |n| t.get(n).and_then(Value::as_str).unwrap_or("").to_owned();
            (s("user"), s("database"))
        })
        .collect();
    gu.sort();
    wu.sort();
    assert_eq!(gu, wu, "{capture}: startup user/database");
}

#[test]
fn generated_postgres() {
    check("generated/postgres.pcap", "generated-postgres.jsonl");
}

#[test]
fn public_zeek_psql() {
    check(
        "public/postgres-zeek-psql.pcap",
        "public-postgres-zeek-psql.jsonl",
    );
}

/// Guard: every shared truth file with postgres records is covered above.
#[test]
fn all_shared_postgres_truth_is_covered() {
    assert_truth_covered(
        "postgres",
        &[
            "generated-postgres.jsonl",
            "public-postgres-zeek-psql.jsonl",
        ],
    );
}
