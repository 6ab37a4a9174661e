//! `remora read` as a command-line tool: errors, damaged input, compressed
//! input, stdin, thread-count independence, and where compiled plugins are
//! cached. Uses the shared generated/http1.pcap (classic pcap, 3.2 MB) and
//! its tshark truth.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// Exit codes accepted for a capture that ends mid-record (a warning, not an
/// error: everything before the damage is still output).
const TRUNCATED_OK_CODES: &[i32] = &[0];

fn http1_pcap() -> PathBuf {
    let p = shared_dir().join("captures/generated/http1.pcap");
    assert!(p.is_file(), "{} not found; set REMORA_SHARED", p.display());
    p
}

/// `remora read http1.pcap --format jsonl` stdout, computed once.
fn baseline() -> &'static str {
    static B: OnceLock<String> = OnceLock::new();
    B.get_or_init(|| {
        let p = http1_pcap();
        let run = remora(&["read", p.to_str().unwrap(), "--format", "jsonl"], None);
        run.expect_ok();
        let n = parse_jsonl(&run.stdout)
            .unwrap_or_else(|e| panic!("{e:#}"))
            .len();
        assert!(n > 0, "`{}` printed no entries", run.cmdline);
        run.stdout
    })
}

/// Readable first difference between two JSONL outputs.
fn assert_same_jsonl(what: &str, want: &str, got: &str) {
    if want == got {
        return;
    }
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let i = w
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(w.len().min(g.len()));
    panic!(
        "{what}: output differs from the plain-file run ({} vs {} lines); first difference at line {}:\n  want: {}\n  got:  {}",
        w.len(),
        g.len(),
        i + 1,
        w.get(i).map(|s| &s[..s.len().min(400)]).unwrap_or("(end)"),
        g.get(i).map(|s| &s[..s.len().min(400)]).unwrap_or("(end)")
    );
}

/// (record offset, caplen) of every record of a classic pcap.
fn pcap_records(data: &[u8]) -> Vec<(usize, usize)> {
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => panic!("not a classic pcap (magic {m:#010x})"),
    };
    let rd = |b: &[u8]| {
        let a: [u8; 4] = b.try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut v = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let caplen = rd(&data[off + 8..off + 12]) as usize;
        v.push((off, caplen));
        off += 16 + caplen;
    }
    v
}

#[test]
fn non_capture_file_is_rejected_with_file_name_and_what_was_found() {
    let tmp = TempDir::new("notcap");
    let p = tmp.path().join("not-a-capture.txt");
    fs::write(
        &p,
        "GET / HTTP/1.1\r\nHost: example\r\n\r\nthis is plain text, not a capture\n",
    )
    .unwrap();
    let run = remora(&["read", p.to_str().unwrap(), "--format", "jsonl"], None);
    assert!(
        !run.ok() && run.code.is_some(),
        "`{}` must fail (exit non-zero), got {:?}",
        run.cmdline,
        run.code
    );
    assert!(
        run.stdout.trim().is_empty(),
        "no entries expected on stdout, got:\n{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("not-a-capture.txt"),
        "stderr must name the file; stderr:\n{}",
        run.stderr
    );
    // "What was found": the magic bytes (hex), or a description of them.
    let lower = run.stderr.to_lowercase();
    let described = [
        "474554",
        "0x47",
        "get /",
        "magic",
        "found",
        "unknown",
        "unrecognized",
        "unsupported",
        "not a",
    ]
    .iter()
    .any(|k| lower.contains(k));
    assert!(
        described,
        "stderr should say what was found instead of a capture; stderr:\n{}",
        run.stderr
    );
}

#[test]
fn truncated_capture_warns_with_offset_and_keeps_earlier_entries() {
    let src = http1_pcap();
    let data = fs::read(&src).unwrap();
    let recs = pcap_records(&data);
    assert!(recs.len() > 10);
    // Cut in the middle of the data of the middle record.
    let k = recs.len() / 2;
    let (rec_off, caplen) = recs[k];
    let cut = rec_off + 16 + caplen / 2;
    let cut_frame = (k + 1) as i64; // 1-based, like tshark's frame numbers
    let tmp = TempDir::new("trunc");
    let p = tmp.path().join("http1-truncated.pcap");
    fs::write(&p, &data[..cut]).unwrap();

    let run = remora(&["read", p.to_str().unwrap(), "--format", "jsonl"], None);
    assert!(
        run.code.is_some_and(|c| TRUNCATED_OK_CODES.contains(&c)),
        "`{}` exited {:?}, want one of {TRUNCATED_OK_CODES:?}; stderr:\n{}",
        run.cmdline,
        run.code,
        run.stderr
    );
    let lower = run.stderr.to_lowercase();
    assert!(
        lower.contains("warn"),
        "stderr must carry a warning; stderr:\n{}",
        run.stderr
    );
    // Any of: start of the damaged record, start of its data, end of file.
    let offsets = [rec_off, rec_off + 16, cut];
    let names_offset = offsets.iter().any(|o| {
        run.stderr.contains(&o.to_string())
            || lower.contains(&format!("{o:#x}"))
            || lower.contains(&format!("{o:x}"))
    });
    assert!(
        names_offset,
        "warning should name the byte offset of the damage (record at {rec_off}, data at {}, EOF at {cut}); stderr:\n{}",
        rec_off + 16,
        run.stderr
    );

    let entries = parse_jsonl(&run.stdout).unwrap_or_else(|e| panic!("{e:#}"));
    let http = http1_entries(&entries);
    let full = parse_jsonl(baseline()).unwrap();
    assert!(!http.is_empty(), "entries before the damage must be output");
    assert!(
        entries.len() <= full.len(),
        "more entries from the truncated file than from the whole file"
    );

    // Every transaction whose response tshark saw complete before the damaged
    // frame must be there, answered.
    let truth = load_truth_http(&shared_dir().join("captures/truth/generated-http1.jsonl"));
    let before: Vec<&Expected> = truth
        .iter()
        .filter(|t| t.resp_frame.is_some_and(|f| f < cut_frame))
        .collect();
    assert!(!before.is_empty());
    let mut got: Vec<(Option<String>, Option<String>, Option<i64>)> = http
        .iter()
        .filter(|e| has_response(e))
        .map(|e| (method(e), url(e), status(e)))
        .collect();
    let mut missing = Vec::new();
    for t in &before {
        let k = (t.method.clone(), t.url.clone(), t.status);
        match got.iter().position(|g| *g == k) {
            Some(i) => {
                got.swap_remove(i);
            }
            None => missing.push(k),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} transactions completed before frame {cut_frame} are missing after truncation: {missing:?}",
        missing.len(),
        before.len()
    );
}

#[test]
fn gzip_compressed_capture_gives_same_output() {
    let src = http1_pcap();
    let tmp = TempDir::new("gz");
    let gz = tmp.path().join("http1.pcap.gz");
    let out = Command::new("gzip")
        .arg("-c")
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("gzip is needed for this test: {e}"));
    assert!(out.status.success(), "gzip failed");
    fs::write(&gz, &out.stdout).unwrap();
    let run = remora(&["read", gz.to_str().unwrap(), "--format", "jsonl"], None);
    run.expect_ok();
    assert_same_jsonl("gzip", baseline(), &run.stdout);
}

#[test]
fn stdin_gives_same_output() {
    let src = http1_pcap();
    let run = remora(&["read", "-", "--format", "jsonl"], Some(Path::new(&src)));
    run.expect_ok();
    assert_same_jsonl("stdin (-)", baseline(), &run.stdout);
}

#[test]
fn thread_count_does_not_change_output() {
    let p = http1_pcap();
    let p = p.to_str().unwrap();
    let one = remora(&["read", p, "--format", "jsonl", "--threads", "1"], None);
    one.expect_ok();
    assert!(!one.stdout.trim().is_empty(), "no output with --threads 1");
    // 2 and 3: the reading thread is a shard too (with one and two others);
    // 4: more shards than the capture has busy flows.
    for n in ["2", "3", "4"] {
        let many = remora(&["read", p, "--format", "jsonl", "--threads", n], None);
        many.expect_ok();
        assert_same_jsonl(
            &format!("--threads {n} vs --threads 1"),
            &one.stdout,
            &many.stdout,
        );
    }
    assert_same_jsonl("--threads 1 vs default", baseline(), &one.stdout);
}

/// `--threads` outside 1..=255 is refused by name and value (100,000 made
/// the process abort when the system refused the threads); 255, the most a
/// pipeline runs, gives the same entries as one.
#[test]
fn thread_counts_out_of_range_are_refused_and_the_largest_works() {
    let p = http1_pcap();
    let p = p.to_str().unwrap();
    for bad in ["0", "256", "100000", "many"] {
        for cmd in [&["read", p][..], &["tap", "-r", p][..]] {
            let mut args = cmd.to_vec();
            args.extend(["--threads", bad]);
            let run = remora(&args, None);
            assert_eq!(run.code, Some(2), "`{}`: {}", run.cmdline, run.stderr);
            let want = format!("invalid value '{bad}' for '--threads <N>'");
            assert!(
                run.stderr.contains(&want) && run.stderr.contains("from 1 to 255"),
                "`{}`: expected {want:?} and the range in stderr:\n{}",
                run.cmdline,
                run.stderr
            );
        }
    }
    let most = remora(&["read", p, "--format", "jsonl", "--threads", "255"], None);
    most.expect_ok();
    assert_same_jsonl("--threads 255 vs default", baseline(), &most.stdout);

    // 20,000 flows nobody claims: every shard probes them with every
    // plugin, so each of the 255 holds an instance of each. The instance
    // pool is sized for that (it was 1,024 slots whatever the threads:
    // a fifth of a mixed capture's entries were lost to `capacity`
    // faults).
    let tmp = TempDir::new("many-shards");
    let unclaimed = tmp.path().join("unclaimed.pcap");
    fs::write(
        &unclaimed,
        tcp_flows_pcap(
            20_000,
            9,
            b"\x01\x02 nothing known\r\n",
            b"\x03\x04 nor this\r\n",
        ),
    )
    .unwrap();
    let u = unclaimed.to_str().unwrap();
    for threads in ["1", "255"] {
        let run = remora(
            &["read", u, "--format", "count", "--threads", threads],
            None,
        );
        run.expect_ok();
        let want = "20000 flows (0 dissected, 20000 raw), 0 entries";
        assert!(
            run.stderr.contains(want)
                && run.stderr.contains(" 0 plugin faults")
                && run.stderr.contains("no drops"),
            "--threads {threads}: expected {want:?}, no faults, no drops:\n{}",
            run.stderr
        );
    }
}

/// Options of live capture given with `tap --read` are refused, as
/// `--bpf` was: they were silently ignored, so `--snaplen 100` seemed to
/// apply to the file.
#[test]
fn live_capture_options_are_refused_with_read() {
    let p = http1_pcap();
    let p = p.to_str().unwrap();
    for (opt, val) in [
        ("--snaplen", Some("100")),
        ("--buffer-size", Some("8MiB")),
        ("--no-promisc", None),
    ] {
        let mut args = vec!["tap", "-r", p, opt];
        args.extend(val);
        let run = remora(&args, None);
        assert_eq!(run.code, Some(2), "`{}`: {}", run.cmdline, run.stderr);
        assert!(
            run.stderr.contains(opt) && run.stderr.contains("--read"),
            "`{}`: expected {opt} and --read named:\n{}",
            run.cmdline,
            run.stderr
        );
    }
}

/// `--body-cap` above what the host takes in one body (1 MiB) is refused:
/// a plugin keeping 2 MB faulted on its own output and the entry was lost.
/// At the limit, the generated capture's 2 MiB body is kept to 1 MiB with
/// its whole size recorded, and no plugin faults.
#[test]
fn body_caps_beyond_the_hosts_limit_are_refused_and_the_limit_works() {
    let big = shared_dir().join("captures/generated/http1.pcap");
    let big = big.to_str().unwrap();
    for bad in ["1048577", "2000000", "99999999999999999999", "-1k"] {
        let arg = format!("--body-cap={bad}");
        for cmd in [&["read", big][..], &["tap", "-r", big][..]] {
            let mut args = cmd.to_vec();
            args.push(&arg);
            let run = remora(&args, None);
            assert_eq!(run.code, Some(2), "`{}`: {}", run.cmdline, run.stderr);
            assert!(
                run.stderr
                    .contains(&format!("invalid value '{bad}' for '--body-cap <BYTES>'"))
                    && run.stderr.contains("from 0 to 1048576"),
                "`{}`: {}",
                run.cmdline,
                run.stderr
            );
        }
    }
    let run = remora(
        &["read", big, "--format", "jsonl", "--body-cap", "1048576"],
        None,
    );
    run.expect_ok();
    assert!(run.stderr.contains(" 0 plugin faults"), "{}", run.stderr);
    let entries = parse_jsonl(&run.stdout).expect("jsonl");
    let largest = entries
        .iter()
        .flat_map(|e| [body(e, "request"), body(e, "response")])
        .flatten()
        .max_by_key(|b| b["size"].as_i64())
        .expect("a body");
    let facts = (
        &largest["size"],
        &largest["captured"],
        &largest["truncated"],
    );
    assert_eq!(facts, (&2_097_152.into(), &1_048_576.into(), &true.into()));
}

/// A closed stderr (`remora read F 2>&1 | head -1` once head is gone) takes
/// the summary line away, not the exit status: printing it panicked (101).
#[test]
fn a_closed_stderr_does_not_fail_read() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let status = Command::new(remora_bin())
        .args(["read", http1_pcap().to_str().unwrap(), "--format", "count"])
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .status()
        .expect("run remora");
    assert_eq!(status.code(), Some(0));
}

/// A reader gone before a short answer is written (`remora plugins | head
/// -0`, a count piped to a closed reader) ends the command cleanly: the
/// std print macro panicked there (exit 101, "failed printing to stdout").
#[test]
fn a_closed_stdout_does_not_fail_short_answers() {
    let p = http1_pcap();
    let cases: [&[&str]; 2] = [
        &["plugins"],
        &[
            "read",
            p.to_str().unwrap(),
            "--format",
            "count",
            "--filter",
            "http",
            "-q",
        ],
    ];
    for args in cases {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = Command::new(remora_bin())
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run remora");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// Writing entries takes a thread of its own, so by default the shards get
/// one core less; counting keeps every core for the shards; an explicit
/// --threads is taken as given.
#[test]
fn default_threads_leave_a_core_to_the_writer() {
    let p = http1_pcap();
    let p = p.to_str().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cases: [(&[&str], String); 4] = [
        (
            &["--format", "jsonl"],
            format!("threads: {} shard(s) and a writer", (cores - 1).max(1)),
        ),
        (
            &["--format", "count", "--filter", "http"],
            format!("threads: {} shard(s) and a writer", (cores - 1).max(1)),
        ),
        (
            &["--format", "count"],
            format!("threads: {cores} shard(s)\n"),
        ),
        (
            &["--format", "jsonl", "--threads", "3"],
            "threads: 3 shard(s) and a writer".to_owned(),
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["read", p, "-q", "--log", "info"];
        args.extend_from_slice(extra);
        let run = remora(&args, None);
        run.expect_ok();
        assert!(
            run.stderr.contains(&want),
            "`{}`: expected {want:?} in stderr:\n{}",
            run.cmdline,
            run.stderr
        );
    }
}

#[test]
fn every_line_follows_the_entry_schema() {
    let entries = parse_jsonl(baseline()).unwrap();
    for e in &entries {
        for k in [
            "id",
            "timestamp",
            "protocol",
            "transport",
            "flow_id",
            "src",
            "dst",
            "complete",
            "vars",
        ] {
            assert!(e.get(k).is_some(), "entry lacks `{k}`: {e}");
        }
        assert!(e["complete"].is_boolean(), "`complete` is a bool: {e}");
        assert!(
            e["src"]["ip"].is_string() && e["src"]["port"].is_u64(),
            "src {{ip, port}}: {e}"
        );
        assert!(
            e.get("request").is_some() && e.get("response").is_some(),
            "request/response keys (null when missing): {e}"
        );
        let ts = e["timestamp"].as_str().unwrap_or("");
        assert!(
            ts.ends_with('Z') && ts.contains('T'),
            "timestamp is RFC 3339 UTC: {ts}"
        );
        if e["protocol"] == "HTTP" {
            let v = &e["vars"];
            assert_eq!(v["http"], Value::Bool(true), "vars.http: {e}");
            if has_request(e) {
                assert_eq!(
                    v["method"].as_str(),
                    method(e).as_deref(),
                    "vars.method mirrors request.fields.method"
                );
                assert_eq!(
                    v["url"].as_str().map(normalize_target),
                    url(e),
                    "vars.url mirrors request.fields.url"
                );
            }
            if has_response(e) {
                assert_eq!(
                    v["status_code"].as_i64(),
                    status(e),
                    "vars.status_code mirrors the response"
                );
                if has_request(e) {
                    assert!(
                        e["elapsed_time"].as_i64().is_some_and(|t| t >= 0),
                        "elapsed_time µs >= 0: {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn closed_output_pipe_stops_reading_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // A reader that takes one line and goes away, like `| head -1`.
    let mut child = Command::new(common::remora_bin())
        .args(["read", "--format", "jsonl", "--threads", "2"])
        .arg(http1_pcap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn remora");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read one line");
    assert!(first.starts_with('{'), "first line: {first}");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "status {:?}, stderr: {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("remora: error"), "{stderr}");
    assert!(!stderr.contains("writing output"), "{stderr}");
}

#[test]
fn read_filter_keeps_matching_entries_and_rejects_bad_filters() {
    let file = common::fixtures_dir().join("http1-nginx.pcap");
    let (all, _) = common::read_jsonl(&file, &[]);
    let (posts, run) = common::read_jsonl(&file, &["--filter", "http && method == \"POST\""]);
    assert!(run.ok());
    let want: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| common::method(e).as_deref() == Some("POST"))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(posts.len(), want.len());
    // `--format count` counts the matching entries instead of ignoring
    // the filter, and prints nothing on stdout without one.
    let file_arg = file.to_str().unwrap();
    let filtered = ["--filter", "http && method == \"POST\"", "-q"];
    let counted = common::remora(
        &[&["read", file_arg, "--format", "count"][..], &filtered[..]].concat(),
        None,
    );
    counted.expect_ok();
    assert_eq!(counted.stdout.trim(), want.len().to_string());
    let bare = common::remora(&["read", file_arg, "--format", "count", "-q"], None);
    bare.expect_ok();
    assert_eq!(bare.stdout, "");
    // Ids are those of the whole capture.
    for (p, w) in posts.iter().zip(want) {
        assert_eq!(p["id"], w["id"]);
    }
    let bad = common::remora(
        &[
            "read",
            file.to_str().unwrap(),
            "--filter",
            "http && mehtod == 1",
        ],
        None,
    );
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains("mehtod") && bad.stderr.contains('^'),
        "{}",
        bad.stderr
    );
}

/// A scratch plugin directory holding copies of these built-in plugins.
fn plugin_dir_with(tmp: &TempDir, names: &[&str]) -> PathBuf {
    let shipped = remora_bin()
        .parent()
        .expect("binary has a directory")
        .join("plugins");
    let plugins = tmp.path().join("plugins");
    fs::create_dir_all(&plugins).expect("plugins dir");
    for name in names {
        let built = shipped.join(name);
        assert!(
            built.is_file(),
            "{} missing: build the plugins first (scripts/build-plugins.sh)",
            built.display()
        );
        fs::copy(&built, plugins.join(name)).expect("copy plugin");
    }
    plugins
}

/// Every file under `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found
}

/// Compiled plugins land where `--help` says: `--cache-dir DIR` itself,
/// else `$XDG_CACHE_HOME/remora/components`, else
/// `~/.cache/remora/components`; empty `REMORA_*` variables are unset ones.
/// One plugin, so each case compiles at most once.
#[test]
fn compiled_plugins_are_cached_where_the_help_says() {
    let tmp = TempDir::new("cache-dir");
    let plugins = plugin_dir_with(&tmp, &["remora_http1.wasm"]);
    let cwasm_in = |dir: &Path| -> usize {
        files_under(dir)
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .count()
    };
    let home = tmp.path().join("home");
    let xdg = tmp.path().join("xdg");
    let explicit = tmp.path().join("explicit");
    let p = plugins.to_str().expect("utf-8 path");
    let e = explicit.to_str().expect("utf-8 path");
    let cases: [(&[&str], Option<&Path>, PathBuf); 3] = [
        (
            &["plugins", "--plugins", p],
            None,
            home.join(".cache/remora/components"),
        ),
        (
            &["plugins", "--plugins", p],
            Some(&xdg),
            xdg.join("remora/components"),
        ),
        (
            &["plugins", "--plugins", p, "--cache-dir", e],
            Some(&xdg),
            explicit.clone(),
        ),
    ];
    for (args, xdg_env, want) in cases {
        let run = remora_env(
            args,
            None,
            &[
                ("HOME", Some(&home)),
                ("XDG_CACHE_HOME", xdg_env),
                ("REMORA_CACHE_DIR", None),
            ],
        );
        run.expect_ok();
        assert_eq!(
            cwasm_in(&want),
            1,
            "`{}`: expected one compiled plugin in {}",
            run.cmdline,
            want.display()
        );
    }
    // Each case wrote only its own directory.
    assert_eq!(cwasm_in(&xdg.join("remora/components")), 1);
    assert_eq!(cwasm_in(&home.join(".cache/remora/components")), 1);

    // Empty REMORA_* variables count as unset (a shell's way to reset
    // one), not as empty option values clap would reject.
    let empty = Path::new("");
    let run = remora_env(
        &["plugins", "--plugins", p],
        None,
        &[
            ("HOME", Some(&home)),
            ("XDG_CACHE_HOME", None),
            ("REMORA_PLUGINS", Some(empty)),
            ("REMORA_CACHE_DIR", Some(empty)),
            ("REMORA_CACHE_MAX_MB", Some(empty)),
            ("REMORA_LOG", Some(empty)),
        ],
    );
    run.expect_ok();
    assert!(
        run.stdout.contains("remora_http1.wasm"),
        "`{}`: the plugin is not listed:\n{}",
        run.cmdline,
        run.stdout
    );
}

/// A cache directory that cannot be written costs one warning for all the
/// plugins (they load on several threads), without terminal colours in a
/// log, and the plugins still load. `--no-cache` neither reads nor writes
/// a cache, wins over `--cache-dir`, and says nothing about it.
#[test]
fn an_unwritable_cache_warns_once_and_no_cache_touches_no_disk() {
    let tmp = TempDir::new("cache-off");
    let plugins = plugin_dir_with(&tmp, &["remora_http1.wasm", "remora_dns.wasm"]);
    let p = plugins.to_str().expect("utf-8 path");
    // No directory can be made under a regular file, not even by root.
    let blocker = tmp.path().join("a-file");
    fs::write(&blocker, b"not a directory").expect("write blocker");
    let bad = blocker.join("cache");
    let b = bad.to_str().expect("utf-8 path");
    let home = tmp.path().join("home");
    let env = [
        ("HOME", Some(home.as_path())),
        ("XDG_CACHE_HOME", None),
        ("REMORA_CACHE_DIR", None),
        ("REMORA_NO_CACHE", None),
        ("NO_COLOR", None),
    ];
    let listed = |run: &Run| {
        for name in ["remora_http1.wasm", "remora_dns.wasm"] {
            assert!(
                run.stdout.contains(name),
                "`{}`: {name} is not listed:\n{}",
                run.cmdline,
                run.stdout
            );
        }
    };

    let run = remora_env(&["plugins", "--plugins", p, "--cache-dir", b], None, &env);
    run.expect_ok();
    listed(&run);
    let warned = run
        .stderr
        .matches("cannot write the component cache")
        .count();
    assert_eq!(warned, 1, "`{}`: stderr:\n{}", run.cmdline, run.stderr);
    assert!(
        run.stderr.contains(b) && run.stderr.contains("--no-cache"),
        "the warning names the directory and the way out:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\u{1b}'),
        "terminal escape codes in a log file:\n{:?}",
        run.stderr
    );

    let run = remora_env(
        &["plugins", "--plugins", p, "--no-cache", "--cache-dir", b],
        None,
        &env,
    );
    run.expect_ok();
    listed(&run);
    assert!(
        !run.stderr.contains("cache"),
        "`{}` spoke of a cache:\n{}",
        run.cmdline,
        run.stderr
    );
    // The environment's way, with the default cache directory under HOME.
    let no_cache = Path::new("1");
    let mut env_off = env;
    env_off[3] = ("REMORA_NO_CACHE", Some(no_cache));
    let run = remora_env(&["plugins", "--plugins", p], None, &env_off);
    run.expect_ok();
    listed(&run);
    assert_eq!(
        files_under(tmp.path())
            .into_iter()
            .filter(|f| !f.starts_with(&plugins) && *f != blocker)
            .collect::<Vec<_>>(),
        Vec::<PathBuf>::new(),
        "--no-cache wrote files"
    );
    // Without it, the same command does write the default cache.
    let run = remora_env(&["plugins", "--plugins", p], None, &env);
    run.expect_ok();
    assert_eq!(files_under(&home.join(".cache/remora/components")).len(), 2);
}

/// The process runs without transparent huge pages (see
/// `no_transparent_huge_pages` in host/cli/src/main.rs): the kernel says so
/// in /proc/PID/status while `read` waits for its input.
#[test]
fn remora_runs_without_transparent_huge_pages() {
    use std::process::Stdio;
    let mut child = Command::new(remora_bin())
        .args(["read", "--format", "count", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn remora");
    let status = format!("/proc/{}/status", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let thp = loop {
        let text = fs::read_to_string(&status).expect("read /proc/PID/status");
        let line = text.lines().find(|l| l.starts_with("THP_enabled:"));
        // The field shows the child's own setting once main has run; before
        // exec it is the test's.
        match line.map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string()) {
            Some(v) if v == "0" || std::time::Instant::now() > deadline => break v,
            None => panic!("no THP_enabled line in {status}:\n{text}"),
            Some(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    };
    // An empty capture on stdin: a clean error, and the child is gone.
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(thp, "0", "THP_enabled of a running remora");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
