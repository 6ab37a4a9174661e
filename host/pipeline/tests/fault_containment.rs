//! Deliberately broken plugins (infinite loop, unbounded allocation, panic,
//! stack overflow, malformed output) run next to a good one on the same
//! capture: each is stopped within its limit, counted, its flow falls back to
//! raw, and every flow of the good plugin is still dissected.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use remora_dissect::catalog_from_runtime;
use remora_entry::{Catalog, Entry, ValueRef};
use remora_pipeline::{PipelineConfig, Summary};
use remora_runtime::testing::plugin_path;
use remora_runtime::{Runtime, RuntimeConfig, Shard};
use support::Capture;

const BROKEN: &[(&str, u16)] = &[
    ("remora-test-loop", 7001),
    ("remora-test-alloc", 7002),
    ("remora-test-panic", 7003),
    ("remora-test-malformed", 7004),
    ("remora-test-stack", 7005),
];

/// Good line-protocol flows before, between and after one flow per broken plugin.
fn capture() -> (Capture, usize) {
    let mut cap = Capture::new();
    let mut good = 0;
    let mut port = 40000;
    let lines_flow = |cap: &mut Capture, port: &mut u16, n: usize| {
        *port += 1;
        let mut c = cap.connect(*port, 7777);
        for i in 0..n {
            cap.client_sends(&mut c, format!("hello {port} {i}\n").as_bytes());
            cap.server_sends(&mut c, format!("world {port} {i}\n").as_bytes());
        }
        cap.close(&mut c);
        n
    };
    good += lines_flow(&mut cap, &mut port, 3);
    for &(_, p) in BROKEN {
        port += 1;
        let mut c = cap.connect(port, p);
        cap.client_sends(&mut c, b"trigger the bug\n");
        cap.server_sends(&mut c, b"reply\n");
        // the good plugin keeps working in the same shard meanwhile
        good += lines_flow(&mut cap, &mut port, 2);
        cap.client_sends(&mut c, b"more bytes after the fault\n");
        cap.close(&mut c);
    }
    good += lines_flow(&mut cap, &mut port, 4);
    (cap, good)
}

fn runtime() -> Arc<Runtime> {
    let cfg = RuntimeConfig {
        call_deadline: Duration::from_millis(200),
        memory_limit: 32 << 20,
        // Short quarantine: the broken flows each fault once, the test is about containment.
        quarantine_base: Duration::from_millis(1),
        ..RuntimeConfig::default()
    };
    let mut rt = Runtime::new(cfg).unwrap();
    rt.load_file(&plugin_path("remora-test-lines")).unwrap();
    for (name, _) in BROKEN {
        rt.load_file(&plugin_path(name)).unwrap();
    }
    Arc::new(rt)
}

/// The line-protocol plugin alone, with `memory_limit` bytes per instance.
fn lines_runtime(memory_limit: usize) -> Arc<Runtime> {
    let cfg = RuntimeConfig {
        memory_limit,
        quarantine_base: Duration::from_millis(1),
        ..RuntimeConfig::default()
    };
    let mut rt = Runtime::new(cfg).unwrap();
    rt.load_file(&plugin_path("remora-test-lines")).unwrap();
    Arc::new(rt)
}

fn run(rt: &Arc<Runtime>, threads: usize) -> (Vec<Entry>, Summary, Arc<Catalog>) {
    run_capture(rt, capture().0, threads)
}

fn run_capture(
    rt: &Arc<Runtime>,
    cap: Capture,
    threads: usize,
) -> (Vec<Entry>, Summary, Arc<Catalog>) {
    let mut reader = cap.reader();
    let catalog = Arc::new(catalog_from_runtime(rt));
    let cfg = PipelineConfig {
        threads,
        ..PipelineConfig::default()
    };
    let mut entries = Vec::new();
    let mut sink = |e| {
        entries.push(e);
        None
    };
    let summary = remora_pipeline::run(
        &mut reader,
        &cfg,
        || Shard::new(rt.clone()),
        catalog.clone(),
        &mut sink,
        &mut |_| {},
    );
    (entries, summary, catalog)
}

fn line(e: &Entry, req: bool) -> String {
    let m = if req { &e.request } else { &e.response };
    match m
        .as_ref()
        .and_then(|m| m.fields.iter().next())
        .map(|f| f.value)
    {
        Some(ValueRef::Str(s)) => s.to_string(),
        other => panic!("no line in {e:?}: {other:?}"),
    }
}

#[test]
fn broken_plugins_are_contained_and_other_flows_still_dissected() {
    let rt = runtime();
    let (_, good) = capture();
    let started = Instant::now();
    let (entries, summary, catalog) = run(&rt, 1);
    let took = started.elapsed();

    // Every good transaction is there, complete and correctly paired.
    let lines: Vec<&Entry> = entries
        .iter()
        .filter(|e| catalog.plugin(e.plugin).name == "test-lines")
        .collect();
    assert_eq!(lines.len(), good, "good entries: {lines:#?}");
    for e in &lines {
        assert!(e.complete(), "{e:?}");
        assert_eq!(
            line(e, true).replace("hello", ""),
            line(e, false).replace("world", "")
        );
    }
    // Each broken plugin faulted once (counted where it happened), and
    // produced no entries.
    assert_eq!(
        summary.dissect.plugin_faults,
        BROKEN.len() as u64,
        "{:?}",
        summary.dissect
    );
    assert_eq!(entries.len(), good, "only the good plugin's entries");
    assert_eq!(summary.dissect.flows_fallen_back as usize, BROKEN.len());
    assert_eq!(
        summary.drops().get(remora_core::DropReason::PluginFault),
        summary.dissect.plugin_faults
    );
    // Bounded: one deadline (200 ms) plus slack, not an endless loop.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn containment_holds_with_several_shards() {
    let rt = runtime();
    let (_, good) = capture();
    let (entries, summary, catalog) = run(&rt, 3);
    let n = entries
        .iter()
        .filter(|e| catalog.plugin(e.plugin).name == "test-lines" && e.complete())
        .count();
    assert_eq!(n, good);
    assert_eq!(summary.dissect.flows_fallen_back as usize, BROKEN.len());
}

/// A flood of flows to one plugin, all open at once: each time its
/// instance's memory is three quarters full a new instance takes the new
/// flows, and once `MAX_RETIRING` full ones still hold theirs, no new
/// sessions are taken. The flows admitted are dissected to their end, the
/// refused ones are raw and counted as `plugin_session_limit`, and nothing
/// faults (running out of memory would have ended every session of the
/// instance).
#[test]
fn a_flood_of_flows_is_refused_before_the_plugin_runs_out_of_memory() {
    const FLOWS: u16 = 40_000;
    let rt = lines_runtime(5 << 19);
    let mut cap = Capture::new();
    let mut conns: Vec<_> = (0..FLOWS)
        .map(|i| {
            let mut c = cap.connect(20_000 + i, 7777);
            cap.client_sends(&mut c, format!("hello {i}\n").as_bytes());
            cap.server_sends(&mut c, format!("world {i}\n").as_bytes());
            c
        })
        .collect();
    // Every flow speaks again while all are open, then closes.
    for (i, c) in conns.iter_mut().enumerate() {
        cap.client_sends(c, format!("again {i}\n").as_bytes());
        cap.server_sends(c, format!("still {i}\n").as_bytes());
        cap.close(c);
    }
    let (entries, summary, _) = run_capture(&rt, cap, 1);

    let refused = summary
        .drops()
        .get(remora_core::DropReason::PluginSessionLimit);
    let admitted = u64::from(FLOWS) - refused;
    assert!(refused > 0, "nothing refused: {:?}", summary.dissect);
    assert!(admitted >= 64, "{admitted} sessions admitted");
    assert_eq!(summary.dissect.plugin_faults, 0, "{:?}", summary.dissect);
    assert_eq!(
        summary.dissect.plugin_renewals,
        remora_runtime::MAX_RETIRING as u64
    );
    assert_eq!(summary.dissect.flows_dissected, admitted);
    assert_eq!(summary.dissect.flows_fallen_back, 0);
    // Both exchanges of every admitted flow, complete.
    assert_eq!(entries.len() as u64, 2 * admitted);
    assert!(entries.iter().all(|e| e.complete()));
}

/// A plugin whose guest never frees (each `LEAK` line keeps 256 KiB) on
/// a capture of 240 flows, 60 MiB of leaks against a 16 MiB instance,
/// while one long flow stays open across them all: the instance is
/// replaced whenever it fills, the long flow's session stays with the
/// instance that opened it, and every exchange is dissected; nothing
/// faults, nothing is dropped. Without the renewal the instance would
/// trap again and again, the first time losing the long flow too.
#[test]
fn a_plugin_that_never_frees_is_renewed_and_loses_nothing() {
    const FLOWS: u16 = 240;
    let rt = lines_runtime(16 << 20);
    let capture = || {
        let mut cap = Capture::new();
        let mut long = cap.connect(19_999, 7777);
        for i in 0..FLOWS {
            let mut c = cap.connect(20_000 + i, 7777);
            cap.client_sends(&mut c, b"LEAK\n");
            cap.server_sends(&mut c, format!("leaked {i}\n").as_bytes());
            cap.close(&mut c);
            if i % 80 == 0 {
                cap.client_sends(&mut long, format!("long {i}\n").as_bytes());
                cap.server_sends(&mut long, format!("still {i}\n").as_bytes());
            }
        }
        cap.close(&mut long);
        cap
    };
    for threads in [1, 2] {
        let (entries, summary, _) = run_capture(&rt, capture(), threads);
        let d = &summary.dissect;
        assert_eq!(d.plugin_faults, 0, "{threads} threads: {d:?}");
        assert!(d.plugin_renewals >= 2, "{threads} threads: {d:?}");
        assert_eq!(d.flows_dissected, u64::from(FLOWS) + 1);
        let drops: Vec<_> = summary.drops().nonzero().collect();
        assert!(drops.is_empty(), "{drops:?}");
        assert_eq!(entries.len(), usize::from(FLOWS) + 3);
        assert!(entries.iter().all(|e| e.complete()));
        let long: Vec<String> = entries
            .iter()
            .filter(|e| line(e, false).starts_with("still"))
            .map(|e| line(e, true))
            .collect();
        assert_eq!(long, ["long 0", "long 80", "long 160"]);
    }
}
