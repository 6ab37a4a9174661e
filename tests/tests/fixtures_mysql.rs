//! tests/fixtures/mysql/mysql.pcap (recorded by tests/fixtures/mysql/record.sh:
//! MariaDB 10.11 on 13306; the mariadb CLI over the text protocol, Perl
//! DBD::MariaDB with server-side prepared statements over the binary
//! protocol, SQL errors, failed logins) against its tshark truth.
//!
//! Key per command: (client port, command without `COM_`, query as ASCII,
//! response kind, error code), as in tests/mysql_truth.rs.
//! Current agreement: 53/54. The one disagreement is a plugin bug, listed in
//! KNOWN_PLUGIN_BUGS below and reported to the lead: MariaDB's metadata
//! caching (MARIADB_CLIENT_CACHE_METADATA, negotiated by Connector/C) sends a
//! COM_STMT_EXECUTE result set as a column count packet whose second byte
//! (metadata_follows) is 0 and no column definitions. The plugin reads the
//! next packets as column definitions, so the first execute's result set
//! (frames 177/178, 1 row) ends only at the next response (frame 180), and
//! the second execute (frames 179/180, a 3-row result set) is reported as
//! `ok`. That is 53/54 = 98.1%, below the 0.99 target: the test allows exactly
//! this difference and fails once the plugin is fixed, so the entry is removed.

mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use std::sync::OnceLock;

use common::src_port;
use proto_fixture::*;
use serde_json::Value;

type Key = (i64, String, Option<String>, Option<String>, Option<i64>);

/// (command, query, remora's response kind, truth's response kind, count).
const KNOWN_PLUGIN_BUGS: [(&str, &str, &str, &str, usize); 1] = [(
    "STMT_EXECUTE",
    "select id, name, price from items where id <= ?",
    "ok",
    "resultset",
    1,
)];

fn fixture() -> &'static ProtoFixture {
    static F: OnceLock<ProtoFixture> = OnceLock::new();
    F.get_or_init(|| load("mysql", "mysql", "MySQL"))
}

fn entry_key(e: &Value) -> Key {
    let command = field_str(e, "request", "mysql_command").unwrap_or_default();
    (
        src_port(e).unwrap_or(-1),
        command.strip_prefix("COM_").unwrap_or(&command).to_owned(),
        field_str(e, "request", "sql_query").map(|q| ascii(&q)),
        field_str(e, "response", "mysql_response"),
        field(e, "response", "sql_error_code").and_then(Value::as_i64),
    )
}

fn truth_key(t: &Value) -> Key {
    let response = truth_str(t, "response").map(|r| {
        // the EOF ending a COM_FIELD_LIST is remora's "eof"
        if r == "eof_or_auth_switch" {
            "eof".to_owned()
        } else {
            r
        }
    });
    let client_port = truth_str(t, "client")
        .and_then(|c| c.rsplit(':').next().and_then(|p| p.parse().ok()))
        .unwrap_or(-1);
    (
        client_port,
        truth_str(t, "command").unwrap_or_default(),
        truth_str(t, "query").map(|q| ascii(&q)),
        response,
        t.get("error_code").and_then(Value::as_i64),
    )
}

#[test]
fn commands_agree_with_truth_except_known_plugin_bugs() {
    let f = fixture();
    assert_eq!(
        f.entries.len(),
        f.truth.len(),
        "{}: MySQL entry count (stderr: {})",
        f.capture.display(),
        f.run.stderr
    );
    let a = compare(
        f.entries.iter().map(entry_key),
        f.truth.iter().map(truth_key),
    );
    eprintln!(
        "mysql (conn, command, query, response, error code): {}/{} agree",
        a.agree, a.truth_total
    );
    // Every differing key must be one side of a known bug, with its count.
    let mut unexplained = Vec::new();
    for (k, remora_n, truth_n) in &a.diff {
        let known = KNOWN_PLUGIN_BUGS.iter().any(|(cmd, q, got, want, n)| {
            k.1 == *cmd
                && k.2.as_deref() == Some(*q)
                && ((k.3.as_deref() == Some(*got) && remora_n - truth_n == *n)
                    || (k.3.as_deref() == Some(*want) && truth_n - remora_n == *n))
        });
        if !known {
            unexplained.push((k, remora_n, truth_n));
        }
    }
    assert!(
        unexplained.is_empty(),
        "mysql: unexplained differences (key, remora, truth): {unexplained:#?}"
    );
    let known_units: usize = KNOWN_PLUGIN_BUGS.iter().map(|b| b.4).sum();
    assert_eq!(
        a.agree + known_units,
        a.truth_total,
        "mysql: a known plugin bug no longer shows; remove it from KNOWN_PLUGIN_BUGS"
    );
}

fn errors(f: &ProtoFixture) -> Vec<(String, i64, String)> {
    f.entries
        .iter()
        .filter_map(|e| {
            Some((
                field_str(e, "request", "mysql_command")?,
                field(e, "response", "sql_error_code")?.as_i64()?,
                field_str(e, "response", "sql_error")?,
            ))
        })
        .collect()
}

#[test]
fn errors_carry_codes_and_messages() {
    let f = fixture();
    let seen = errors(f);
    for (cmd, code, text) in [
        ("COM_QUERY", 1064, "You have an error in your SQL syntax"),
        (
            "COM_QUERY",
            1146,
            "Table 'shop.no_such_table' doesn't exist",
        ),
        ("COM_QUERY", 1062, "Duplicate entry '1'"),
        ("COM_QUERY", 1048, "Column 'name' cannot be null"),
        (
            "LOGIN",
            1045,
            "Access denied for user 'app'@'127.0.0.1' (using password: YES)",
        ),
        (
            "LOGIN",
            1044,
            "Access denied for user 'app'@'127.0.0.1' to database 'nodb'",
        ),
        ("COM_STMT_EXECUTE", 1062, "Duplicate entry '11'"),
        ("COM_STMT_PREPARE", 1054, "Unknown column 'nope'"),
    ] {
        assert!(
            seen.iter()
                .any(|(c, n, t)| c == cmd && *n == code && t.starts_with(text)),
            "no {cmd} entry with error {code} `{text}...`; errors: {seen:#?}"
        );
    }
}

/// The binary protocol: prepares, executes and closes carry the prepared text.
#[test]
fn prepared_statements_carry_their_text() {
    let f = fixture();
    let count = |cmd: &str, q: &str| {
        f.entries
            .iter()
            .filter(|e| {
                field_str(e, "request", "mysql_command").as_deref() == Some(cmd)
                    && field_str(e, "request", "sql_query").as_deref() == Some(q)
            })
            .count()
    };
    let ins = "insert into items (id, name, price) values (?, ?, ?)";
    assert_eq!(count("COM_STMT_PREPARE", ins), 1);
    assert_eq!(count("COM_STMT_EXECUTE", ins), 4, "3 inserts + 1 duplicate");
    assert_eq!(
        count(
            "COM_STMT_EXECUTE",
            "update items set price = ? where id = ?"
        ),
        1
    );
}
