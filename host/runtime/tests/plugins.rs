//! End-to-end tests against real components (the test plugins in
//! `plugins/testing`, built once per test process).

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use remora_runtime::testing::plugin_path;
use remora_runtime::wit::{
    Direction, FeedResult, FieldType, FlowInfo, MessageKind, ProbeResult, Text, Transport, Value,
};
use remora_runtime::{Fault, PluginId, Runtime, RuntimeConfig, SessionId, Shard, MAX_RETIRING};

/// Runs `f` on its own thread and fails the test if it takes longer than `secs`.
fn bounded<F: FnOnce() + Send + 'static>(secs: u64, f: F) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => t.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The closure panicked: re-raise its panic.
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test exceeded {secs} s"),
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "remora_runtime=info".into()),
        )
        .try_init();
}

/// A config for tests: a cache shared by the test process (not ~/.cache), few
/// pool slots, quick quarantine.
fn test_config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: Some(std::env::temp_dir().join("remora-runtime-tests-cache")),
        // Generous: the machine may be busy (tests run in parallel); the
        // deadline test sets its own.
        call_deadline: Duration::from_secs(2),
        max_instances: 32,
        quarantine_base: Duration::from_millis(20),
        ..RuntimeConfig::default()
    }
}

fn runtime_with(cfg: RuntimeConfig, crates: &[&str]) -> (Arc<Runtime>, Vec<PluginId>) {
    init_tracing();
    let mut rt = Runtime::new(cfg).expect("runtime");
    let ids = crates
        .iter()
        .map(|c| rt.load_file(&plugin_path(c)).expect("load"))
        .collect();
    (Arc::new(rt), ids)
}

/// A shard with one plugin whose quarantine after a fault is 1 ms, so a
/// test can make it fault again and again.
fn briefly_quarantined(crate_name: &str) -> (Shard, PluginId) {
    let cfg = RuntimeConfig {
        quarantine_base: Duration::from_millis(1),
        ..test_config()
    };
    let (rt, ids) = runtime_with(cfg, &[crate_name]);
    (Shard::new(rt), ids[0])
}

/// A shard with one plugin whose instances have `memory_limit` bytes.
fn with_memory(crate_name: &str, memory_limit: usize) -> (Shard, PluginId) {
    let cfg = RuntimeConfig {
        memory_limit,
        ..test_config()
    };
    let (rt, ids) = runtime_with(cfg, &[crate_name]);
    (Shard::new(rt), ids[0])
}

fn flow(server_port: u16) -> FlowInfo {
    FlowInfo {
        id: 1,
        transport: Transport::Tcp,
        client_ip: std::net::IpAddr::from([10, 0, 0, 1]).into(),
        client_port: 40000,
        server_ip: std::net::IpAddr::from([10, 0, 0, 2]).into(),
        server_port,
    }
}

fn span_text<'a>(v: &Value, data: &'a [u8]) -> &'a str {
    match v {
        Value::Str(Text::Span(s)) => {
            std::str::from_utf8(&data[s.offset as usize..(s.offset + s.len) as usize]).unwrap()
        }
        other => panic!("expected a span, got {other:?}"),
    }
}

#[test]
fn a_plugin_gets_the_flows_addresses_as_they_are() {
    bounded(300, || {
        let (rt, ids) = runtime_with(test_config(), &["remora-test-lines"]);
        let p = ids[0];
        let mut shard = Shard::new(rt);
        let v6 = |s: &str| std::net::IpAddr::from(s.parse::<std::net::Ipv6Addr>().unwrap()).into();
        let flows = [
            (flow(7777), "10.0.0.1:40000 > 10.0.0.2:7777"),
            (
                FlowInfo {
                    client_ip: std::net::IpAddr::from([192, 168, 255, 7]).into(),
                    server_ip: std::net::IpAddr::from([0, 0, 0, 0]).into(),
                    ..flow(7777)
                },
                "192.168.255.7:40000 > 0.0.0.0:7777",
            ),
            (
                FlowInfo {
                    client_ip: v6("2001:db8::8a2e:370:7334"),
                    server_ip: v6("::ffff:10.1.2.3"),
                    ..flow(7777)
                },
                "2001:db8::8a2e:370:7334:40000 > ::ffff:10.1.2.3:7777",
            ),
            (
                FlowInfo {
                    client_ip: v6("fe80::1"),
                    server_ip: v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
                    ..flow(7777)
                },
                "fe80::1:40000 > ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe:7777",
            ),
        ];
        for (f, want) in flows {
            let s = shard.open(p, &f).unwrap();
            let r = shard.feed(&s, Direction::ToServer, 0, b"WHO\n").unwrap();
            let m = &r.messages.to_vec()[0];
            assert_eq!(m.fields[0].value, Value::Str(Text::Owned(want.into())));
            shard.close(&s);
        }
    });
}

#[test]
fn lines_round_trip() {
    bounded(300, || {
        let (rt, ids) = runtime_with(test_config(), &["remora-test-lines"]);
        let p = ids[0];
        let plugin = rt.plugin(p);
        assert_eq!(plugin.info.name, "test-lines");
        assert_eq!(plugin.info.protocols[0].flag, "lines");
        assert_eq!(plugin.info.protocols[0].ports, vec![7777]);
        assert_eq!(plugin.info.fields.len(), 1);
        assert_eq!(plugin.info.fields[0].name, "line");
        assert_eq!(plugin.info.fields[0].type_, FieldType::Str);
        assert!(plugin.info.fields[0].top_level);
        assert_eq!(plugin.sha256.len(), 64);

        let mut shard = Shard::new(rt.clone());
        let f = flow(7777);
        assert_eq!(
            shard.probe(p, &f, Direction::ToServer, b"GET x").unwrap(),
            ProbeResult::Yes(50)
        );
        assert_eq!(
            shard.probe(p, &f, Direction::ToServer, b"").unwrap(),
            ProbeResult::NeedMore
        );
        assert_eq!(
            shard
                .probe(p, &f, Direction::ToServer, b"\x16\x03")
                .unwrap(),
            ProbeResult::No
        );
        assert_eq!(
            shard
                .probe(p, &flow(80), Direction::ToServer, b"GET x")
                .unwrap(),
            ProbeResult::No
        );

        let s = shard.open(p, &f).unwrap();
        let req = b"hello\nworld\npart";
        let r = shard.feed(&s, Direction::ToServer, 100, req).unwrap();
        assert_eq!(r.consumed, 12);
        assert_eq!(r.error, None);
        assert_eq!(r.messages.len(), 2);
        for (i, (m, text, start)) in r
            .messages
            .to_vec()
            .into_iter()
            .zip([("hello", 100), ("world", 106)])
            .map(|(m, (t, s))| (m, t, s))
            .enumerate()
        {
            assert_eq!(m.kind, MessageKind::Request);
            assert_eq!(m.txn, i as u64);
            assert_eq!(m.start, start);
            assert_eq!(m.fields.len(), 1);
            assert_eq!(m.fields[0].id, 1);
            assert_eq!(span_text(&m.fields[0].value, req), text);
        }
        // The unconsumed tail comes back with more bytes.
        let more = b"partial\n";
        let r = shard.feed(&s, Direction::ToServer, 112, more).unwrap();
        assert_eq!((r.consumed, r.messages.len()), (8, 1));
        let m = &r.messages.to_vec()[0];
        assert_eq!((m.txn, m.start), (2, 112));
        assert_eq!(span_text(&m.fields[0].value, more), "partial");

        let resp = b"ok 0\nok 1\n";
        let r = shard.feed(&s, Direction::ToClient, 0, resp).unwrap();
        assert_eq!(r.consumed, 10);
        let got: Vec<_> = r
            .messages
            .to_vec()
            .iter()
            .map(|m| (m.kind, m.txn, span_text(&m.fields[0].value, resp)))
            .collect();
        assert_eq!(
            got,
            vec![
                (MessageKind::Response, 0, "ok 0"),
                (MessageKind::Response, 1, "ok 1")
            ]
        );

        assert!(shard
            .gap(&s, Direction::ToClient, 10)
            .unwrap()
            .messages
            .is_empty());
        assert!(shard
            .end(&s, Direction::ToServer)
            .unwrap()
            .messages
            .is_empty());
        let c = &shard.counters()[0];
        assert_eq!(c.sessions_open, 1);
        shard.close(&s);
        let c = &shard.counters()[0];
        assert_eq!(c.sessions_open, 0);
        assert_eq!(c.instances_created, 1);
        assert_eq!(c.faults.total(), 0);
        assert_eq!(c.calls, 4 + 1 + 3 + 2 + 1);
    });
}

#[test]
fn cache_second_load_is_faster() {
    bounded(300, || {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let cfg = RuntimeConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            ..test_config()
        };
        let path = plugin_path("remora-test-lines");

        let mut rt1 = Runtime::new(cfg.clone()).unwrap();
        let id = rt1.load_file(&path).unwrap();
        let first = rt1.plugin(id);
        assert!(!first.from_cache);
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1, "one cache entry written");

        let mut rt2 = Runtime::new(cfg).unwrap();
        let id = rt2.load_file(&path).unwrap();
        let second = rt2.plugin(id);
        assert!(second.from_cache);
        assert!(
            second.compile_time < first.compile_time,
            "cached {:?} vs compiled {:?}",
            second.compile_time,
            first.compile_time
        );
        assert_eq!(first.sha256, second.sha256);
        // The cached component works.
        let mut shard = Shard::new(Arc::new(rt2));
        let s = shard.open(id, &flow(7777)).unwrap();
        assert_eq!(
            shard
                .feed(&s, Direction::ToServer, 0, b"a\n")
                .unwrap()
                .messages
                .len(),
            1
        );

        // A corrupt cache entry is ignored and rewritten.
        for e in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::write(e.unwrap().path(), b"garbage").unwrap();
        }
        let mut rt3 = Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.path().into()),
            ..test_config()
        })
        .unwrap();
        let id = rt3.load_file(&path).unwrap();
        assert!(!rt3.plugin(id).from_cache);
    });
}

#[test]
fn deadline_fault_and_shard_keeps_serving() {
    bounded(300, || {
        let cfg = RuntimeConfig {
            call_deadline: Duration::from_millis(200),
            ..test_config()
        };
        let deadline = cfg.call_deadline;
        let (rt, ids) = runtime_with(cfg, &["remora-test-lines", "remora-test-loop"]);
        let (lines, looping) = (ids[0], ids[1]);
        let mut shard = Shard::new(rt);
        assert_eq!(
            shard
                .probe(looping, &flow(7001), Direction::ToServer, b"x")
                .unwrap(),
            ProbeResult::Yes(100)
        );
        assert_eq!(
            shard
                .probe(looping, &flow(7777), Direction::ToServer, b"x")
                .unwrap(),
            ProbeResult::No
        );
        let s = shard.open(looping, &flow(7001)).unwrap();
        let t0 = Instant::now();
        let r = shard.feed(&s, Direction::ToServer, 0, b"spin");
        let took = t0.elapsed();
        assert_eq!(r, Err(Fault::Deadline));
        assert!(took >= deadline.mul_f32(0.9), "trapped after {took:?}");
        assert!(
            took < deadline + Duration::from_millis(500),
            "trapped after {took:?}"
        );

        // The same shard still serves the well-behaved plugin.
        let ls = shard.open(lines, &flow(7777)).unwrap();
        let r = shard
            .feed(&ls, Direction::ToServer, 0, b"still here\n")
            .unwrap();
        assert_eq!(r.messages.len(), 1);
        // The faulted plugin's session is stale.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            shard.feed(&s, Direction::ToServer, 0, b"x"),
            Err(Fault::Stale)
        );
        let c = &shard.counters()[looping.0 as usize];
        assert_eq!(c.faults.deadline, 1);
    });
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn memory_fault_and_rss_stays_bounded() {
    bounded(300, || {
        let cfg = RuntimeConfig {
            memory_limit: 32 << 20,
            quarantine_base: Duration::from_millis(1),
            ..test_config()
        };
        let (rt, ids) = runtime_with(cfg, &["remora-test-alloc"]);
        let p = ids[0];
        let mut shard = Shard::new(rt);
        let before = rss_bytes();
        for _ in 0..16 {
            let s = shard.open(p, &flow(7002)).unwrap();
            assert_eq!(
                shard.feed(&s, Direction::ToServer, 0, b"more"),
                Err(Fault::Memory)
            );
            std::thread::sleep(Duration::from_millis(3));
        }
        let grown = rss_bytes().saturating_sub(before);
        // 16 faults x 32 MiB would be 512 MiB if nothing were released; the
        // margin absorbs other tests running in the same process.
        assert!(grown < 160 << 20, "RSS grew by {} MiB", grown >> 20);
        let c = &shard.counters()[0];
        assert_eq!(c.faults.memory, 16);
        assert_eq!(c.instances_created, 16);
    });
}

#[test]
fn panic_is_a_trap_with_the_message() {
    bounded(300, || {
        let (rt, ids) = runtime_with(test_config(), &["remora-test-panic"]);
        let mut shard = Shard::new(rt);
        let s = shard.open(ids[0], &flow(7003)).unwrap();
        match shard.feed(&s, Direction::ToServer, 0, b"12345") {
            Err(Fault::Trap(m)) => {
                assert!(m.contains("test-panic: feed called with 5 bytes"), "{m}");
                assert!(m.contains("unreachable"), "{m}");
                // names the plugin function that trapped (inlining decides which)
                assert!(m.contains("feed"), "{m}");
            }
            other => panic!("expected a trap, got {other:?}"),
        }
        assert_eq!(shard.counters()[0].faults.trap, 1);
    });
}

#[test]
fn stack_overflow_is_a_stack_fault() {
    bounded(300, || {
        let (rt, ids) = runtime_with(test_config(), &["remora-test-stack"]);
        let mut shard = Shard::new(rt);
        let s = shard.open(ids[0], &flow(7005)).unwrap();
        assert_eq!(
            shard.feed(&s, Direction::ToServer, 0, b"abc"),
            Err(Fault::Stack)
        );
        assert_eq!(shard.counters()[0].faults.stack, 1);
    });
}

#[test]
fn a_garbled_batch_encoding_is_malformed_output() {
    bounded(300, || {
        let (mut shard, p) = briefly_quarantined("remora-test-garbled");
        let s = shard.open(p, &flow(7006)).unwrap();
        assert_eq!(
            shard.feed(&s, Direction::ToServer, 0, b"x"),
            Ok(FeedResult::default()),
            "well-formed empty answers"
        );
        for (input, expect) in [
            (
                b"0",
                "answers encoding truncated: consumed of 4 bytes at offset 0 of 0",
            ),
            (b"1", "1 bytes after the answers of a batch of 1 calls"),
            (b"2", "answers encoding: answer flags 128 at offset 16"),
        ] {
            std::thread::sleep(Duration::from_millis(5));
            let s = shard.open(p, &flow(7006)).unwrap();
            match shard.feed(&s, Direction::ToServer, 0, input) {
                Err(Fault::Malformed(m)) => assert_eq!(m, expect),
                r => panic!("expected malformed, got {r:?}"),
            }
        }
        assert_eq!(shard.counters()[0].faults.malformed, 3);
    });
}

#[test]
fn malformed_output_is_a_fault_and_sessions_go_stale() {
    bounded(300, || {
        let (mut shard, p) = briefly_quarantined("remora-test-malformed");
        for (input, expect) in [
            (b"0", "consumed 2 of 1"),
            (b"1", "span 1+1 outside"),
            (b"2", "undeclared field id 999"),
        ] {
            let s = shard.open(p, &flow(7004)).unwrap();
            let other = shard.open(p, &flow(7004)).unwrap();
            match shard.feed(&s, Direction::ToServer, 0, input) {
                Err(Fault::Malformed(m)) => assert!(m.contains(expect), "{m}"),
                r => panic!("expected malformed, got {r:?}"),
            }
            // Both sessions of the dropped instance are stale, even after the
            // quarantine and a fresh instance.
            std::thread::sleep(Duration::from_millis(5));
            let fresh = shard.open(p, &flow(7004)).unwrap();
            assert_eq!(
                shard.feed(&s, Direction::ToServer, 0, b"x"),
                Err(Fault::Stale)
            );
            assert_eq!(shard.gap(&other, Direction::ToServer, 1), Err(Fault::Stale));
            assert_eq!(shard.end(&other, Direction::ToClient), Err(Fault::Stale));
            shard.close(&s);
            shard.close(&other);
            shard.close(&fresh);
            std::thread::sleep(Duration::from_millis(5));
        }
        let c = &shard.counters()[0];
        assert_eq!(c.faults.malformed, 3);
        assert_eq!(c.sessions_open, 0);
    });
}

#[test]
fn a_full_instance_pool_is_a_capacity_fault_not_a_trap() {
    bounded(300, || {
        let cfg = RuntimeConfig {
            max_instances: 1,
            ..test_config()
        };
        let (rt, ids) = runtime_with(cfg, &["remora-test-lines"]);
        assert!(rt.pooling(), "this test needs the pooling allocator");
        let mut a = Shard::new(rt.clone());
        let mut b = Shard::new(rt);
        let _held = a.open(ids[0], &flow(7778)).unwrap();
        match b.open(ids[0], &flow(7778)) {
            Err(Fault::Capacity(m)) => assert!(m.contains("limit of 1"), "{m}"),
            other => panic!("expected a capacity fault, got {other:?}"),
        }
        let c = &b.counters()[0];
        assert_eq!((c.faults.capacity, c.faults.trap), (1, 0));
        assert_eq!(c.faults.total(), 1);
    });
}

/// A flood of sessions fills an instance's memory: at three quarters of
/// it the instance is replaced, the old one keeping its sessions. When
/// the live one is as full and `MAX_RETIRING` old ones still serve theirs,
/// further opens are refused (no trap), the sessions already open go on,
/// and closing some makes room for as many. Without the limit the instance
/// would run out of memory and lose every session it holds.
#[test]
fn a_flood_of_sessions_is_refused_before_the_memory_runs_out() {
    bounded(300, || {
        let (mut shard, p) = with_memory("remora-redis", 8 << 20);
        let f = flow(6379);
        let ping = b"*1\r\n$4\r\nPING\r\n";
        let mut open = Vec::new();
        // Where each instance's sessions start in `open`.
        let mut starts = vec![0];
        // Each session parses a command, so it holds what a real one does.
        let refused = loop {
            assert!(open.len() < 1_000_000, "never refused");
            match shard.open(p, &f) {
                Ok(s) => {
                    let r = shard.feed(&s, Direction::ToServer, 0, ping).unwrap();
                    assert_eq!(r.messages.len(), 1);
                    if shard.counters()[0].renewals as usize == starts.len() {
                        starts.push(open.len());
                    }
                    open.push(s);
                }
                Err(e) => break e,
            }
        };
        assert_eq!(starts.len(), MAX_RETIRING + 1, "{starts:?}");
        let last = *starts.last().unwrap();
        for w in starts.windows(2) {
            assert!(w[1] - w[0] >= 64, "instances' sessions: {starts:?}");
        }
        match refused {
            Fault::SessionLimit { limit, memory } => {
                assert_eq!(limit, (open.len() - last) as u64);
                assert!((6 << 20..=8 << 20).contains(&memory), "{memory} bytes");
            }
            other => panic!("expected a session limit, got {other:?}"),
        }
        assert!(
            open.len() - last >= 64,
            "only {} sessions",
            open.len() - last
        );
        assert!(matches!(shard.open(p, &f), Err(Fault::SessionLimit { .. })));
        let c = &shard.counters()[0];
        assert_eq!(c.faults.total(), 0, "{:?}", c.faults);
        let instances = MAX_RETIRING as u64 + 1;
        assert_eq!(
            (c.instances_created, c.renewals),
            (instances, instances - 1)
        );
        assert_eq!(c.sessions_refused, 2);
        assert_eq!(c.sessions_open, open.len() as u64);
        // The first session of each instance and the last still answer.
        for &i in starts.iter().chain([&(open.len() - 1)]) {
            let r = shard
                .feed(&open[i], Direction::ToServer, ping.len() as u64, ping)
                .unwrap();
            assert_eq!(r.messages.len(), 1);
        }
        // Ten of the live instance's closed make room for ten more, not
        // eleven.
        for s in open.drain(last..last + 10) {
            shard.close(&s);
        }
        for _ in 0..10 {
            open.push(shard.open(p, &f).expect("room after closing"));
        }
        assert!(matches!(shard.open(p, &f), Err(Fault::SessionLimit { .. })));
        // Once the oldest instance's sessions are all closed it is dropped,
        // and the full one is replaced in turn.
        for s in open.drain(..starts[1]) {
            shard.close(&s);
        }
        open.push(shard.open(p, &f).expect("a new instance"));
        let c = &shard.counters()[0];
        assert_eq!(
            (c.instances_created, c.renewals),
            (instances + 1, instances)
        );
        assert_eq!(c.faults.total(), 0);
    });
}

/// A guest that never frees fills its instance whatever its sessions hold
/// (the `LEAK` line keeps 256 KiB; some toolchains' bindings never free a
/// call's arguments, a whole payload per call). At three quarters of the
/// limit the instance is replaced: a session open then stays with the old
/// instance, its state with it, until it closes; new sessions go to the
/// new one. A fault of the old instance ends only its own sessions.
/// Without renewal, 100 leaks (25 MiB) would trap the 8 MiB instance
/// again and again, each time ending every session it held.
#[test]
fn an_instance_that_never_frees_is_replaced_before_it_runs_out() {
    bounded(300, || {
        let (mut shard, p) = with_memory("remora-test-lines", 8 << 20);
        let f = flow(7777);
        let line = |shard: &mut Shard, s: &SessionId, at: u64, text: &[u8]| {
            let r: FeedResult = shard.feed(s, Direction::ToServer, at, text).unwrap();
            assert_eq!(r.messages.len(), 1);
            r.messages.to_vec()[0].txn
        };
        let leak = |shard: &mut Shard| {
            let s = shard.open(p, &f).unwrap();
            line(shard, &s, 0, b"LEAK\n");
            shard.close(&s);
        };
        let first = shard.open(p, &f).unwrap();
        assert_eq!(line(&mut shard, &first, 0, b"one\n"), 0);
        let mut leaks = 0;
        while shard.counters()[0].renewals == 0 {
            assert!(leaks < 32, "not renewed after {leaks} leaks");
            leak(&mut shard);
            leaks += 1;
        }
        // 6 MiB of 256 KiB leaks, less what the instance started with.
        assert!(leaks >= 16, "renewed after {leaks} leaks");
        let c = &shard.counters()[0];
        assert_eq!((c.instances_created, c.sessions_open), (2, 1));
        // The first session goes on in the old instance: its next line is
        // its second.
        assert_eq!(line(&mut shard, &first, 4, b"two\n"), 1);
        let second = shard.open(p, &f).unwrap();
        assert_eq!(line(&mut shard, &second, 0, b"a\n"), 0);
        // The old instance runs out: only its session ends, nothing is
        // quarantined, the new instance's session goes on.
        let mut at = 8;
        let fault = loop {
            match shard.feed(&first, Direction::ToServer, at, b"LEAK\n") {
                Ok(_) => at += 5,
                Err(f) => break f,
            }
            assert!(at < 5 * 64, "the old instance never ran out");
        };
        assert_eq!(fault, Fault::Memory);
        assert_eq!(
            shard.feed(&first, Direction::ToServer, at, b"x\n"),
            Err(Fault::Stale)
        );
        assert!(!shard.is_quarantined(p));
        assert_eq!(line(&mut shard, &second, 2, b"b\n"), 1);
        let c = &shard.counters()[0];
        assert_eq!(
            (c.faults.total(), c.faults.memory, c.sessions_open),
            (1, 1, 1)
        );
        shard.close(&second);
        // Leaking on: the instance is replaced each time it fills, and
        // nothing faults.
        for _ in 0..100 {
            leak(&mut shard);
        }
        let c = &shard.counters()[0];
        assert_eq!(c.faults.total(), 1, "{:?}", c.faults);
        assert!(c.renewals >= 4, "{} renewals", c.renewals);
        assert_eq!(c.instances_created, c.renewals + 1);
        assert_eq!(c.sessions_open, 0);
    });
}

#[test]
fn session_from_another_shard_is_stale() {
    bounded(300, || {
        let (rt, ids) = runtime_with(test_config(), &["remora-test-lines"]);
        let mut a = Shard::new(rt.clone());
        let mut b = Shard::new(rt);
        let s = a.open(ids[0], &flow(7777)).unwrap();
        assert_eq!(
            b.feed(&s, Direction::ToServer, 0, b"x\n"),
            Err(Fault::Stale)
        );
        assert_eq!(
            a.feed(&s, Direction::ToServer, 0, b"x\n")
                .unwrap()
                .messages
                .len(),
            1
        );
    });
}

#[test]
fn quarantine_backs_off_then_recovers() {
    bounded(300, || {
        let base = Duration::from_millis(300);
        let cfg = RuntimeConfig {
            quarantine_base: base,
            quarantine_max: base * 4,
            ..test_config()
        };
        let (rt, ids) = runtime_with(cfg, &["remora-test-panic", "remora-test-lines"]);
        let (p, lines) = (ids[0], ids[1]);
        let mut shard = Shard::new(rt);
        let f = flow(7003);
        let fault = |shard: &mut Shard| {
            let s = shard.open(p, &f).unwrap();
            assert!(matches!(
                shard.feed(&s, Direction::ToServer, 0, b"x"),
                Err(Fault::Trap(_))
            ));
            Instant::now()
        };

        // 1st fault: quarantined for `base`.
        let t = fault(&mut shard);
        assert_eq!(
            shard.probe(p, &f, Direction::ToServer, b"x"),
            Err(Fault::Quarantined)
        );
        assert_eq!(shard.open(p, &f).err(), Some(Fault::Quarantined));
        assert!(shard.is_quarantined(p));
        assert!(shard.counters()[p.0 as usize].quarantined_until.is_some());
        // Other plugins are unaffected.
        assert!(shard
            .probe(lines, &flow(7777), Direction::ToServer, b"a")
            .is_ok());
        std::thread::sleep(
            (t + base + Duration::from_millis(20)).saturating_duration_since(Instant::now()),
        );

        // 2nd fault straight after recovering (open succeeds, but the plugin has
        // not been healthy for long): 2 x base.
        let t = fault(&mut shard);
        std::thread::sleep(
            (t + base + Duration::from_millis(50)).saturating_duration_since(Instant::now()),
        );
        assert_eq!(
            shard.probe(p, &f, Direction::ToServer, b"x"),
            Err(Fault::Quarantined)
        );
        std::thread::sleep(
            (t + base * 2 + Duration::from_millis(20)).saturating_duration_since(Instant::now()),
        );

        // Recovered: a fresh instance serves calls.
        assert_eq!(
            shard.probe(p, &f, Direction::ToServer, b"x"),
            Ok(ProbeResult::Yes(100))
        );
        // Healthy for as long as the last quarantine: a success resets the back-off.
        std::thread::sleep(
            (t + base * 4 + Duration::from_millis(20)).saturating_duration_since(Instant::now()),
        );
        assert_eq!(
            shard.probe(p, &f, Direction::ToServer, b"x"),
            Ok(ProbeResult::Yes(100))
        );
        let t = fault(&mut shard);
        std::thread::sleep(
            (t + base + Duration::from_millis(20)).saturating_duration_since(Instant::now()),
        );
        assert_eq!(
            shard.probe(p, &f, Direction::ToServer, b"x"),
            Ok(ProbeResult::Yes(100))
        );

        let c = &shard.counters()[p.0 as usize];
        assert_eq!(c.faults.trap, 3);
        assert_eq!(c.instances_created, 4);
        assert!(c.quarantined_calls >= 3);
        assert!(c.quarantined_until.is_none());
    });
}

#[test]
fn wit_version_mismatch_is_a_clear_error() {
    bounded(300, || {
        init_tracing();
        let path = plugin_path("remora-test-future");
        let mut rt = Runtime::new(test_config()).unwrap();
        let err = format!("{:#}", rt.load_file(&path).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains("targets remora:plugin@0.8.0, host speaks remora:plugin@0.7.x"),
            "{err}"
        );
        assert!(rt.plugins().is_empty());
    });
}

#[test]
fn a_plugin_built_for_the_0_1_contract_is_refused_by_name_and_versions() {
    bounded(300, || {
        init_tracing();
        let path = plugin_path("remora-test-legacy");
        let mut rt = Runtime::new(test_config()).unwrap();
        let err = format!("{:#}", rt.load_file(&path).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains("targets remora:plugin@0.1.0, host speaks remora:plugin@0.7.x"),
            "{err}"
        );
        assert!(rt.plugins().is_empty());
    });
}

#[test]
fn non_components_are_clear_errors() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut rt = Runtime::new(test_config()).unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("text.wasm", b"hello, world", "not a WebAssembly file"),
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "a core WebAssembly module, not a component",
        ),
        (
            "broken.wasm",
            b"\0asm\x0d\0\x01\0\x07\x05",
            "not a valid WebAssembly component",
        ),
        ("missing.wasm", b"", "reading the file"),
    ];
    for (name, bytes, expect) in cases {
        let p = dir.path().join(name);
        if !bytes.is_empty() {
            std::fs::write(&p, bytes).unwrap();
        }
        let err = format!("{:#}", rt.load_file(&p).unwrap_err());
        assert!(err.contains(&p.display().to_string()), "{err}");
        assert!(err.contains(expect), "{err}");
    }
}

#[test]
fn load_dir_sorted_and_names_every_bad_file() {
    bounded(300, || {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let copy = |krate: &str, name: &str| -> PathBuf {
            let to = dir.path().join(name);
            std::fs::copy(plugin_path(krate), &to).unwrap();
            to
        };
        copy("remora-test-loop", "b-loop.wasm");
        copy("remora-test-lines", "a-lines.wasm");
        std::fs::write(dir.path().join("README.txt"), "not a plugin").unwrap();
        let mut rt = Runtime::new(test_config()).unwrap();
        let ids = rt.load_dir(dir.path()).unwrap();
        assert_eq!(ids, vec![PluginId(0), PluginId(1)]);
        let names: Vec<_> = rt.plugins().iter().map(|p| p.info.name.as_str()).collect();
        assert_eq!(names, ["test-lines", "test-loop"]);

        let bad = dir.path().join("c-bad.wasm");
        std::fs::write(&bad, b"nope").unwrap();
        let mut rt = Runtime::new(test_config()).unwrap();
        let err = format!("{:#}", rt.load_dir(dir.path()).unwrap_err());
        assert!(err.contains("c-bad.wasm"), "{err}");

        // Files are prepared side by side; every bad one is named, in file
        // order, whichever thread met it first.
        std::fs::write(dir.path().join("0-bad.wasm"), b"nope").unwrap();
        for _ in 0..4 {
            let mut rt = Runtime::new(test_config()).unwrap();
            let err = format!("{:#}", rt.load_dir(dir.path()).unwrap_err());
            let (first, second) = (err.find("0-bad.wasm"), err.find("c-bad.wasm"));
            assert!(
                err.starts_with("2 of 4 plugin files failed: ")
                    && first.is_some()
                    && first < second,
                "{err}"
            );
        }
    });
}

#[test]
fn default_config_pooling_engine() {
    init_tracing();
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(PathBuf::new()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    // The pooling allocator works on a normal 64-bit Linux; where the address
    // space is restricted (ulimit -v) the runtime falls back to on-demand
    // allocation, which is logged, not an error.
    eprintln!("pooling allocator: {}", rt.pooling());
    if std::env::var_os("REMORA_EXPECT_POOLING").is_some() {
        assert!(rt.pooling());
    }
}

#[test]
fn a_batch_runs_calls_on_many_sessions_in_one_crossing() {
    use remora_runtime::wit::CallKind;
    use remora_runtime::Call;
    bounded(300, || {
        let (rt, ids) = runtime_with(test_config(), &["remora-test-lines"]);
        let p = ids[0];
        let mut shard = Shard::new(rt.clone());
        let a = shard.open(p, &flow(7777)).unwrap();
        let b = shard.open(p, &flow(7777)).unwrap();
        let call = |session, kind, dir, base, len| Call {
            session,
            kind,
            dir,
            base,
            len,
        };
        // a: "one\npa" then, after b's call, "rt\n" continuing from "pa".
        let data = b"one\npaxyz\nrt\n";
        let calls = [
            call(&a, CallKind::Feed, Direction::ToServer, 0, 6),
            call(&b, CallKind::Feed, Direction::ToServer, 0, 4),
            call(&a, CallKind::More, Direction::ToServer, 6, 3),
            call(&a, CallKind::End, Direction::ToServer, 0, 0),
            call(&b, CallKind::Close, Direction::ToServer, 0, 0),
        ];
        let before = shard.counters()[0].calls;
        let answers = shard.run(p, &calls, data).unwrap();
        assert_eq!(
            shard.counters()[0].calls - before,
            1,
            "one crossing for the batch"
        );
        assert_eq!(answers.len(), 5);
        let r0 = answers[0].as_ref().unwrap();
        assert_eq!((r0.consumed, r0.messages.len()), (4, 1));
        assert_eq!(
            span_text(&r0.messages.to_vec()[0].fields[0].value, b"one\npa"),
            "one"
        );
        let r1 = answers[1].as_ref().unwrap();
        assert_eq!(
            span_text(&r1.messages.to_vec()[0].fields[0].value, b"xyz\n"),
            "xyz"
        );
        // The continuation's input is the carried "pa" then "rt\n".
        let r2 = answers[2].as_ref().unwrap();
        assert_eq!(r2.consumed, 5);
        assert_eq!(r2.messages.to_vec()[0].start, 4);
        assert_eq!(
            span_text(&r2.messages.to_vec()[0].fields[0].value, b"part\n"),
            "part"
        );
        assert!(answers[3].is_ok() && answers[4].is_ok());
        assert_eq!(shard.counters()[0].sessions_open, 1, "b was closed");

        // A session of another generation is answered stale; the rest run.
        let other = Shard::new(rt.clone()).open(p, &flow(7777)).unwrap();
        let calls = [
            call(&other, CallKind::Feed, Direction::ToServer, 0, 2),
            call(&a, CallKind::Feed, Direction::ToClient, 0, 3),
        ];
        let answers = shard.run(p, &calls, b"x\nok\n").unwrap();
        assert!(matches!(answers[0], Err(Fault::Stale)), "{:?}", answers[0]);
        let r = answers[1].as_ref().unwrap();
        assert_eq!(
            span_text(&r.messages.to_vec()[0].fields[0].value, b"ok\n"),
            "ok"
        );

        // A continuation after a feed that consumed all it had: nothing is
        // carried, its input is its own bytes (the SDK takes them where
        // they lie in the batch instead of copying them).
        let c = shard.open(p, &flow(7777)).unwrap();
        let calls = [
            call(&c, CallKind::Feed, Direction::ToServer, 0, 4),
            call(&c, CallKind::Feed, Direction::ToClient, 0, 3),
            call(&c, CallKind::More, Direction::ToServer, 4, 7),
        ];
        let answers = shard.run(p, &calls, b"one\nok\ntwo\nthr").unwrap();
        let r = answers[2].as_ref().unwrap();
        assert_eq!(r.consumed, 4, "\"thr\" is left for later");
        let m = &r.messages.to_vec()[0];
        assert_eq!(m.start, 4);
        assert_eq!(span_text(&m.fields[0].value, b"two\nthr"), "two");
        shard.close(&c);
        shard.close(&a);
        assert_eq!(shard.counters()[0].sessions_open, 0);
    });
}
