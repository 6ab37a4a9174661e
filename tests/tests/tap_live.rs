//! `remora tap` on loopback while real clients talk to real servers (curl →
//! nginx, redis-cli → redis-server): entries reach a subscription within 1 s
//! of each response, the GraphQL API and `remora query` return them, the
//! store survives `kill -9` and stays under its size limit, and the API
//! refuses to run unauthenticated off loopback.
//!
//! Needs root (or CAP_NET_RAW) for live capture, nginx, redis-server,
//! redis-cli, curl and wrk: scripts/test.sh installs them.

mod common;

use std::time::{Duration, Instant};

use common::live::{curl, free_port, nginx, redis, redis_cli, temp, wait_until, Follower, Tap};
use serde_json::Value;

fn path_of(e: &Value) -> Option<&str> {
    e["vars"]["path"].as_str()
}

fn redis_type(e: &Value) -> Option<&str> {
    e["vars"]["redis_type"].as_str()
}

#[test]
fn live_entries_reach_subscription_api_and_query() {
    let (_t, dir) = temp("tap-live");
    let (ngx_port, redis_port, api) = (free_port(), free_port(), free_port());
    let _nginx = nginx(&dir.join("nginx"), ngx_port);
    let _redis = redis(redis_port);
    let bpf = format!("tcp port {ngx_port} or tcp port {redis_port}");
    let mut tap = Tap::start(
        &["-i", "lo", "--bpf", &bpf, "-j", "2"],
        api,
        &dir.join("data"),
    );
    let base = format!("http://127.0.0.1:{ngx_port}");

    // The subscription is open before the measured traffic: warm up until
    // an entry comes through it.
    let follow = Follower::start(&tap.url(), "http || redis");
    let warm = wait_until(Duration::from_secs(20), || {
        curl(&["-s", "-o", "/dev/null", &format!("{base}/warmup")]);
        follow.arrival(|e| path_of(e) == Some("/warmup")).is_some()
    });
    assert!(
        warm,
        "no entry reached `remora query --follow`; tap said:\n{}",
        tap.stderr()
    );

    let mut done: Vec<(String, Instant)> = Vec::new();
    for p in ["/", "/missing", "/fail"] {
        assert!(!http_code(&format!("{base}{p}")).is_empty());
        done.push((format!("http {p}"), Instant::now()));
    }
    assert_eq!(redis_cli(redis_port, &["SET", "session:1", "alice"]), "OK");
    done.push(("redis SET".into(), Instant::now()));
    assert_eq!(redis_cli(redis_port, &["GET", "session:1"]), "alice");
    done.push(("redis GET".into(), Instant::now()));
    assert!(redis_cli(redis_port, &["INCR", "session:1"]).contains("not an integer"));
    done.push(("redis INCR".into(), Instant::now()));

    // Each entry arrives within 1 s of its response.
    for (what, at) in &done {
        let (proto, key) = what.split_once(' ').unwrap();
        let key = key.to_owned();
        let matches = |e: &Value| match proto {
            "http" => path_of(e) == Some(key.as_str()),
            _ => redis_type(e) == Some(key.as_str()),
        };
        assert!(
            wait_until(Duration::from_secs(3), || follow.arrival(matches).is_some()),
            "{what}: never reached the subscription; tap said:\n{}",
            tap.stderr()
        );
        let arrived = follow.arrival(matches).unwrap();
        let lag = arrived.saturating_duration_since(*at);
        assert!(
            lag < Duration::from_secs(1),
            "{what}: arrived {lag:?} after its response"
        );
    }

    // The stored entries through GraphQL.
    let r = tap.graphql(
        "{ entries(filter: \"http && status_code >= 500\", limit: 10) { entries { protocol status summary vars } } }",
    );
    let list = r["data"]["entries"]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(list.len(), 1, "{r}");
    assert_eq!(list[0]["status"], 500);
    assert_eq!(path_of(&list[0]), Some("/fail"));
    let r = tap.graphql("{ entries(filter: \"redis && redis_error\") { entries { vars } } }");
    let errs = r["data"]["entries"]["entries"].as_array().unwrap();
    assert_eq!(errs.len(), 1, "{r}");
    assert_eq!(redis_type(&errs[0]), Some("INCR"));
    assert_eq!(errs[0]["vars"]["redis_key"], "session:1");

    // `remora query` prints them, oldest first.
    let query = |extra: &[&str]| {
        let out = std::process::Command::new(common::remora_bin())
            .args(["query", "--server", &tap.url(), "--format", "jsonl"])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{extra:?}: {stderr}");
        common::parse_jsonl(&String::from_utf8_lossy(&out.stdout)).unwrap()
    };
    let types: Vec<String> = query(&["redis"])
        .iter()
        .filter_map(|e| redis_type(e).map(str::to_owned))
        .collect();
    assert_eq!(types, ["SET", "GET", "INCR"]);
    // `--since` an hour, and longer ago than any time (it panicked
    // computing a time before the epoch), keeps these recent entries.
    for since in ["1h", "99999999d"] {
        let n = query(&["--since", since, "redis"]).len();
        assert_eq!(n, 3, "--since {since}");
    }

    let metrics =
        String::from_utf8(curl(&["-s", &format!("{}/metrics", tap.url())]).stdout).unwrap();
    let packets: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("remora_packets_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no remora_packets_total in\n{metrics}"));
    assert!(packets >= 20, "{packets} packets counted");
    let timed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("remora_plugin_call_seconds_count "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no plugin latency histogram in\n{metrics}"));
    assert!(timed > 0, "no plugin call was timed");
    // A few flows do not fill a dissector instance to its renewal mark.
    assert!(
        metrics
            .lines()
            .any(|l| l == "remora_plugin_renewals_total 0"),
        "no plugin renewals counter in\n{metrics}"
    );
    let plugins = tap.graphql("{ plugins { name calls errors faults state } }");
    let calls = |name: &str| {
        plugins["data"]["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str().is_some_and(|n| n.contains(name)))
            .map(|p| p["calls"].as_u64().unwrap())
            .unwrap_or_else(|| panic!("{name} not listed: {plugins}"))
    };
    // Every plugin probes unclaimed flows; only the claiming ones are fed.
    assert!(calls("http1") > calls("mqtt"), "{plugins}");
    assert!(calls("redis") > calls("mqtt"), "{plugins}");

    // SIGTERM: a clean stop that says what it stored.
    tap.proc.signal("TERM");
    let st = tap
        .proc
        .wait_exit(Duration::from_secs(10))
        .expect("tap stops on SIGTERM");
    assert!(st.success(), "tap exited with {st}: {}", tap.stderr());
    assert!(tap.stderr().contains("stored"), "{}", tap.stderr());
}

/// Newest stored id the API reports (0 when empty).
fn newest_id(tap: &Tap) -> u64 {
    tap.graphql("{ stats { store { newestId } } }")["data"]["stats"]["store"]["newestId"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn wrk(url: &str, secs: u32) -> std::process::Child {
    std::process::Command::new("wrk")
        .args(["-t", "1", "-c", "4", "-d", &format!("{secs}s"), url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wrk is installed by scripts/test.sh")
}

#[test]
fn kill_9_keeps_every_acknowledged_entry() {
    let (_t, dir) = temp("tap-crash");
    let (ngx_port, api) = (free_port(), free_port());
    let _nginx = nginx(&dir.join("nginx"), ngx_port);
    let data = dir.join("data");
    let bpf = format!("tcp port {ngx_port}");
    let mut tap = Tap::start(&["-i", "lo", "--bpf", &bpf], api, &data);
    let mut load = wrk(&format!("http://127.0.0.1:{ngx_port}/"), 4);
    // An id the API reported is stored: entries are published only after
    // their batch was appended and synced.
    let mut acked = 0;
    wait_until(Duration::from_secs(3), || {
        acked = newest_id(&tap);
        acked > 500
    });
    acked = acked.max(newest_id(&tap));
    tap.proc.signal("KILL");
    tap.proc.wait_exit(Duration::from_secs(5)).expect("killed");
    let _ = load.kill();
    let _ = load.wait();
    assert!(
        acked > 0,
        "no entries were stored before the kill: {}",
        tap.stderr()
    );

    // Restart on the same data dir (reading nothing new).
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, common::pcap_header()).unwrap();
    let api2 = free_port();
    let tap2 = Tap::start(&["-r", empty.to_str().unwrap()], api2, &data);
    let mut ids = Vec::new();
    let mut after = Value::Null;
    loop {
        let q = format!(
            "{{ entries(order: OLDEST_FIRST, limit: 1000{}) {{ next entries {{ id protocol status }} }} }}",
            after.as_str().map(|a| format!(", after: \"{a}\"")).unwrap_or_default()
        );
        let r = tap2.graphql(&q);
        let page = &r["data"]["entries"];
        for e in page["entries"].as_array().unwrap_or_else(|| panic!("{r}")) {
            assert_eq!(e["protocol"], "HTTP");
            ids.push(e["id"].as_str().unwrap().parse::<u64>().unwrap());
        }
        after = page["next"].clone();
        if after.is_null() {
            break;
        }
    }
    // Every acknowledged id is there, with nothing missing before it.
    assert!(
        ids.len() as u64 >= acked,
        "{} entries after restart, {acked} acknowledged",
        ids.len()
    );
    assert_eq!(ids[..acked as usize], (1..=acked).collect::<Vec<_>>()[..]);
    // And filters work on the recovered store.
    let ok = tap2.graphql(
        "{ entries(filter: \"http && status_code == 200\", limit: 5) { entries { status } } }",
    );
    assert_eq!(
        ok["data"]["entries"]["entries"].as_array().unwrap().len(),
        5,
        "{ok}"
    );
}

#[test]
fn store_stays_under_its_limit_under_sustained_load() {
    let (_t, dir) = temp("tap-limit");
    let (ngx_port, api) = (free_port(), free_port());
    let _nginx = nginx(&dir.join("nginx"), ngx_port);
    let bpf = format!("tcp port {ngx_port}");
    let limit = 512u64 << 10;
    let tap = Tap::start(
        &["-i", "lo", "--bpf", &bpf, "--store-size", "512KiB"],
        api,
        &dir.join("data"),
    );
    let mut load = wrk(&format!("http://127.0.0.1:{ngx_port}/"), 5);
    let mut max_bytes = 0u64;
    let mut evicted = 0u64;
    wait_until(Duration::from_secs(8), || {
        let s = &tap.graphql("{ stats { store { bytes limitBytes evictedEntries oldestId } } }")
            ["data"]["stats"]["store"];
        assert_eq!(s["limitBytes"], limit);
        max_bytes = max_bytes.max(s["bytes"].as_u64().unwrap());
        evicted = s["evictedEntries"].as_u64().unwrap();
        load.try_wait().unwrap().is_some() && evicted > 0
    });
    let _ = load.kill();
    let _ = load.wait();
    assert!(
        max_bytes <= limit,
        "store grew to {max_bytes} bytes, limit {limit}"
    );
    assert!(
        evicted > 0,
        "5 s of load never reached the limit: nothing evicted"
    );
    // Oldest first: the entries left are the newest ones.
    let s =
        &tap.graphql("{ stats { store { oldestId newestId entries } } }")["data"]["stats"]["store"];
    let oldest: u64 = s["oldestId"].as_str().unwrap().parse().unwrap();
    let newest: u64 = s["newestId"].as_str().unwrap().parse().unwrap();
    assert!(oldest > 1);
    assert_eq!(s["entries"].as_u64().unwrap(), newest - oldest + 1);
}

#[test]
fn off_loopback_needs_a_token_and_a_token_is_enforced() {
    let fixture = common::fixtures_dir().join("http1-nginx.pcap");
    let (_t, dir) = temp("tap-auth");
    let out = std::process::Command::new(common::remora_bin())
        .args([
            "tap",
            "-r",
            fixture.to_str().unwrap(),
            "--listen",
            "0.0.0.0:1",
        ])
        .arg("--data-dir")
        .arg(dir.join("a"))
        .env_remove("REMORA_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0.0.0.0:1") && err.contains("--token"),
        "{err}"
    );

    let api = free_port();
    let tap = Tap::start(
        &["-r", fixture.to_str().unwrap(), "--token", "t0ken"],
        api,
        &dir.join("b"),
    );
    let url = format!("{}/graphql", tap.url());
    let q = r#"{"query":"{ stats { packets } }"}"#;
    let code = |extra: &[&str]| {
        let mut args = vec![
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "content-type: application/json",
            "-d",
            q,
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        String::from_utf8(curl(&args).stdout).unwrap()
    };
    assert_eq!(code(&[]), "401");
    assert_eq!(code(&["-H", "Authorization: Bearer nope"]), "401");
    assert_eq!(code(&["-H", "Authorization: Bearer t0ken"]), "200");
}

/// `remora tap -r http1-nginx.pcap --listen 127.0.0.1:0 --data-dir DIR`,
/// its stderr piped.
fn tap_on_any_port(dir: &std::path::Path) -> std::process::Child {
    let fixture = common::fixtures_dir().join("http1-nginx.pcap");
    std::process::Command::new(common::remora_bin())
        .args([
            "tap",
            "-r",
            fixture.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The HTTP status `url` answers with (curl must reach it).
fn http_code(url: &str) -> String {
    let out = curl(&["-s", "-o", "/dev/null", "-w", "%{http_code}", url]);
    assert!(out.status.success(), "curl {url}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn healthz(url: &str) -> String {
    http_code(&format!("{url}/healthz"))
}

/// The URL in tap's start-up line (`... dashboard and API at URL (...`).
fn api_url(line: &str) -> String {
    line.split("API at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned()
}

/// `--listen 127.0.0.1:0` takes a port the system chooses, and the address
/// printed is that one (it printed `:0`), where the API answers.
#[test]
fn listening_on_port_zero_prints_the_port_that_serves() {
    let (_t, dir) = temp("tap-port0");
    let mut child = tap_on_any_port(&dir);
    // Read to the end on a thread of its own: a closed stderr would fail
    // the process's later lines.
    let err = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufRead::lines(std::io::BufReader::new(err)).map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let line = lines
        .iter()
        .find(|l| l.contains("dashboard and API at"))
        .expect("the start-up line");
    let url = api_url(&line);
    let port: u16 = url.rsplit(':').next().unwrap().parse().expect("a port");
    assert_ne!(port, 0, "{line}");
    let code = healthz(&url);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, "200", "{url}/healthz");
}

/// With its stderr gone (`remora tap 2>&1 | head -1`), tap keeps serving
/// and stops cleanly on SIGINT: its later lines panicked it (exit 101).
#[test]
fn a_closed_stderr_neither_stops_nor_fails_tap() {
    let (_t, dir) = temp("tap-stderr");
    let mut child = tap_on_any_port(&dir);
    let mut first = String::new();
    {
        // Read the start-up line, then close the pipe.
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        std::io::BufRead::read_line(&mut err, &mut first).unwrap();
    }
    let url = api_url(&first);
    // Reading the capture ends, and its lines go nowhere; then it serves on.
    let stored = wait_until(Duration::from_secs(20), || {
        let out = curl(&[
            "-s",
            "-H",
            "content-type: application/json",
            "--data-binary",
            r#"{"query":"{ stats { entries } }"}"#,
            &format!("{url}/graphql"),
        ]);
        String::from_utf8_lossy(&out.stdout).contains(r#""entries":10"#)
    });
    assert!(
        stored,
        "tap at {url} did not store the capture's 10 entries"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "tap exited");
    assert_eq!(healthz(&url), "200");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "tap's exit after SIGINT");
}

/// `remora query --follow` whose server stops ends by itself: cleanly, or
/// with an error that names the server and says what probably happened
/// (it said only "WebSocket protocol error: Connection reset ...").
#[test]
fn a_follower_ends_when_its_server_stops_and_says_why() {
    let fixture = common::fixtures_dir().join("http1-nginx.pcap");
    let (_t, dir) = temp("tap-follow-end");
    let tap = Tap::start(&["-r", fixture.to_str().unwrap()], free_port(), &dir);
    let url = tap.url();
    let mut follower = std::process::Command::new(common::remora_bin())
        .args([
            "query", "--follow", "--format", "jsonl", "-n", "0", "--server", &url,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Subscribed well before the server goes.
    std::thread::sleep(Duration::from_secs(1));
    tap.proc.signal("INT");
    let ended = wait_until(Duration::from_secs(15), || {
        follower.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = follower.kill();
    }
    assert!(ended, "the follower did not end after its server stopped");
    let status = follower.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut follower.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        status.success()
            || (err.contains(&url.replace("http", "ws")) && err.contains("did `remora tap` stop?")),
        "{status}: {err}"
    );
}

/// A store limit the disk cannot hold is said at start (a full disk stops
/// the capture, the limit only evicts); one that fits is not.
#[test]
fn a_store_size_beyond_the_free_disk_is_warned_about() {
    let fixture = common::fixtures_dir().join("http1-nginx.pcap");
    let fixture = fixture.to_str().unwrap();
    let (_t, dir) = temp("tap-store-size");
    for (size, warned) in [("1000TiB", true), ("1MiB", false)] {
        let tap = Tap::start(
            &["-r", fixture, "--store-size", size],
            free_port(),
            &dir.join(size),
        );
        // The start-up line comes after the warning.
        wait_until(Duration::from_secs(10), || {
            tap.stderr().contains("dashboard and API at")
        });
        let err = tap.stderr();
        let said = err.contains("warning: --store-size")
            && err.contains("the capture stops if the disk fills");
        assert_eq!(said, warned, "--store-size {size}: {err}");
        if warned {
            assert!(err.contains("1000.00 TiB"), "{err}");
        }
    }
}

/// A filter deep enough to overflow a thread's stack in the CEL parser
/// (8,000 chained `+`, inside the 16 KiB limit) aborted the whole tap when
/// sent over the API; it is refused as a bad filter and tap serves on.
#[test]
fn a_filter_too_deep_for_the_parser_is_refused_over_the_api() {
    let fixture = common::fixtures_dir().join("http1-nginx.pcap");
    let (_t, dir) = temp("tap-deep-filter");
    let tap = Tap::start(&["-r", fixture.to_str().unwrap()], free_port(), &dir);
    let deep = format!("{} == 8000", vec!["1"; 8000].join("+"));
    for query in [
        format!(r#"{{ entries(filter: "{deep}") {{ entries {{ id }} }} }}"#),
        format!(r#"{{ checkFilter(filter: "{deep}") {{ ok error {{ message }} }} }}"#),
    ] {
        let answer = tap.graphql(&query);
        let text = answer.to_string();
        assert!(
            text.contains("comparison, arithmetic"),
            "{}",
            &text[..text.len().min(400)]
        );
    }
    assert_eq!(healthz(&tap.url()), "200");
}
