//! Every shared capture whose tshark truth has `mysql` records: remora's MySQL
//! entries must match the truth: same entry count, and per connection, in
//! order, the same (command, query, response kind, error code) — plus the
//! login user and database, the error message and the affected rows of an
//! OK, which agree exactly too.
//!
//! Mapping: truth `command` is the command name without the `COM_` prefix
//! ("QUERY", "STMT_EXECUTE", "LOGIN"); remora has `mysql_command`
//! ("COM_QUERY", ..., "LOGIN"). Truth `response` "eof_or_auth_switch" (the EOF
//! that ends a COM_FIELD_LIST) is remora's "eof". Truth `query` of the
//! COM_STMT_* commands is the prepared text, as remora's `sql_query`. tshark
//! replaces non-ASCII bytes in SQL text with U+FFFD, so queries compare as
//! their ASCII characters. Commands without a reply (COM_QUIT, COM_STMT_CLOSE)
//! have a null truth response and are request-only entries in remora.
//! Current agreement: 58/58 (generated) and 18/18 (public, Zeek), exact; no
//! disagreement to explain.

mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use std::collections::BTreeMap;

use common::*;
use proto_fixture::{ascii, field, load_shared};
use serde_json::Value;

/// (command, query, response kind, error code): one transaction.
type Key = (String, Option<String>, Option<String>, Option<i64>);
/// (user, database, error message, affected rows): details checked in order.
type Detail = (Option<String>, Option<String>, Option<String>, Option<i64>);

fn entry_key(e: &Value) -> Key {
    let s = |half, name| {
        field(e, half, name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let command = s("request", "mysql_command").unwrap_or_default();
    (
        command.strip_prefix("COM_").unwrap_or(&command).to_owned(),
        s("request", "sql_query").map(|q| ascii(&q)),
        s("response", "mysql_response"),
        field(e, "response", "sql_error_code").and_then(Value::as_i64),
    )
}

fn truth_key(t: &Value) -> Key {
    let s = |name| t.get(name).and_then(Value::as_str).map(str::to_owned);
    let response = s("response").map(|r| {
        if r == "eof_or_auth_switch" {
            "eof".to_owned()
        } else {
            r
        }
    });
    (
        s("command").unwrap_or_default(),
        s("query").map(|q| ascii(&q)),
        response,
        t.get("error_code").and_then(Value::as_i64),
    )
}

fn entry_detail(e: &Value) -> Detail {
    let s = |half, name| {
        field(e, half, name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let login = s("request", "mysql_command").as_deref() == Some("LOGIN");
    let ok = s("response", "mysql_response").as_deref() == Some("ok")
        && s("request", "mysql_command").as_deref() != Some("COM_STMT_PREPARE");
    (
        s("request", "mysql_user"),
        if login {
            s("request", "mysql_database")
        } else {
            None
        },
        s("response", "sql_error"),
        if ok {
            field(e, "response", "sql_rows").and_then(Value::as_i64)
        } else {
            None
        },
    )
}

fn truth_detail(t: &Value) -> Detail {
    let s = |name| t.get(name).and_then(Value::as_str).map(str::to_owned);
    let login = s("command").as_deref() == Some("LOGIN");
    let ok = s("response").as_deref() == Some("ok");
    (
        s("user"),
        if login { s("schema") } else { None },
        s("error_message"),
        // No affected rows for a COM_STMT_PREPARE OK (its own layout).
        if ok {
            t.get("affected_rows").and_then(Value::as_i64)
        } else {
            None
        },
    )
}

fn client_port_of_truth(t: &Value) -> i64 {
    t.get("client")
        .and_then(Value::as_str)
        .and_then(|c| c.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(-1)
}

fn check(capture: &str, truth: &str) {
    let f = load_shared(capture, truth, "mysql", "MySQL");
    let (expected, run) = (&f.truth, &f.run);
    let mut mysql: Vec<&Value> = f.entries.iter().collect();
    assert_eq!(
        mysql.len(),
        expected.len(),
        "{capture}: entry count (stderr: {})",
        run.stderr
    );
    mysql.sort_by_key(|e| order_key(e));

    // Per connection, in order.
    let mut want: BTreeMap<i64, Vec<(Key, Detail)>> = BTreeMap::new();
    for t in expected {
        want.entry(client_port_of_truth(t))
            .or_default()
            .push((truth_key(t), truth_detail(t)));
    }
    let mut got: BTreeMap<i64, Vec<(Key, Detail)>> = BTreeMap::new();
    for e in &mysql {
        got.entry(src_port(e).unwrap_or(-1))
            .or_default()
            .push((entry_key(e), entry_detail(e)));
    }
    let mut total = 0usize;
    let mut agree = 0usize;
    let mut agree_detail = 0usize;
    let mut report = String::new();
    for (port, w) in &want {
        let g = got.get(port).cloned().unwrap_or_default();
        for i in 0..w.len().max(g.len()) {
            total += 1;
            let (wk, gk) = (w.get(i), g.get(i));
            if wk.map(|x| &x.0) == gk.map(|x| &x.0) {
                agree += 1;
            } else {
                report.push_str(&format!(
                    "  port {port} #{i}: want {:?} got {:?}\n",
                    wk.map(|x| &x.0),
                    gk.map(|x| &x.0)
                ));
            }
            if wk == gk {
                agree_detail += 1;
            } else if wk.map(|x| &x.0) == gk.map(|x| &x.0) {
                report.push_str(&format!(
                    "  port {port} #{i} details: want {:?} got {:?}\n",
                    wk.map(|x| &x.1),
                    gk.map(|x| &x.1)
                ));
            }
        }
    }
    assert!(
        got.keys().all(|p| want.contains_key(p)),
        "{capture}: entries on connections without truth: {:?}",
        got.keys().collect::<Vec<_>>()
    );
    eprintln!("{capture}: {agree}/{total} agree on (command, query, response, error code), {agree_detail}/{total} on details too");
    assert_eq!(agree, total, "{capture}: disagreements:\n{report}");
    assert_eq!(agree_detail, total, "{capture}: disagreements:\n{report}");

    // Entries with a response are complete; no-reply commands are request-only.
    for e in &mysql {
        assert!(has_request(e), "{capture}: entry without a request: {e}");
        let cmd = field(e, "request", "mysql_command").and_then(Value::as_str);
        let no_reply = matches!(cmd, Some("COM_QUIT" | "COM_STMT_CLOSE"));
        assert_eq!(has_response(e), !no_reply, "{capture}: {e}");
    }
}

#[test]
fn generated_mysql() {
    check("generated/mysql.pcap", "generated-mysql.jsonl");
}

#[test]
fn public_zeek() {
    check("public/mysql-zeek.pcap", "public-mysql-zeek.jsonl");
}

/// Guard: every shared truth file with mysql records is covered above.
#[test]
fn all_shared_mysql_truth_is_covered() {
    assert_truth_covered(
        "mysql",
        &["generated-mysql.jsonl", "public-mysql-zeek.jsonl"],
    );
}
