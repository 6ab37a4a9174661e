//! `remora tap -r CAPTURE --alerts rules.toml` with a webhook receiver on
//! loopback: a per-entry rule fires once per matching entry, a threshold
//! rule once per window, each alert reaches the webhook and the GraphQL
//! `alerts` query. The expected matches come from `remora read --filter`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::live::{free_port, temp, wait_until, Tap};
use serde_json::Value;

/// Accepts POSTs, answers 200, keeps each JSON body.
fn receiver() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            let mut r = BufReader::new(s);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    sink.lock().unwrap().push(v);
                }
            }
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (port, got)
}

fn matching_ids(capture: &str, filter: &str) -> Vec<u64> {
    let out = std::process::Command::new(common::remora_bin())
        .args(["read", capture, "--format", "jsonl", "--filter", filter])
        .output()
        .expect("run remora read");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn rule_alerts_reach_the_webhook_and_the_api() {
    let capture = common::workspace_root().join("tests/fixtures/captures/http1-nginx.pcap");
    let capture = capture.to_str().unwrap();
    let errors = matching_ids(capture, "http && status_code >= 500");
    let client_errors = matching_ids(capture, "http && status_code >= 400");
    assert!(
        !errors.is_empty() && client_errors.len() > 1,
        "fixture lacks 4xx/5xx"
    );

    let (hook, got) = receiver();
    let (_t, dir) = temp("alerts-e2e");
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"allow_hosts = ["127.0.0.1"]

[[webhook]]
name = "test"
url = "http://127.0.0.1:{hook}/hook"

[[rule]]
name = "server-error"
filter = "http && status_code >= 500"
severity = "critical"

[[rule]]
name = "error-burst"
filter = "http && status_code >= 400"
threshold = "count > 1 within 1h"
"#
        ),
    )
    .unwrap();
    let tap = Tap::start(
        &["-r", capture, "--alerts", rules.to_str().unwrap()],
        free_port(),
        &dir.join("store"),
    );
    let want = errors.len() + 1;
    assert!(
        wait_until(Duration::from_secs(30), || got.lock().unwrap().len()
            >= want),
        "webhook got {:?}; stderr: {}",
        got.lock().unwrap(),
        tap.stderr()
    );
    // Anything extra would arrive by now.
    std::thread::sleep(Duration::from_millis(1500));
    let got = got.lock().unwrap().clone();
    let of = |rule: &str| -> Vec<&Value> { got.iter().filter(|a| a["rule"] == rule).collect() };
    let per_entry: Vec<u64> = of("server-error")
        .iter()
        .map(|a| a["entry_ids"][0].as_u64().unwrap())
        .collect();
    assert_eq!(per_entry, errors, "{got:?}");
    let burst = of("error-burst");
    assert_eq!(burst.len(), 1, "{got:?}");
    let ids: Vec<u64> = burst[0]["entry_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids, client_errors[..2].to_vec());
    assert_eq!(got.len(), want);

    let api = tap.graphql("{ alerts(limit: 100) { id rule severity entryIds } }");
    let listed = api["data"]["alerts"]
        .as_array()
        .unwrap_or_else(|| panic!("{api}"));
    assert_eq!(listed.len(), want, "{api}");
    assert_eq!(listed[0]["id"], "1");
    tap.proc.signal("TERM");
}

/// `remora plugin test` with the Rust example alert plugin (built from
/// source by scripts/test.sh) on a capture of real curl requests against a
/// Python server: exactly the two failed secret reads.
#[test]
fn plugin_test_raises_exactly_the_failed_secret_reads() {
    let root = common::workspace_root();
    let wasm = root.join(
        "examples/alerts/rust-secrets/target/wasm32-wasip2/release/remora_alert_secrets.wasm",
    );
    assert!(
        wasm.is_file(),
        "{} missing: scripts/test.sh builds it (cargo build --manifest-path examples/alerts/rust-secrets/Cargo.toml --target wasm32-wasip2 --release)",
        wasm.display()
    );
    let pcap = root.join("tests/fixtures/alerts/secrets.pcap");
    let run = common::remora(
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--capture",
            pcap.to_str().unwrap(),
            "--format",
            "jsonl",
        ],
        None,
    );
    assert!(run.ok(), "{}", run.stderr);
    let alerts = common::parse_jsonl(&run.stdout).unwrap();
    assert_eq!(alerts.len(), 2, "{}", run.stdout);
    let summary: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["severity"].as_str().unwrap_or_default().to_owned(),
                a["summary"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(summary[0].0, "critical");
    assert!(
        summary[0].1.contains("x/y") && summary[0].1.contains("403"),
        "{summary:?}"
    );
    assert_eq!(summary[1].0, "warning");
    assert!(
        summary[1].1.contains("p/q") && summary[1].1.contains("500"),
        "{summary:?}"
    );
}
