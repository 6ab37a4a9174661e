//! Reading a file with several threads, the reading thread is shard 0 and
//! also merges every shard's entries. Here a plugin that loops until its
//! deadline stalls the shard its flows land on, so the reader waits for
//! room in that shard's queue while the other shards keep sending entries,
//! and a sink that stalls lets the shards' output queues fill. The reader
//! must keep merging while it waits, and the result must be what one
//! thread gives, in the same order.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use remora_dissect::catalog_from_runtime;
use remora_entry::{Entry, ValueRef};
use remora_pipeline::{LiveStats, PipelineConfig};
use remora_runtime::testing::plugin_path;
use remora_runtime::{Runtime, RuntimeConfig, Shard};
use support::Capture;

/// Flows of the looping plugin first (the first flows' shards do not
/// depend on timing), then many short line-protocol flows, interleaved so
/// that every shard is busy.
fn capture() -> Capture {
    let mut cap = Capture::new();
    for port in 30000..30006 {
        let mut c = cap.connect(port, 7001);
        cap.client_sends(&mut c, b"loop\n");
        cap.close(&mut c);
    }
    let mut conns: Vec<_> = (0..200u16).map(|i| cap.connect(20000 + i, 7777)).collect();
    for round in 0..12 {
        for (i, c) in conns.iter_mut().enumerate() {
            cap.client_sends(c, format!("hello {i} {round}\n").as_bytes());
            cap.server_sends(c, format!("world {i} {round}\n").as_bytes());
        }
    }
    for c in &mut conns {
        cap.close(c);
    }
    cap
}

fn lines(threads: usize, rt: &Arc<Runtime>, stall_every: usize) -> Vec<String> {
    lines_with(threads, rt, stall_every, None)
}

/// Each entry as `id request | response`, in the order they came; live
/// mode when given stats to publish.
fn lines_with(
    threads: usize,
    rt: &Arc<Runtime>,
    stall_every: usize,
    live: Option<Arc<LiveStats>>,
) -> Vec<String> {
    let mut reader = capture().reader();
    let catalog = Arc::new(catalog_from_runtime(rt));
    let cfg = PipelineConfig {
        threads,
        live: live.is_some(),
        stats: live,
        ..PipelineConfig::default()
    };
    let mut seen = Vec::new();
    let mut sink = |e: Entry| {
        if stall_every > 0 && seen.len() % stall_every == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = |m: &Option<remora_entry::Message>| match m
            .as_ref()
            .and_then(|m| m.fields.iter().next())
            .map(|f| f.value)
        {
            Some(ValueRef::Str(s)) => s.to_string(),
            _ => String::new(),
        };
        seen.push(format!(
            "{} {} | {}",
            e.id,
            text(&e.request),
            text(&e.response)
        ));
        // Handed back: the pipeline frees it on the shard that made it.
        Some(e)
    };
    let summary = remora_pipeline::run(
        &mut reader,
        &cfg,
        || Shard::new(rt.clone()),
        catalog,
        &mut sink,
        &mut |_| {},
    );
    assert_eq!(summary.entries as usize, seen.len());
    seen
}

#[test]
fn a_stalled_sink_fills_every_queue_and_loses_or_reorders_nothing() {
    let mut rt = Runtime::new(RuntimeConfig {
        call_deadline: Duration::from_millis(200),
        ..RuntimeConfig::default()
    })
    .unwrap();
    rt.load_file(&plugin_path("remora-test-lines")).unwrap();
    rt.load_file(&plugin_path("remora-test-loop")).unwrap();
    let rt = Arc::new(rt);
    let one = lines(1, &rt, 0);
    assert_eq!(one.len(), 200 * 12, "one entry per line pair");
    for threads in [2, 3] {
        let started = Instant::now();
        let many = lines(threads, &rt, 400);
        assert_eq!(many, one, "{threads} threads");
        // Bounded: the stalls (a few deadlines, 6 sink stalls of 20 ms)
        // plus slack, not a deadlock broken by a timeout.
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

/// A system at its process limit refuses some shard threads (and live, the
/// merging thread): the pipeline runs on the threads it got, with every
/// entry and the same order (in live mode, the same entries), no panic.
#[test]
fn shard_threads_the_system_refuses_leave_the_others_with_every_flow() {
    let mut rt = Runtime::new(RuntimeConfig::default()).unwrap();
    rt.load_file(&plugin_path("remora-test-lines")).unwrap();
    let rt = Arc::new(rt);
    let one = lines(1, &rt, 0);
    assert_eq!(one.len(), 200 * 12);
    // Reading a file: 4 shards asked for, the reading one and one more started.
    remora_pipeline::allow_threads_for_tests(Some(1));
    let refused = lines(4, &rt, 0);
    remora_pipeline::allow_threads_for_tests(None);
    assert_eq!(refused, one);

    let without_ids = |mut v: Vec<String>| {
        for l in &mut v {
            *l = l
                .split_once(' ')
                .map_or(String::new(), |(_, rest)| rest.to_owned());
        }
        v.sort();
        v
    };
    let one = without_ids(one);
    // Live: no shard thread at all (the reader dissects), then shards but
    // no merging thread (the reader merges).
    for allowed in [0, 3] {
        let stats = LiveStats::new();
        remora_pipeline::allow_threads_for_tests(Some(allowed));
        let live = lines_with(3, &rt, 0, Some(stats.clone()));
        remora_pipeline::allow_threads_for_tests(None);
        assert_eq!(without_ids(live), one, "live, {allowed} threads allowed");
        // The shards that ran, and only they, published their counters:
        // every flow is there.
        let shards = stats.snapshot().shards;
        assert_eq!(
            shards.len(),
            allowed.max(1),
            "live, {allowed} threads allowed"
        );
        let flows: u64 = shards.iter().map(|s| s.flows.flows_opened).sum();
        assert_eq!(flows, 206, "live, {allowed} threads allowed");
    }
}
