//! Entries/s through each alert path: (a) a rule alert, (b) the Rust example
//! plugin (`examples/alerts/rust-secrets`), (c) the Python one, (d) the
//! JavaScript one, at batch sizes 1 and 256, each in two cases:
//!
//! - `offered`: the traffic mix of every bundled fixture capture; a plugin's
//!   manifest prefilter decides (natively) which entries cross into Wasm.
//! - `delivered`: the prefilter is removed, so every entry crosses.
//!
//! The entries are real: each capture goes through the same pipeline as
//! `remora read` (built-in Wasm dissectors), then the mix is repeated with
//! fresh ids and advancing capture time. Detectors are driven like the alert
//! engine drives them (`on_entries` per batch, `on_tick` every capture
//! second). The baseline, the Rust example's prefilter evaluated natively on
//! every entry, is measured at the start and the end of the same run so
//! ratios survive machine load.
//!
//! Rates are per CPU-second of the measuring thread (Wasm runs on it), so
//! they mean "per core" on a loaded machine; wall rates are printed too.
//! `REMORA_ALERT_BENCH_ONLY="rust-secrets) delivered"` measures only the
//! cases whose "label case batch" has that text; `REMORA_ALERT_BENCH_SECS` sets the sample length (1 s).
//!
//! `tests/bench/alerts.sh` builds the Python and JavaScript examples and runs
//! this; without `--bench` (as `cargo test --benches` runs it) every case
//! runs once on a short stream as a smoke test.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use remora_alert::config::AlertConfig;
use remora_alert::plugin::PluginDetector;
use remora_alert::{Detector, RuleSet};
use remora_core::Timestamp;
use remora_dissect::catalog_from_runtime;
use remora_entry::{Catalog, Entry};
use remora_filter::{Filter, Variables};
use remora_pipeline::PipelineConfig;
use remora_runtime::alert::wit::EntryValue;
use remora_runtime::testing::{builtin_plugins, repo_root, secrets_alert_example};
use remora_runtime::{Runtime, RuntimeConfig};
use remora_source::CaptureReader;
use remora_store::StoredEntry;

// The `remora` binary's allocator, so the numbers carry over to `remora tap`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Entries in the measured stream (whole rounds of the mix, at least this many).
const STREAM_MIN: usize = 65_536;
const SMOKE_STREAM_MIN: usize = 2_000;
const BATCHES: [usize; 2] = [1, 256];
const SAMPLES: usize = 3;
const TICK_US: i64 = 1_000_000;
/// Capture time the synthetic stream starts at (2023-11-14, like the fixtures).
const STREAM_START_US: i64 = 1_700_000_000_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum AlertPath {
    Rule,
    Rust,
    Python,
    Js,
}

impl AlertPath {
    const ALL: [AlertPath; 4] = [
        AlertPath::Rule,
        AlertPath::Rust,
        AlertPath::Python,
        AlertPath::Js,
    ];

    fn label(self) -> &'static str {
        match self {
            AlertPath::Rule => "(a) rule alert",
            AlertPath::Rust => "(b) Rust plugin (rust-secrets)",
            AlertPath::Python => "(c) Python plugin (python-metadata)",
            AlertPath::Js => "(d) JavaScript plugin (js-5xx-burst)",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Offered,
    Delivered,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::Offered => "offered",
            Case::Delivered => "delivered",
        }
    }
}

/// The rule that does what the Rust example does; `{}` is its prefilter.
const OFFERED_RULE: &str = r#"
[[rule]]
name = "failed-secret-read"
filter = '''{}'''
severity = "critical"
"#;

/// A rule has no boundary to cross; its worst per-entry work is a filter
/// that matches everything feeding a grouped threshold window.
const DELIVERED_RULE: &str = r#"
[[rule]]
name = "busy-destination"
filter = "src.port >= 0"
severity = "info"
threshold = "count > 100000 within 10s"
group_by = "dst.ip"
"#;

struct Setup {
    rt: Arc<Runtime>,
    catalog: Arc<Catalog>,
    rust_wasm: PathBuf,
    examples_dir: PathBuf,
}

enum Det {
    Rules(RuleSet),
    Plugin(Box<PluginDetector>),
}

impl Det {
    fn as_detector(&mut self) -> &mut dyn Detector {
        match self {
            Det::Rules(r) => r,
            Det::Plugin(p) => p.as_mut(),
        }
    }

    /// Entries offered so far (rules: not counted).
    fn seen(&self) -> u64 {
        match self {
            Det::Rules(_) => 0,
            Det::Plugin(p) => p.counters().entries_seen,
        }
    }

    /// Entries that crossed into Wasm so far (rules: none cross).
    fn crossed(&self) -> Option<u64> {
        match self {
            Det::Rules(_) => None,
            Det::Plugin(p) => Some(p.counters().entries_sent),
        }
    }

    /// Entries lost and faults so far; a measurement with any is not valid.
    fn losses(&self) -> Option<String> {
        let Det::Plugin(p) = self else {
            return None;
        };
        let (c, r) = (p.counters(), p.runtime_counters());
        let lost = c.entries_lost + c.prefilter_errors;
        (lost > 0 || r.faults.total() > 0).then(|| {
            format!(
                "{lost} entries lost, faults {:?}, {} quarantined calls",
                r.faults, r.quarantined_calls
            )
        })
    }
}

fn wasm_of(s: &Setup, path: AlertPath) -> Option<PathBuf> {
    match path {
        AlertPath::Rule => None,
        AlertPath::Rust => Some(s.rust_wasm.clone()),
        AlertPath::Python => Some(s.examples_dir.join("python-metadata.wasm")),
        AlertPath::Js => Some(s.examples_dir.join("js-5xx-burst.wasm")),
    }
}

fn detector(s: &Setup, path: AlertPath, case: Case, rust_prefilter: &str) -> Result<Det, String> {
    let Some(wasm) = wasm_of(s, path) else {
        let toml = match case {
            Case::Offered => OFFERED_RULE.replace("{}", rust_prefilter),
            Case::Delivered => DELIVERED_RULE.to_owned(),
        };
        let cfg = AlertConfig::parse(&toml, "bench.toml").map_err(|e| e.to_string())?;
        return RuleSet::compile(&cfg.rules, &s.catalog)
            .map(Det::Rules)
            .map_err(|e| e.to_string());
    };
    if !wasm.is_file() {
        return Err(format!(
            "{} not built (scripts/build-alert-examples.sh)",
            wasm.display()
        ));
    }
    let mut plugin = s.rt.load_alert_file(&wasm).map_err(|e| format!("{e:#}"))?;
    if case == Case::Delivered {
        plugin.info.prefilter = None;
    }
    Ok(Det::Plugin(Box::new(PluginDetector::new(
        s.rt.clone(),
        Arc::new(plugin),
    ))))
}

/// The entries of one capture, through the `remora read` pipeline.
fn entries_of(s: &Setup, pcap: &Path) -> Vec<Entry> {
    let mut reader =
        CaptureReader::open(pcap).unwrap_or_else(|e| panic!("opening {}: {e}", pcap.display()));
    let cfg = PipelineConfig {
        threads: 1,
        ..PipelineConfig::default()
    };
    let mut out = Vec::new();
    let rt = s.rt.clone();
    remora_pipeline::run(
        &mut reader,
        &cfg,
        || remora_runtime::Shard::new(rt.clone()),
        s.catalog.clone(),
        &mut |e| {
            out.push(e);
            None
        },
        &mut |_| {},
    );
    out
}

fn fixture_captures() -> Vec<PathBuf> {
    let root = repo_root().join("tests/fixtures");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("tests/fixtures") {
        let dir = dir.expect("fixture dir").path();
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for f in files {
            let f = f.expect("fixture file").path();
            if f.extension().is_some_and(|x| x == "pcap") {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

fn shift(m: &mut Option<remora_entry::Message>, by: i64) {
    if let Some(m) = m {
        m.ts = Timestamp(m.ts.0 + by);
    }
}

/// Whole rounds of every capture's entries, each capture rebased to follow
/// the previous one in capture time, renumbered from 1.
fn stream(s: &Setup, captures: &[Vec<Entry>], min: usize) -> Vec<Arc<StoredEntry>> {
    let per_round: usize = captures.iter().map(Vec::len).sum();
    assert!(per_round > 0, "the fixture captures gave no entries");
    let mut out = Vec::with_capacity(min + per_round);
    let mut t = STREAM_START_US;
    while out.len() < min {
        for entries in captures {
            let Some(first) = entries.iter().map(|e| e.timestamp().0).min() else {
                continue;
            };
            let by = t - first;
            for e in entries {
                let mut e = e.clone();
                shift(&mut e.request, by);
                shift(&mut e.response, by);
                e.id = out.len() as u64 + 1;
                t = t.max(e.timestamp().0);
                out.push(Arc::new(StoredEntry {
                    catalog: s.catalog.clone(),
                    entry: e,
                }));
            }
            t += 1_000;
        }
    }
    out
}

/// CPU time of the calling thread: what "per core" means on a machine
/// other work is also using.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Sample {
    entries: u64,
    wall: f64,
    cpu: f64,
    alerts: u64,
}

impl Sample {
    fn per_cpu_second(&self) -> f64 {
        self.entries as f64 / self.cpu.max(1e-9)
    }

    fn per_wall_second(&self) -> f64 {
        self.entries as f64 / self.wall.max(1e-9)
    }
}

/// Feeds `stream` in batches of `batch`, round and round, for at least
/// `min` (at least one batch), ticking every capture second like the engine.
fn drive(
    det: &mut dyn Detector,
    stream: &[Arc<StoredEntry>],
    batch: usize,
    min: Duration,
) -> Sample {
    // Reading the clock per single-entry call would be a visible share.
    let check_every: u64 = if batch >= 64 { 1 } else { 64 };
    let mut calls = 0u64;
    let (mut entries, mut alerts) = (0u64, 0u64);
    let mut last_tick: Option<i64> = None;
    let (t0, c0) = (Instant::now(), thread_cpu());
    loop {
        for chunk in stream.chunks(batch) {
            alerts += det.on_entries(chunk).len() as u64;
            entries += chunk.len() as u64;
            let newest = chunk.last().map_or(0, |e| e.entry.timestamp().0);
            // The stream restarts in the past after a lap; so does the tick.
            if last_tick.is_none_or(|t| newest >= t + TICK_US || newest < t) {
                last_tick = Some(newest);
                alerts += det.on_tick(Timestamp(newest)).len() as u64;
            }
            calls += 1;
            if calls.is_multiple_of(check_every) && t0.elapsed() >= min {
                return Sample {
                    entries,
                    wall: t0.elapsed().as_secs_f64(),
                    cpu: (thread_cpu() - c0).as_secs_f64(),
                    alerts,
                };
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn baseline(filter: &Filter, stream: &[Arc<StoredEntry>], secs: Duration) -> (f64, u64) {
    let mut rates = Vec::new();
    let mut matched = 0u64;
    for _ in 0..SAMPLES {
        let (t0, c0) = (Instant::now(), thread_cpu());
        let mut n = 0u64;
        while t0.elapsed() < secs {
            matched = 0;
            for e in stream {
                matched += u64::from(filter.matches(&e.catalog, &e.entry));
            }
            n += stream.len() as u64;
        }
        rates.push(n as f64 / (thread_cpu() - c0).as_secs_f64().max(1e-9));
    }
    (median(rates), matched)
}

struct Row {
    path: AlertPath,
    case: Case,
    batch: usize,
    /// Median entries per CPU-second and per wall second, or why the case
    /// did not run.
    rate: Result<(f64, f64), String>,
    crossed: String,
    alerts_per_1k: f64,
    load: String,
}

impl Row {
    fn not_run(path: AlertPath, case: Case, batch: usize, why: String) -> Row {
        Row {
            path,
            case,
            batch,
            rate: Err(why),
            crossed: String::new(),
            alerts_per_1k: 0.0,
            load: String::new(),
        }
    }

    /// A markdown table row; the ratio column only once the baseline is known.
    fn render(&self, baseline: Option<f64>) -> String {
        let head = format!(
            "| {} | {} | {}",
            self.path.label(),
            self.case.label(),
            self.batch
        );
        match &self.rate {
            Err(why) => format!("{head} | {why} | | | | | |"),
            Ok((cpu, wall)) => format!(
                "{head} | {cpu:.0} | {wall:.0} | {} | {} | {:.2} | {} |",
                baseline.map_or("?".into(), |b| format!("{:.3}", cpu / b)),
                self.crossed,
                self.alerts_per_1k,
                self.load
            ),
        }
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let secs = Duration::from_secs_f64(
        std::env::var("REMORA_ALERT_BENCH_SECS")
            .ok()
            .map(|v| {
                v.parse::<f64>().unwrap_or_else(|_| {
                    panic!("REMORA_ALERT_BENCH_SECS={v:?} is not a number of seconds")
                })
            })
            .unwrap_or(if measuring { 1.0 } else { 0.0 }),
    );

    let cfg = RuntimeConfig {
        cache_dir: Some(std::env::temp_dir().join("remora-alert-bench-cache")),
        // The deadline is wall time: on a loaded machine a descheduled call
        // would fault and lose its batch, which measures the load, not the path.
        call_deadline: Duration::from_secs(5),
        ..RuntimeConfig::default()
    };
    let mut rt = Runtime::new(cfg).expect("runtime");
    for (name, wasm) in builtin_plugins() {
        rt.load_file(&wasm)
            .unwrap_or_else(|e| panic!("loading {name}: {e:#}"));
    }
    let rt = Arc::new(rt);
    let catalog = Arc::new(catalog_from_runtime(&rt));
    let examples_dir = std::env::var_os("REMORA_ALERT_EXAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"))
                .join("alert-examples")
        });
    let setup = Setup {
        rt: rt.clone(),
        catalog,
        rust_wasm: secrets_alert_example(),
        examples_dir,
    };

    let captures = fixture_captures();
    let per_capture: Vec<Vec<Entry>> = captures.iter().map(|p| entries_of(&setup, p)).collect();
    let stream = stream(
        &setup,
        &per_capture,
        if measuring {
            STREAM_MIN
        } else {
            SMOKE_STREAM_MIN
        },
    );

    let rust_prefilter = rt
        .load_alert_file(&setup.rust_wasm)
        .expect("loading the Rust example")
        .info
        .prefilter
        .expect("the Rust example declares a prefilter");
    let filter = Filter::compile(&rust_prefilter, &Variables::new(&[&setup.catalog]))
        .expect("the Rust example's prefilter compiles");

    let round: usize = per_capture.iter().map(Vec::len).sum();
    println!(
        "stream: {} entries ({} rounds of {round} from {} bundled captures), load {}",
        stream.len(),
        stream.len() / round,
        captures.len(),
        load()
    );
    let mut by_protocol: Vec<(String, usize)> = Vec::new();
    for e in &stream[..round] {
        let p = &setup.catalog.plugins[e.entry.plugin as usize].protocols
            [e.entry.protocol as usize]
            .flag;
        match by_protocol.iter_mut().find(|(f, _)| f == p) {
            Some((_, n)) => *n += 1,
            None => by_protocol.push((p.clone(), 1)),
        }
    }
    by_protocol.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mix: Vec<String> = by_protocol
        .iter()
        .map(|(p, n)| format!("{p} {:.1}%", 100.0 * *n as f64 / round as f64))
        .collect();
    println!("mix per round: {}", mix.join(", "));
    // Lowering a batch calls into the guest to allocate every string and
    // list; this is what a delivered entry costs at the boundary.
    let wit_batch = remora_alert::plugin::entry_batch(&stream[..round]);
    let (mut strings, mut lists) = (wit_batch.names.len(), 2);
    for e in &wit_batch.entries {
        strings += 4; // src and dst: ip and name
        for fields in [&e.request, &e.response].into_iter().flatten() {
            lists += 1;
            strings += fields
                .iter()
                .map(|f| match f.value {
                    EntryValue::Str(_) | EntryValue::Bytes(_) => 1,
                    EntryValue::Pair(_) => 2,
                    _ => 0,
                })
                .sum::<usize>();
        }
    }
    println!(
        "delivered, per entry: {:.1} strings and {:.1} lists lowered into the guest",
        strings as f64 / round as f64,
        lists as f64 / round as f64
    );

    let (base_start, matched) = baseline(&filter, &stream, secs.max(Duration::from_millis(1)));
    println!(
        "baseline (start): the Rust example's prefilter natively, {base_start:.0} entries/CPU-s ({matched} of {} match)",
        stream.len()
    );
    let mut rows = Vec::new();
    let mut invalid = Vec::new();
    // A substring of "label case batch", to measure or profile one case.
    let only = std::env::var("REMORA_ALERT_BENCH_ONLY").unwrap_or_default();
    for path in AlertPath::ALL {
        for case in [Case::Offered, Case::Delivered] {
            for batch in BATCHES {
                let name = format!("{} {} {batch}", path.label(), case.label());
                if !name.to_lowercase().contains(&only.to_lowercase()) {
                    continue;
                }
                let mut det = match detector(&setup, path, case, &rust_prefilter) {
                    Ok(d) => d,
                    Err(e) => {
                        rows.push(Row::not_run(path, case, batch, format!("not run: {e}")));
                        continue;
                    }
                };
                // Instantiates the component and warms its caches.
                let _warm = drive(det.as_detector(), &stream, batch, secs / 4);
                let crossed_before = det.crossed();
                let load_before = load();
                let samples: Vec<Sample> = (0..SAMPLES)
                    .map(|_| drive(det.as_detector(), &stream, batch, secs))
                    .collect();
                let entries: u64 = samples.iter().map(|s| s.entries).sum();
                let alerts: u64 = samples.iter().map(|s| s.alerts).sum();
                let crossed = match (det.crossed(), crossed_before) {
                    (Some(after), Some(before)) => format!(
                        "{:.1}%",
                        100.0 * (after - before) as f64 / entries.max(1) as f64
                    ),
                    _ => "— (native)".into(),
                };
                let (lost_why, seen) = (det.losses(), det.seen());
                if let Some(why) = &lost_why {
                    invalid.push(format!(
                        "{} {} batch {batch}: {why} (of {seen} offered)",
                        path.label(),
                        case.label()
                    ));
                }
                let row = Row {
                    path,
                    case,
                    batch,
                    // Refused calls are fast: a rate that counts them is not one.
                    rate: match lost_why {
                        Some(why) => Err(format!("invalid, {why}")),
                        None => Ok((
                            median(samples.iter().map(Sample::per_cpu_second).collect()),
                            median(samples.iter().map(Sample::per_wall_second).collect()),
                        )),
                    },
                    crossed,
                    alerts_per_1k: 1000.0 * alerts as f64 / entries.max(1) as f64,
                    load: format!("{load_before}–{}", load()),
                };
                eprintln!("{}", row.render(None));
                rows.push(row);
            }
        }
    }
    let (base_end, _) = baseline(&filter, &stream, secs.max(Duration::from_millis(1)));
    let base = (base_start + base_end) / 2.0;
    println!("baseline (end): {base_end:.0} entries/CPU-s; ratios use the mean, {base:.0}");
    println!();
    println!("| path | case | batch | entries/CPU-s | entries/s (wall) | × baseline | crossed into Wasm | alerts per 1k entries | load |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        println!("{}", r.render(Some(base)));
    }
    if !invalid.is_empty() {
        for m in &invalid {
            eprintln!("INVALID: {m}");
        }
        std::process::exit(1);
    }
}
