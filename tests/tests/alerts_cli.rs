//! `remora tap -r CAPTURE --alerts rules.toml` with a webhook receiver on
//! loopback: a per-entry rule fires once per matching entry, a threshold
//! rule once per window, each alert reaches the webhook and the GraphQL
//! `alerts` query. The expected matches come from `remora read --filter`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::path::{Path, PathBuf};

use common::live::{free_port, temp, wait_until, Follower, Tap};
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

/// An example alert plugin as scripts/test.sh builds it: the Rust one with
/// cargo into its own target dir, the Python and JavaScript ones with
/// scripts/build-alert-examples.sh into `<target>/alert-examples/`.
fn example_wasm(example: &str) -> PathBuf {
    let root = common::workspace_root();
    let candidates: Vec<PathBuf> = if example == "rust-secrets" {
        vec![root.join(
            "examples/alerts/rust-secrets/target/wasm32-wasip2/release/remora_alert_secrets.wasm",
        )]
    } else {
        common::target_dirs()
            .into_iter()
            .map(|d| d.join("alert-examples").join(format!("{example}.wasm")))
            .collect()
    };
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{example}: none of {candidates:?} exists; scripts/test.sh builds the examples \
                 (scripts/build-alert-examples.sh and examples/alerts/rust-secrets)"
            )
        })
}

fn fixture(name: &str) -> String {
    common::workspace_root()
        .join("tests/fixtures/alerts")
        .join(name)
        .display()
        .to_string()
}

/// `remora plugin test WASM --capture PCAP --format jsonl`: the alerts.
fn plugin_test(wasm: &Path, pcap: &str) -> Vec<Value> {
    let run = common::remora(
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--capture",
            pcap,
            "--format",
            "jsonl",
        ],
        None,
    );
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stderr.contains(" s inside it), "), "{}", run.stderr);
    common::parse_jsonl(&run.stdout).unwrap()
}

/// The value of `sample` (name and labels) in the tap's `/metrics` now.
fn metric<T: std::str::FromStr>(tap: &Tap, sample: &str) -> Option<T> {
    let m = common::live::curl(&["-s", &format!("{}/metrics", tap.url())]).stdout;
    String::from_utf8_lossy(&m)
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect()
}

/// The Rust example on a capture of real curl requests against a Python
/// server: exactly the two failed secret reads.
#[test]
fn rust_example_raises_exactly_the_failed_secret_reads() {
    let pcap = fixture("secrets.pcap");
    let alerts = plugin_test(&example_wasm("rust-secrets"), &pcap);
    let failed = matching_ids(
        &pcap,
        r#"http && path.matches("/api/v1/namespaces/[^/]+/secrets") && status_code >= 400"#,
    );
    assert_eq!(failed.len(), 2, "fixture: two failed secret reads");
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let got: Vec<(&str, &str, Vec<u64>)> = alerts
        .iter()
        .map(|a| {
            (
                a["severity"].as_str().unwrap_or_default(),
                a["summary"].as_str().unwrap_or_default(),
                ids(&a["entry_ids"]),
            )
        })
        .collect();
    assert_eq!(got[0].0, "critical");
    assert!(
        got[0].1.contains("x/y") && got[0].1.contains("403"),
        "{got:?}"
    );
    assert_eq!(got[1].0, "warning");
    assert!(
        got[1].1.contains("p/q") && got[1].1.contains("500"),
        "{got:?}"
    );
    assert_eq!(vec![got[0].2[0], got[1].2[0]], failed);
}

/// The Python example (componentize-py) loaded by the real host, on reads of
/// 169.254.169.254 recorded through a veth into a namespace: the two
/// meta-data reads, not user-data, not the same path on another address.
#[test]
fn python_example_raises_exactly_the_metadata_reads() {
    let pcap = fixture("metadata.pcap");
    let alerts = plugin_test(&example_wasm("python-metadata"), &pcap);
    let reads = matching_ids(
        &pcap,
        r#"http && dst.ip == "169.254.169.254" && path.startsWith("/latest/meta-data")"#,
    );
    assert_eq!(reads.len(), 2, "fixture: two meta-data reads");
    assert_eq!(
        matching_ids(&pcap, "http").len(),
        4,
        "fixture: four requests"
    );
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    for (a, id) in alerts.iter().zip(&reads) {
        assert_eq!(a["rule"], "cloud-metadata-access", "{a}");
        assert_eq!(a["source"], "cloud-metadata", "{a}");
        assert_eq!(a["severity"], "critical", "{a}");
        assert_eq!(ids(&a["entry_ids"]), vec![*id], "{a}");
    }
    assert!(
        alerts[1]["summary"]
            .as_str()
            .unwrap()
            .contains("/latest/meta-data/iam/security-credentials/node-role"),
        "{alerts:?}"
    );
}

/// The JavaScript example (componentize-js): "orders" answers 2 OK then six
/// 500s, "users" four 500s among ten. One alert, for orders, at its fifth
/// 500 (5 of 7 in the window), carrying those five entries.
#[test]
fn javascript_example_fires_once_for_the_failing_destination() {
    let pcap = fixture("burst.pcap");
    let alerts = plugin_test(&example_wasm("js-5xx-burst"), &pcap);
    let orders_5xx = matching_ids(&pcap, "http && dst.port == 18091 && status_code >= 500");
    let users_5xx = matching_ids(&pcap, "http && dst.port == 18092 && status_code >= 500");
    assert_eq!((orders_5xx.len(), users_5xx.len()), (6, 4), "fixture");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["rule"], "http-5xx-burst", "{a}");
    assert_eq!(a["labels"]["dst"], "127.0.0.1:18091", "{a}");
    assert_eq!(a["labels"]["errors"], "5", "{a}");
    assert_eq!(a["labels"]["responses"], "7", "{a}");
    assert_eq!(ids(&a["entry_ids"]), orders_5xx[..5].to_vec(), "{a}");
}

/// All three example plugins in `remora tap --alerts`: their alerts reach
/// the webhook, and `remora alerts` lists and filters them.
#[test]
fn wasm_alert_plugins_run_in_tap_and_remora_alerts_lists_them() {
    let (hook, got) = receiver();
    let (_t, dir) = temp("alert-plugins-tap");
    let cfg = dir.join("alerts.toml");
    std::fs::write(
        &cfg,
        format!(
            "allow_hosts = [\"127.0.0.1\"]\n\n[[webhook]]\nname = \"test\"\n\
             url = \"http://127.0.0.1:{hook}/hook\"\n\n\
             [[plugin]]\npath = {:?}\n\n[[plugin]]\npath = {:?}\n\n[[plugin]]\npath = {:?}\n",
            example_wasm("rust-secrets").display().to_string(),
            example_wasm("python-metadata").display().to_string(),
            example_wasm("js-5xx-burst").display().to_string(),
        ),
    )
    .unwrap();
    let (secrets, metadata, burst) = (
        fixture("secrets.pcap"),
        fixture("metadata.pcap"),
        fixture("burst.pcap"),
    );
    let tap = Tap::start(
        &[
            "-r",
            &secrets,
            "-r",
            &metadata,
            "-r",
            &burst,
            "--alerts",
            cfg.to_str().unwrap(),
        ],
        free_port(),
        &dir.join("store"),
    );
    assert!(
        wait_until(Duration::from_secs(60), || got.lock().unwrap().len() >= 5),
        "webhook got {:?}; stderr: {}",
        got.lock().unwrap(),
        tap.stderr()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut by_source: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|a| a["source"].as_str().unwrap_or("?").to_owned())
        .collect();
    by_source.sort();
    assert_eq!(
        by_source,
        [
            "cloud-metadata",
            "cloud-metadata",
            "http-5xx-burst",
            "secrets",
            "secrets"
        ],
        "stderr: {}",
        tap.stderr()
    );

    let alerts = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["alerts", "--format", "jsonl", "--server"];
        let url = tap.url();
        args.push(&url);
        args.extend_from_slice(extra);
        let run = common::remora(&args, None);
        assert!(run.ok(), "{}", run.stderr);
        common::parse_jsonl(&run.stdout).unwrap()
    };
    let all = alerts(&[]);
    assert_eq!(all.len(), 5, "{all:?}");
    let listed: Vec<u64> = all.iter().map(|a| a["id"].as_u64().unwrap()).collect();
    assert_eq!(listed, vec![1, 2, 3, 4, 5], "oldest first");
    let newest = alerts(&["-n", "2"]);
    assert_eq!(
        newest
            .iter()
            .map(|a| a["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![4, 5]
    );
    let burst = alerts(&["--rule", "http-5xx-burst"]);
    assert_eq!(burst.len(), 1, "{burst:?}");
    assert_eq!(burst[0]["labels"]["dst"], "127.0.0.1:18091");
    let critical = alerts(&["--min-severity", "critical"]);
    // x/y (403) and both metadata reads; p/q (500) is a warning.
    assert_eq!(critical.len(), 3, "{critical:?}");
    assert!(critical.iter().all(|a| a["severity"] == "critical"));

    // Per-plugin counters in /metrics: the secrets prefilter let exactly the
    // two failed reads through; nothing faulted.
    let metrics = String::from_utf8_lossy(
        &common::live::curl(&["-s", &format!("{}/metrics", tap.url())]).stdout,
    )
    .into_owned();
    let sample = |line: &str| -> Option<u64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
    };
    assert_eq!(
        sample(r#"remora_alert_plugin_entries_total{plugin="secrets",outcome="sent"}"#),
        Some(2),
        "{metrics}"
    );
    let seen = sample(r#"remora_alert_plugin_entries_total{plugin="secrets",outcome="seen"}"#);
    assert!(
        seen.is_some_and(|n| n >= 27),
        "every entry is offered: {metrics}"
    );
    for plugin in ["secrets", "cloud-metadata", "http-5xx-burst"] {
        let faults: u64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with("remora_alert_plugin_faults_total")
                    && l.contains(&format!("plugin=\"{plugin}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(faults, 0, "{plugin}: {metrics}");
    }
    tap.proc.signal("TERM");
}

/// `remora alerts --follow` against a live tap: an alert raised after the
/// follower printed the first one can only have come through the
/// subscription.
#[test]
fn alerts_follow_prints_new_alerts_as_they_are_raised() {
    let (_t, dir) = temp("alerts-follow");
    let port = free_port();
    let _nginx = common::live::nginx(&dir.join("nginx"), port);
    let cfg = dir.join("alerts.toml");
    std::fs::write(
        &cfg,
        "[[rule]]\nname = \"server-error\"\nfilter = \"http && status_code >= 500\"\nseverity = \"critical\"\n",
    )
    .unwrap();
    let bpf = format!("tcp port {port}");
    let tap = Tap::start(
        &["-i", "lo", "--bpf", &bpf, "--alerts", cfg.to_str().unwrap()],
        free_port(),
        &dir.join("store"),
    );
    let url = tap.url();
    let follower = Follower::spawn(&["alerts", "--follow", "--format", "jsonl", "--server", &url]);
    let page = format!("http://127.0.0.1:{port}/fail");
    let printed = |n: usize| follower.lines.lock().unwrap().len() >= n;
    common::live::curl(&["-s", "-o", "/dev/null", &page]);
    assert!(
        wait_until(Duration::from_secs(15), || printed(1)),
        "no first alert; tap: {}",
        tap.stderr()
    );
    common::live::curl(&["-s", "-o", "/dev/null", &page]);
    assert!(
        wait_until(Duration::from_secs(15), || printed(2)),
        "the second alert did not arrive through the subscription"
    );
    let lines = follower.lines.lock().unwrap();
    let got: Vec<(u64, &str)> = lines
        .iter()
        .map(|(_, a)| (a["id"].as_u64().unwrap(), a["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(got, vec![(1, "server-error"), (2, "server-error")]);
    tap.proc.signal("TERM");
}

/// `rate_limit` on an alert plugin: the Python example raises two alerts on
/// metadata.pcap (seconds apart); with `rate_limit = "1h"` one goes out and
/// the other is withheld and counted. A bad duration names the plugin.
#[test]
fn plugin_alerts_obey_the_rate_limit_of_their_config() {
    let (hook, got) = receiver();
    let (_t, dir) = temp("alert-plugin-limit");
    let wasm = example_wasm("python-metadata").display().to_string();
    let cfg = dir.join("alerts.toml");
    let write = |rate_limit: &str| {
        std::fs::write(
            &cfg,
            format!(
                "allow_hosts = [\"127.0.0.1\"]\n[[webhook]]\nname = \"t\"\n\
                 url = \"http://127.0.0.1:{hook}/hook\"\n\
                 [[plugin]]\npath = {wasm:?}\nrate_limit = \"{rate_limit}\"\n"
            ),
        )
        .unwrap()
    };

    write("soon");
    let bad = common::remora(
        &[
            "tap",
            "-r",
            &fixture("metadata.pcap"),
            "--alerts",
            cfg.to_str().unwrap(),
        ],
        None,
    );
    assert!(!bad.ok());
    assert!(
        bad.stderr.contains(&wasm) && bad.stderr.contains("\"soon\""),
        "{}",
        bad.stderr
    );

    write("1h");
    let tap = Tap::start(
        &[
            "-r",
            &fixture("metadata.pcap"),
            "--alerts",
            cfg.to_str().unwrap(),
        ],
        free_port(),
        &dir.join("store"),
    );
    let withheld = || {
        metric::<u64>(
            &tap,
            r#"remora_alert_plugin_alerts_withheld_total{plugin="cloud-metadata"}"#,
        )
    };
    assert!(
        wait_until(Duration::from_secs(60), || withheld() == Some(1)),
        "withheld: {:?}; stderr: {}",
        withheld(),
        tap.stderr()
    );
    // The plugin ran (it raised an alert), so time was spent inside it.
    let busy = metric::<f64>(
        &tap,
        r#"remora_alert_plugin_call_seconds_total{plugin="cloud-metadata"}"#,
    );
    assert!(busy.is_some_and(|s| s > 0.0), "call seconds: {busy:?}");
    // A small capture does not grow the plugin to its renewal mark.
    let renewed = metric::<u64>(
        &tap,
        r#"remora_alert_plugin_renewals_total{plugin="cloud-metadata"}"#,
    );
    assert_eq!(renewed, Some(0), "renewals");
    std::thread::sleep(Duration::from_millis(1000));
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]["summary"]
            .as_str()
            .unwrap()
            .contains("/latest/meta-data/"),
        "the first read goes out: {got:?}"
    );
    tap.proc.signal("TERM");
}
