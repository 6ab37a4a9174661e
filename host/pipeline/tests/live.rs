//! The pipeline on a live capture of the loopback interface with the real
//! HTTP/1 plugin: entries come out promptly while the capture runs, live
//! stats move, idle flows expire on wall-clock time, and a cancel stops the
//! run quickly and still flushes what was captured. Needs CAP_NET_RAW (the
//! tests run as root); each test filters on a port it bound itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use remora_dissect::catalog_from_runtime;
use remora_entry::{Catalog, Entry, ValueRef};
use remora_flow::CloseReason;
use remora_pipeline::{LiveStats, PipelineConfig, Summary};
use remora_runtime::testing::builtin_plugins;
use remora_runtime::{Runtime, RuntimeConfig, Shard};
use remora_source::{LiveCapture, LiveConfig};

fn http1_runtime() -> Arc<Runtime> {
    let (_, wasm) = builtin_plugins()
        .into_iter()
        .find(|(name, _)| name == "remora-http1")
        .expect("the http1 plugin is built");
    let mut rt = Runtime::new(RuntimeConfig::default()).unwrap();
    rt.load_file(&wasm).unwrap();
    Arc::new(rt)
}

/// An HTTP/1.1 server on 127.0.0.1 that answers every request on a
/// keep-alive connection whose path does not start with `/silent`.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || serve(conn));
        }
    });
    port
}

fn serve(conn: TcpStream) {
    let mut out = conn.try_clone().unwrap();
    let mut lines = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if lines.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        // Headers up to the blank line; requests here have no body.
        loop {
            let mut h = String::new();
            if lines.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
        }
        if request_line.contains(" /silent") {
            continue;
        }
        let body = "hello from remora";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn get(client: &mut TcpStream, path: &str) {
    write!(client, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
}

fn read_response(client: &mut TcpStream) {
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while !got.ends_with(b"hello from remora") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "server closed");
        got.extend_from_slice(&buf[..n]);
    }
}

struct LiveRun {
    entries: mpsc::Receiver<Entry>,
    stats: Arc<LiveStats>,
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<Summary>,
    catalog: Arc<Catalog>,
}

fn start(port: u16, tweak: impl FnOnce(&mut PipelineConfig)) -> LiveRun {
    let rt = http1_runtime();
    let catalog = Arc::new(catalog_from_runtime(&rt));
    let mut capture = LiveCapture::open(&LiveConfig {
        interface: "lo".into(),
        bpf: Some(format!("tcp port {port}")),
        buffer_bytes: 4 << 20,
        ..LiveConfig::default()
    })
    .unwrap();
    let stats = LiveStats::new();
    let cancel = Arc::new(AtomicBool::new(false));
    let mut cfg = PipelineConfig {
        threads: 2,
        cancel: Some(cancel.clone()),
        stats: Some(stats.clone()),
        ..PipelineConfig::default()
    };
    tweak(&mut cfg);
    let (tx, entries) = mpsc::channel();
    let cat = catalog.clone();
    let handle = std::thread::spawn(move || {
        let mut sink = move |e: Entry| {
            let _ = tx.send(e);
            None
        };
        remora_pipeline::run(
            &mut capture,
            &cfg,
            || Shard::new(rt.clone()),
            cat,
            &mut sink,
            &mut |_| {},
        )
    });
    LiveRun {
        entries,
        stats,
        cancel,
        handle,
        catalog,
    }
}

impl LiveRun {
    /// Cancels and returns the summary and how long stopping took.
    fn stop(self) -> (Summary, Duration, mpsc::Receiver<Entry>) {
        let asked = Instant::now();
        self.cancel.store(true, Ordering::Relaxed);
        let summary = self.handle.join().expect("pipeline thread");
        (summary, asked.elapsed(), self.entries)
    }

    fn wait_for(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn has_str(e: &Entry, needle: &str) -> bool {
    [&e.request, &e.response].iter().any(|m| {
        m.as_ref().is_some_and(|m| {
            m.fields.iter().any(|f| match f.value {
                ValueRef::Str(s) => s.contains(needle),
                ValueRef::Pair(a, b) => a.contains(needle) || b.contains(needle),
                _ => false,
            })
        })
    })
}

#[test]
fn an_exchange_yields_its_entry_within_a_second_and_cancel_flushes_the_rest() {
    let port = http_server();
    let run = start(port, |_| {});

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    get(&mut client, "/live/first");
    read_response(&mut client);
    let answered = Instant::now();

    // The connection stays open: only the live flush can bring this out.
    let entry = run
        .entries
        .recv_timeout(Duration::from_secs(1))
        .expect("the entry within 1 s of the response");
    let latency = answered.elapsed();
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    assert!(entry.complete(), "{entry:?}");
    assert!(has_str(&entry, "/live/first"), "{entry:?}");
    assert_eq!(run.catalog.plugin(entry.plugin).name, "http1");
    assert_eq!(entry.server.port, port);

    // Stats move while it runs: the exchange is at least handshake + two
    // data segments, and the flow is listed, still open.
    run.wait_for("live stats to show the exchange", || {
        let s = run.stats.snapshot();
        let f = s.flows();
        s.reader.running
            && s.reader.live
            && s.reader.source.frames >= 5
            && f.packets >= 5
            && s.dissect().entries >= 1
            && s.dissect().plugin_calls >= 1
    });
    let snap = run.stats.snapshot();
    assert_eq!(snap.shards.len(), 2);
    assert_eq!(snap.reader.source_name, "lo");
    assert_eq!(snap.flows().flows_active, 1, "{:?}", snap.flows());
    let flows = run.stats.recent_flows();
    let flow = flows
        .iter()
        .find(|f| f.server.port == port)
        .unwrap_or_else(|| panic!("flow to {port} in {flows:?}"));
    assert_eq!(flow.closed, None);
    assert!(flow.packets >= 5 && flow.bytes > 40, "{flow:?}");
    assert!(flow.last_seen >= flow.first_seen);

    // A request that is never answered, captured, then a shutdown: its
    // entry must come out of the final flush, not be lost.
    let frames_before = run.stats.snapshot().reader.source.frames;
    get(&mut client, "/silent/second");
    run.wait_for("the unanswered request to be captured", || {
        run.stats.snapshot().reader.source.frames > frames_before
    });
    assert!(
        run.entries.try_recv().is_err(),
        "nothing else is finished yet"
    );
    let stats = run.stats.clone();
    let (summary, took, entries) = run.stop();
    assert!(took < Duration::from_millis(500), "stopping took {took:?}");
    let rest: Vec<Entry> = entries.try_iter().collect();
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(has_str(&rest[0], "/silent/second"), "{:?}", rest[0]);
    assert!(rest[0].response.is_none());

    assert!(summary.source_error.is_none(), "{:?}", summary.source_error);
    assert_eq!(summary.entries, 2);
    assert!(summary.packets >= 6, "{summary:?}");
    assert_eq!(summary.source.frames, summary.packets);
    let after = stats.snapshot();
    assert!(!after.reader.running);
    assert_eq!(after.dissect().entries, 2);
    let closed = stats.recent_flows();
    let flow = closed.iter().find(|f| f.server.port == port).unwrap();
    assert_eq!(flow.closed, Some(CloseReason::EndOfInput));
    drop(client);
}

#[test]
fn idle_flows_expire_on_a_quiet_interface() {
    let port = http_server();
    let run = start(port, |cfg| {
        cfg.threads = 1;
        cfg.flow.tcp_idle_timeout_us = 300_000;
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    get(&mut client, "/idle");
    read_response(&mut client);
    // No packet after this one: only wall-clock ticks can expire the flow.
    run.wait_for("the idle flow to close", || {
        run.stats
            .recent_flows()
            .iter()
            .any(|f| f.server.port == port && f.closed == Some(CloseReason::Idle))
    });
    let (summary, took, entries) = run.stop();
    assert!(took < Duration::from_millis(500), "stopping took {took:?}");
    assert_eq!(entries.try_iter().count(), 1);
    assert_eq!(summary.flows.flows_closed.get(CloseReason::Idle), 1);
    drop(client);
}

#[test]
fn cancel_stops_a_quiet_capture_promptly() {
    let quiet = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = quiet.local_addr().unwrap().port();
    let run = start(port, |_| {});
    run.wait_for("the run to publish", || run.stats.snapshot().reader.running);
    std::thread::sleep(Duration::from_millis(250));
    let (summary, took, _) = run.stop();
    assert!(took < Duration::from_millis(300), "stopping took {took:?}");
    assert_eq!(summary.packets, 0);
    assert!(summary.source_error.is_none());
}
