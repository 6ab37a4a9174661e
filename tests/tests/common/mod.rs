//! Shared helpers for the end-to-end tests: locate and run `remora`, parse its
//! JSONL, load tshark truth, compare transactions with a readable diff.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod live;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Upper bound for one `remora` run; the tests never hang longer than this.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `<workspace>/target`, and `$CARGO_TARGET_DIR` when that is set.
pub fn target_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![workspace_root().join("target")];
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        let t = if t.is_absolute() {
            t
        } else {
            workspace_root().join(t)
        };
        if !dirs.contains(&t) {
            dirs.push(t);
        }
    }
    dirs
}

/// `REMORA_BIN`, else the newest of `<workspace>/target/{release,debug}/remora`
/// (and of `$CARGO_TARGET_DIR/{release,debug}/remora` when that is set).
/// Panics with "build it first" when none exists.
pub fn remora_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("REMORA_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "REMORA_BIN={} does not exist", p.display());
        return p;
    }
    let mut best: Option<(SystemTime, PathBuf)> = None;
    for d in target_dirs() {
        for profile in ["release", "debug"] {
            let p = d.join(profile).join(if cfg!(windows) {
                "remora.exe"
            } else {
                "remora"
            });
            if let Ok(m) = fs::metadata(&p) {
                let t = m.modified().unwrap_or(UNIX_EPOCH);
                if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
                    best = Some((t, p));
                }
            }
        }
    }
    match best {
        Some((_, p)) => p,
        None => panic!(
            "remora binary not found under {}/target/{{release,debug}}: build it first: cargo build -p remora \
             (or set REMORA_BIN)",
            workspace_root().display()
        ),
    }
}

/// `REMORA_SHARED`, else `<workspace>/../shared`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("REMORA_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("..").join("shared"))
}

pub fn fixtures_dir() -> PathBuf {
    workspace_root()
        .join("tests")
        .join("fixtures")
        .join("captures")
}

/// A scratch directory removed on drop (no tempfile dependency).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "remora-e2e-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    /// Panic with the command line, exit code and stderr unless it exited 0.
    pub fn expect_ok(&self) -> &Self {
        assert!(
            self.ok(),
            "`{}` exited with {:?}; stderr:\n{}",
            self.cmdline,
            self.code,
            tail(&self.stderr, 4000)
        );
        self
    }
}

/// The last `n` bytes of `s` (at a character boundary).
pub fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// Run `remora ARGS...` (stdin from `stdin_file` or /dev/null), bounded by
/// [`RUN_TIMEOUT`]; stdout/stderr go through files so large outputs can't
/// deadlock on a pipe.
pub fn remora(args: &[&str], stdin_file: Option<&Path>) -> Run {
    remora_env(args, stdin_file, &[])
}

/// [`remora`] with environment variables set (`Some`) or removed (`None`).
pub fn remora_env(args: &[&str], stdin_file: Option<&Path>, env: &[(&str, Option<&Path>)]) -> Run {
    let bin = remora_bin();
    let tmp = TempDir::new("run");
    let out_p = tmp.path().join("stdout");
    let err_p = tmp.path().join("stderr");
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        .stdout(fs::File::create(&out_p).expect("stdout file"))
        .stderr(fs::File::create(&err_p).expect("stderr file"))
        .env_remove("RUST_LOG");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    match stdin_file {
        Some(p) => {
            cmd.stdin(fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display())))
        }
        None => cmd.stdin(Stdio::null()),
    };
    let cmdline = format!(
        "{} {}{}",
        bin.display(),
        args.join(" "),
        stdin_file
            .map(|p| format!(" < {}", p.display()))
            .unwrap_or_default()
    );
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{cmdline}` did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&fs::read(&out_p).unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&err_p).unwrap_or_default()).into_owned(),
        cmdline,
    }
}

/// `remora read FILE --format jsonl [extra...]`, asserting exit 0.
pub fn read_jsonl(file: &Path, extra: &[&str]) -> (Vec<Value>, Run) {
    let f = file.to_str().expect("utf-8 path");
    let mut args = vec!["read", f, "--format", "jsonl"];
    args.extend_from_slice(extra);
    let run = remora(&args, None);
    run.expect_ok();
    let entries = parse_jsonl(&run.stdout).unwrap_or_else(|e| panic!("`{}`: {e:#}", run.cmdline));
    (entries, run)
}

/// One JSON object per non-empty line.
pub fn parse_jsonl(s: &str) -> Result<Vec<Value>> {
    let mut v = Vec::new();
    for (i, line) in s.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let obj: Value = serde_json::from_str(line)
            .with_context(|| format!("stdout line {} is not JSON: {}", i + 1, tail(line, 300)))?;
        if !obj.is_object() {
            bail!(
                "stdout line {} is not a JSON object: {}",
                i + 1,
                tail(line, 300)
            );
        }
        v.push(obj);
    }
    Ok(v)
}

pub fn read_json_lines_file(p: &Path) -> Vec<Value> {
    let s = fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    parse_jsonl(&s).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()))
}

// ------------------------------------------------------------------ entry accessors

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_i64()
        .or_else(|| cur.as_str().and_then(|s| s.parse().ok()))
}

pub fn has_request(e: &Value) -> bool {
    e.get("request").is_some_and(|r| !r.is_null())
}

pub fn has_response(e: &Value) -> bool {
    e.get("response").is_some_and(|r| !r.is_null())
}

pub fn method(e: &Value) -> Option<String> {
    if !has_request(e) {
        return None;
    }
    str_at(e, &["request", "fields", "method"])
        .or_else(|| str_at(e, &["vars", "method"]))
        .map(str::to_owned)
}

/// Request target as sent (path + query): `request.fields.url`, else `vars.url`.
pub fn url(e: &Value) -> Option<String> {
    if !has_request(e) {
        return None;
    }
    str_at(e, &["request", "fields", "url"])
        .or_else(|| str_at(e, &["vars", "url"]))
        .map(normalize_target)
}

pub fn status(e: &Value) -> Option<i64> {
    if !has_response(e) {
        return None;
    }
    int_at(e, &["response", "fields", "status_code"])
        .or_else(|| int_at(e, &["vars", "status_code"]))
}

/// `http_version` of the request (else the response), e.g. "1.1", "1.0", "2".
pub fn http_version(e: &Value) -> Option<String> {
    str_at(e, &["request", "fields", "http_version"])
        .or_else(|| str_at(e, &["response", "fields", "http_version"]))
        .or_else(|| str_at(e, &["vars", "http_version"]))
        .map(|s| s.trim_start_matches("HTTP/").to_owned())
}

pub fn src_port(e: &Value) -> Option<i64> {
    int_at(e, &["src", "port"]).or_else(|| int_at(e, &["vars", "src.port"]))
}

/// `request.body` / `response.body` object, `None` when the side is missing or
/// the body is null.
pub fn body<'a>(e: &'a Value, side: &str) -> Option<&'a Value> {
    e.get(side)
        .filter(|s| !s.is_null())?
        .get("body")
        .filter(|b| !b.is_null())
}

pub fn body_size(e: &Value, side: &str) -> Option<i64> {
    body(e, side)
        .and_then(|b| b.get("size"))
        .and_then(Value::as_i64)
}

/// Absolute-form targets (`http://host/p?q`) compare as origin-form (`/p?q`).
pub fn normalize_target(t: &str) -> String {
    for scheme in ["http://", "https://"] {
        if t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &t[scheme.len()..];
            return match rest.find('/') {
                Some(i) => rest[i..].to_owned(),
                None => "/".to_owned(),
            };
        }
    }
    t.to_owned()
}

/// HTTP/1.x entries of a `remora read` run: protocol "HTTP" and an
/// http_version that is not 2 (HTTP/2 streams may share protocol "HTTP";
/// tshark's `http` records are HTTP/1.x only, an h2c Upgrade included).
pub fn http1_entries(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| {
            e.get("protocol")
                .and_then(Value::as_str)
                .is_some_and(|p| p.eq_ignore_ascii_case("HTTP"))
        })
        .filter(|e| !http_version(e).is_some_and(|v| v.starts_with('2')))
        .collect()
}

/// Sort key within a connection: request (else entry) timestamp, then id.
pub fn order_key(e: &Value) -> (String, i64) {
    let ts = str_at(e, &["request", "timestamp"])
        .or_else(|| str_at(e, &["timestamp"]))
        .unwrap_or("");
    let id = int_at(e, &["id"]).unwrap_or(i64::MAX);
    (ts.to_owned(), id)
}

// ------------------------------------------------------------------ truth

/// One expected HTTP/1 transaction (a tshark `http` record).
#[derive(Clone, Debug)]
pub struct Expected {
    pub method: Option<String>,
    pub url: Option<String>,
    pub status: Option<i64>,
    /// client port, to group by connection
    pub client_port: Option<i64>,
    pub stream: Option<i64>,
    pub resp_frame: Option<i64>,
    pub raw: Value,
}

impl Expected {
    pub fn from_record(r: &Value) -> Expected {
        let client_port = r
            .get("client")
            .and_then(Value::as_str)
            .and_then(|c| c.rsplit(':').next())
            .and_then(|p| p.parse().ok());
        Expected {
            method: r.get("method").and_then(Value::as_str).map(str::to_owned),
            url: r.get("path").and_then(Value::as_str).map(normalize_target),
            status: r.get("status").and_then(Value::as_i64),
            client_port,
            stream: r.get("stream").and_then(Value::as_i64),
            resp_frame: r.get("resp_frame").and_then(Value::as_i64),
            raw: r.clone(),
        }
    }
}

/// `http` records of a truth JSONL file.
pub fn load_truth_http(p: &Path) -> Vec<Expected> {
    read_json_lines_file(p)
        .iter()
        .filter(|r| r.get("proto").and_then(Value::as_str) == Some("http"))
        .map(Expected::from_record)
        .collect()
}

// ------------------------------------------------------------------ comparison

type Key = (String, String, String);

fn key(m: &Option<String>, u: &Option<String>, s: Option<i64>) -> Key {
    (
        m.clone().unwrap_or_else(|| "-".into()),
        u.clone().unwrap_or_else(|| "-".into()),
        s.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
    )
}

fn multiset<I: IntoIterator<Item = Key>>(it: I) -> BTreeMap<Key, i64> {
    let mut m = BTreeMap::new();
    for k in it {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

fn diff(
    label: &str,
    want: &BTreeMap<Key, i64>,
    got: &BTreeMap<Key, i64>,
    out: &mut String,
) -> bool {
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (k, n) in want {
        let g = got.get(k).copied().unwrap_or(0);
        if g < *n {
            missing.push((k, n - g));
        }
    }
    for (k, n) in got {
        let w = want.get(k).copied().unwrap_or(0);
        if w < *n {
            extra.push((k, n - w));
        }
    }
    if missing.is_empty() && extra.is_empty() {
        return true;
    }
    let _ = writeln!(out, "  {label}:");
    for (k, n) in &missing {
        let _ = writeln!(out, "    missing x{n}: {} {} -> {}", k.0, k.1, k.2);
    }
    for (k, n) in &extra {
        let _ = writeln!(out, "    extra   x{n}: {} {} -> {}", k.0, k.1, k.2);
    }
    false
}

/// Compare remora's HTTP/1 entries with expected transactions:
/// - the counts are equal;
/// - answered entries (response present) as a multiset of (method, url, status)
///   equal the expected records that have a status;
/// - expected records with a null status (request never answered in the
///   capture) match unanswered entries by (method, url); records with a null
///   method (response without a captured request) match request-less entries
///   by status.
///
/// Returns a readable report on mismatch.
pub fn compare_http1(
    name: &str,
    entries: &[&Value],
    expected: &[Expected],
) -> std::result::Result<(), String> {
    let mut out = String::new();
    let mut ok = true;
    if entries.len() != expected.len() {
        ok = false;
        let _ = writeln!(
            out,
            "  count: remora has {} HTTP/1 entries, truth has {}",
            entries.len(),
            expected.len()
        );
    }
    let got_answered = multiset(
        entries
            .iter()
            .filter(|e| has_response(e))
            .map(|e| key(&method(e), &url(e), status(e))),
    );
    let want_answered = multiset(
        expected
            .iter()
            .filter(|t| t.status.is_some())
            .map(|t| key(&t.method, &t.url, t.status)),
    );
    ok &= diff(
        "answered transactions (method url -> status)",
        &want_answered,
        &got_answered,
        &mut out,
    );

    let got_unanswered = multiset(
        entries
            .iter()
            .filter(|e| !has_response(e) && has_request(e))
            .map(|e| key(&method(e), &url(e), None)),
    );
    let want_unanswered = multiset(
        expected
            .iter()
            .filter(|t| t.status.is_none() && t.method.is_some())
            .map(|t| key(&t.method, &t.url, None)),
    );
    ok &= diff(
        "unanswered requests (method url, no response)",
        &want_unanswered,
        &got_unanswered,
        &mut out,
    );

    let got_orphans = multiset(
        entries
            .iter()
            .filter(|e| has_response(e) && !has_request(e))
            .map(|e| key(&None, &None, status(e))),
    );
    let want_orphans = multiset(
        expected
            .iter()
            .filter(|t| t.method.is_none() && t.status.is_some())
            .map(|t| key(&None, &None, t.status)),
    );
    // Orphan responses are also counted in "answered" above with method "-";
    // this section only makes the report clearer when they differ.
    if want_orphans != got_orphans {
        diff(
            "responses without a request (status)",
            &want_orphans,
            &got_orphans,
            &mut out,
        );
    }
    let empty_requests = entries
        .iter()
        .filter(|e| !has_request(e) && !has_response(e))
        .count();
    if empty_requests > 0 {
        ok = false;
        let _ = writeln!(
            out,
            "  {empty_requests} entries have neither request nor response"
        );
    }
    if ok {
        return Ok(());
    }
    let mut report = format!("{name}: remora HTTP/1 entries differ from tshark truth\n{out}");
    let _ = writeln!(
        report,
        "  remora entries (id src.port: method url -> status):"
    );
    for e in entries.iter().take(200) {
        let _ = writeln!(
            report,
            "    {} {}: {} {} -> {}",
            e.get("id").map(|v| v.to_string()).unwrap_or_default(),
            src_port(e)
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into()),
            method(e).unwrap_or_else(|| "-".into()),
            url(e).unwrap_or_else(|| "-".into()),
            status(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    Err(report)
}

/// Per connection (client port), the ordered (method, url, status) sequence
/// of the entries must equal the expected order (FIFO pairing).
pub fn compare_order(
    name: &str,
    entries: &[&Value],
    expected: &[Expected],
) -> std::result::Result<(), String> {
    let mut want: BTreeMap<i64, Vec<Key>> = BTreeMap::new();
    for t in expected {
        want.entry(t.client_port.unwrap_or(-1))
            .or_default()
            .push(key(&t.method, &t.url, t.status));
    }
    let mut sorted: Vec<&&Value> = entries.iter().collect();
    sorted.sort_by_key(|e| order_key(e));
    let mut got: BTreeMap<i64, Vec<Key>> = BTreeMap::new();
    for e in sorted {
        got.entry(src_port(e).unwrap_or(-1))
            .or_default()
            .push(key(&method(e), &url(e), status(e)));
    }
    if want == got {
        return Ok(());
    }
    let mut out = format!("{name}: per-connection order differs (FIFO pairing)\n");
    let ports: std::collections::BTreeSet<i64> = want.keys().chain(got.keys()).copied().collect();
    for p in ports {
        let w = want.get(&p).cloned().unwrap_or_default();
        let g = got.get(&p).cloned().unwrap_or_default();
        if w != g {
            let _ = writeln!(out, "  client port {p}:");
            for i in 0..w.len().max(g.len()) {
                let f = |k: Option<&Key>| {
                    k.map(|k| format!("{} {} -> {}", k.0, k.1, k.2))
                        .unwrap_or_else(|| "(none)".into())
                };
                let mark = if w.get(i) == g.get(i) { " " } else { "!" };
                let _ = writeln!(
                    out,
                    "   {mark} #{i}: want {:<40} got {}",
                    f(w.get(i)),
                    f(g.get(i))
                );
            }
        }
    }
    Err(out)
}

/// Guard for a protocol's truth test: every shared truth file with records of
/// `proto` must be one the test covers, so new captures cannot slip by.
pub fn assert_truth_covered(proto: &str, covered: &[&str]) {
    let dir = shared_dir().join("captures").join("truth");
    let mut missing = Vec::new();
    for ent in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = ent.expect("dir entry").path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if !name.ends_with(".jsonl") || covered.contains(&name.as_str()) {
            continue;
        }
        let has = read_json_lines_file(&p)
            .iter()
            .any(|t| t.get("proto").and_then(Value::as_str) == Some(proto));
        if has {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "truth files with {proto} records not covered by its truth test: {missing:?}"
    );
}

/// A pcap file's header: microseconds, Ethernet.
pub fn pcap_header() -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

/// A pcap of `flows` TCP connections from distinct 10.1.x.y clients to
/// 10.0.0.2:`port`, each a handshake, `request` from the client, `reply`
/// from the server, and both FINs; 10 µs apart.
pub fn tcp_flows_pcap(flows: u16, port: u16, request: &[u8], reply: &[u8]) -> Vec<u8> {
    let mut out = pcap_header();
    let mut us = 1_700_000_000_000_000u64;
    let mut frame = |src: [u8; 4],
                     dst: [u8; 4],
                     sport: u16,
                     dport: u16,
                     seq: u32,
                     ack: u32,
                     flags: u8,
                     payload: &[u8]| {
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&sport.to_be_bytes());
        tcp.extend_from_slice(&dport.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(20 + tcp.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, 6, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut eth = vec![2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 8, 0];
        eth.extend_from_slice(&ip);
        eth.extend_from_slice(&tcp);
        us += 10;
        out.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(eth.len() as u32).to_le_bytes());
        out.extend_from_slice(&(eth.len() as u32).to_le_bytes());
        out.extend_from_slice(&eth);
    };
    const SYN: u8 = 2;
    const ACK: u8 = 16;
    const PSH: u8 = 8;
    const FIN: u8 = 1;
    let server = [10, 0, 0, 2];
    let (q, r) = (request.len() as u32, reply.len() as u32);
    for i in 0..flows {
        let client = [10, 1, (i >> 8) as u8, i as u8];
        let cport = 40_000 + i % 20_000;
        frame(client, server, cport, port, 999, 0, SYN, b"");
        frame(server, client, port, cport, 4999, 1000, SYN | ACK, b"");
        frame(client, server, cport, port, 1000, 5000, ACK, b"");
        frame(client, server, cport, port, 1000, 5000, PSH | ACK, request);
        frame(
            server,
            client,
            port,
            cport,
            5000,
            1000 + q,
            PSH | ACK,
            reply,
        );
        frame(
            client,
            server,
            cport,
            port,
            1000 + q,
            5000 + r,
            FIN | ACK,
            b"",
        );
        frame(
            server,
            client,
            port,
            cport,
            5000 + r,
            1001 + q,
            FIN | ACK,
            b"",
        );
    }
    out
}
