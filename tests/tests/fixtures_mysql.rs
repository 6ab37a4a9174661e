//! tests/fixtures/mysql/mysql.pcap (recorded by tests/fixtures/mysql/record.sh:
//! MariaDB 10.11 on 13306; the mariadb CLI over the text protocol, Perl
//! DBD::MariaDB with server-side prepared statements over the binary
//! protocol, SQL errors, failed logins) against its tshark truth.
//!
//! Key per command: (client port, command without `COM_`, query as ASCII,
//! response kind, error code), as in tests/mysql_truth.rs.
//! Every command must agree (54/54), including DBD::MariaDB's prepared
//! statement executes under MariaDB's metadata caching
//! (MARIADB_CLIENT_CACHE_METADATA): a result set whose column count packet
//! says "metadata follows" 0 and sends no column definitions (frames 178 and
//! 180).

mod common;
#[path = "common/proto_fixture.rs"]
mod proto_fixture;

use std::sync::OnceLock;

use common::src_port;
use proto_fixture::*;
use serde_json::Value;

type Key = (i64, String, Option<String>, Option<String>, Option<i64>);

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
fn commands_agree_with_truth() {
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
    assert!(
        a.diff.is_empty(),
        "mysql: differences (key, remora, truth): {:#?}",
        a.diff
    );
    assert_eq!(
        a.agree, a.truth_total,
        "mysql: commands agreeing with truth"
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
