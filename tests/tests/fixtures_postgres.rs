//! tests/fixtures/postgres/postgres.pcap (recorded by
//! tests/fixtures/postgres/record.sh: PostgreSQL 15 on the non-standard port
//! 15432; psql simple queries, psycopg 3 extended protocol with prepared
//! statements, pgbench -M prepared/extended, SQL errors, failed logins)
//! against its tshark truth.
//!
//! Key per unit (startup / simple query / extended batch up to Sync): (client
//! port, kind, query as ASCII, tags, DataRow count, error message), the same
//! fields as tests/postgres_truth.rs. Current agreement: 59/59, exact.

mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use std::sync::OnceLock;

use common::src_port;
use proto_fixture::*;
use serde_json::Value;

type Key = (
    i64,
    Option<String>,
    Option<String>,
    Vec<String>,
    i64,
    Option<String>,
);

fn fixture() -> &'static ProtoFixture {
    static F: OnceLock<ProtoFixture> = OnceLock::new();
    F.get_or_init(|| load("postgres", "postgres", "PostgreSQL"))
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
    (
        src_port(e).unwrap_or(-1),
        field_str(e, "request", "pg_kind"),
        field_str(e, "request", "sql_query").map(|q| ascii(&q)),
        strs(field(e, "response", "sql_tags")),
        field(e, "response", "sql_rows")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        field_str(e, "response", "sql_error"),
    )
}

fn truth_key(t: &Value) -> Key {
    let client_port = truth_str(t, "client")
        .and_then(|c| c.rsplit(':').next().and_then(|p| p.parse().ok()))
        .unwrap_or(-1);
    (
        client_port,
        truth_str(t, "kind"),
        // remora truncates sql_query to 1024 bytes
        truth_str(t, "query").map(|q| ascii(&q).chars().take(1024).collect()),
        strs(t.get("tags")),
        t.get("rows").and_then(Value::as_i64).unwrap_or(0),
        t.get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    )
}

#[test]
fn units_agree_with_truth() {
    let f = fixture();
    assert_eq!(
        f.entries.len(),
        f.truth.len(),
        "{}: PostgreSQL entry count (stderr: {})",
        f.capture.display(),
        f.run.stderr
    );
    let a = compare(
        f.entries.iter().map(entry_key),
        f.truth.iter().map(truth_key),
    );
    a.assert_min("postgres (conn, kind, query, tags, rows, error)");
    assert!(a.diff.is_empty(), "postgres: differing keys: {:#?}", a.diff);
}

/// Issue 3: PostgreSQL on 15432 (not 5432) is recognised by content.
#[test]
fn recognised_on_non_standard_port() {
    let f = fixture();
    assert!(
        !f.entries.is_empty() && f.entries.iter().all(|e| server_port(e) == Some(15432)),
        "every PostgreSQL entry should be on server port 15432"
    );
}

fn errors(f: &ProtoFixture) -> Vec<(String, String, String)> {
    f.entries
        .iter()
        .filter_map(|e| {
            Some((
                field_str(e, "request", "pg_kind")?,
                field_str(e, "response", "sql_error_code")?,
                field_str(e, "response", "sql_error")?,
            ))
        })
        .collect()
}

/// SQL errors over both protocols and the failed logins, with their SQLSTATE.
#[test]
fn errors_carry_sqlstate() {
    let f = fixture();
    let seen = errors(f);
    for (kind, code, text) in [
        (
            "simple",
            "42P01",
            "relation \"no_such_table\" does not exist",
        ),
        ("simple", "42601", "syntax error at or near \"selec\""),
        ("simple", "22012", "division by zero"),
        ("simple", "23502", "null value in column \"name\""),
        (
            "startup",
            "28P01",
            "password authentication failed for user \"app\"",
        ),
        ("startup", "3D000", "database \"nodb\" does not exist"),
        ("extended", "23505", "duplicate key value"),
        ("extended", "22P02", "invalid input syntax for type integer"),
    ] {
        assert!(
            seen.iter()
                .any(|(k, c, t)| k == kind && c == code && t.starts_with(text)),
            "no {kind} entry with error {code} `{text}...`; errors: {seen:#?}"
        );
    }
}

/// psycopg's parameterised queries and pgbench's statements are extended
/// protocol batches carrying the statement text with $n placeholders (pgbench
/// keeps the script's trailing `;`). pgbench runs 5 (-M prepared) + 3
/// (-M extended) transactions of one select and one update each; -M prepared
/// first sends each statement's Parse alone (Parse, Sync), one more unit each.
#[test]
fn extended_protocol_batches() {
    let f = fixture();
    let queries: Vec<String> = f
        .entries
        .iter()
        .filter(|e| field_str(e, "request", "pg_kind").as_deref() == Some("extended"))
        .filter_map(|e| field_str(e, "request", "sql_query"))
        .map(|q| q.trim().trim_end_matches(';').to_owned())
        .collect();
    let count = |q: &str| queries.iter().filter(|x| *x == q).count();
    assert_eq!(
        count("select name, price from items where id = $1"),
        1 + 5 + 3,
        "{queries:#?}"
    );
    assert_eq!(
        count("update items set price = price + 1 where id = $1"),
        1 + 5 + 3,
        "{queries:#?}"
    );
    assert!(
        count("select name from items where id = $1") >= 4,
        "{queries:#?}"
    );
    assert_eq!(
        count("insert into items (id, name, price) values ($1, $2, $3)"),
        1,
        "executemany pipelines its 3 inserts into one batch up to Sync: {queries:#?}"
    );
}
