//! The stage against a native fake backend: buffering, skipping, pairing and
//! fault handling without Wasm in the way (the Wasm path is tested end to end
//! in the pipeline and e2e tests).

use std::collections::HashMap;
use std::sync::Arc;

use remora_core::{Direction, Endpoint, Timestamp, Transport};
use remora_entry::{
    Catalog, Entry, FieldSchema, FieldType, PluginSchema, ProtocolSchema, ValueRef,
};
use remora_flow::{CloseReason, FlowEvent, FlowInfo, FlowStats};
use remora_runtime::wit;

use crate::{Backend, BackendFault, DissectConfig, DissectStage};

/// A line protocol: each `\n`-terminated line is a message (to-server lines
/// are requests, to-client lines responses, txn = line number per direction).
/// `SKIP n` asks the host to drop the next n bytes; `BOOM` faults; `ERR` is a
/// parse error; `SWITCH name offset` switches to protocol `name` after this
/// line (to-server) and at `offset` (to-client), consuming nothing beyond.
/// (session, previous protocol, params) of one takeover.
type Takeover = (u32, String, Vec<(String, String)>);

/// One call of a recorded batch: (session, direction, kind, bytes fed).
type Fed = (u32, Direction, wit::CallKind, Vec<u8>);

#[derive(Default)]
struct Lines {
    sessions: HashMap<u32, [u64; 2]>,
    next: u32,
    fed_bytes: usize,
    calls: usize,
    probes: usize,
    /// Each plugin's confidence in a line (50 when absent).
    confidence: HashMap<u16, u8>,
    takeovers: Vec<Takeover>,
    /// The feeds of each `run` batch, in order.
    batches: Vec<Vec<Fed>>,
}

impl Backend for Lines {
    type Session = u32;

    fn probe(
        &mut self,
        plugin: u16,
        _: &wit::FlowInfo,
        _: Direction,
        data: &[u8],
    ) -> Result<wit::ProbeResult, BackendFault> {
        self.probes += 1;
        let confidence = self.confidence.get(&plugin).copied().unwrap_or(50);
        Ok(match data.first() {
            Some(b) if b.is_ascii_alphabetic() => wit::ProbeResult::Yes(confidence),
            Some(_) => wit::ProbeResult::No,
            None => wit::ProbeResult::NeedMore,
        })
    }

    fn open(&mut self, _: u16, _: &wit::FlowInfo) -> Result<u32, BackendFault> {
        self.next += 1;
        self.sessions.insert(self.next, [0; 2]);
        Ok(self.next)
    }

    fn takeover(
        &mut self,
        s: &u32,
        previous: &str,
        params: &[(String, String)],
    ) -> Result<(), BackendFault> {
        self.takeovers
            .push((*s, previous.to_owned(), params.to_vec()));
        Ok(())
    }

    fn feed(
        &mut self,
        s: &u32,
        dir: Direction,
        base: u64,
        data: &[u8],
    ) -> Result<wit::FeedResult, BackendFault> {
        self.calls += 1;
        self.fed_bytes += data.len();
        let mut res = wit::FeedResult {
            consumed: 0,
            skip: 0,
            need: 0,
            messages: wit::Messages::default(),
            error: None,
            switch: None,
        };
        let mut pos = 0;
        while let Some(nl) = data[pos..].iter().position(|&b| b == b'\n') {
            let line = &data[pos..pos + nl];
            let start = pos;
            pos += nl + 1;
            res.consumed = pos as u32;
            if line == b"BOOM" {
                return Err(BackendFault::new("boom"));
            }
            if let Some(rest) = line.strip_prefix(b"SWITCH ") {
                let rest = std::str::from_utf8(rest).unwrap();
                let (name, to_client) = rest.split_once(' ').unwrap();
                res.switch = Some(Box::new(wit::ProtocolSwitch {
                    protocol: name.into(),
                    to_server: base + pos as u64,
                    to_client: to_client.parse().unwrap(),
                    params: vec![("k".into(), "v".into())],
                }));
                break;
            }
            if line == b"ERR" {
                res.error = Some("bad line".into());
                continue;
            }
            let counters = self.sessions.get_mut(s).unwrap();
            let txn = counters[dir.index()];
            counters[dir.index()] += 1;
            res.messages.push(&wit::Message {
                kind: match dir {
                    Direction::ToServer => wit::MessageKind::Request,
                    Direction::ToClient => wit::MessageKind::Response,
                },
                txn,
                start: base + start as u64,
                fields: vec![wit::Field {
                    id: 0,
                    value: wit::Value::Str(wit::Text::Span(wit::Span {
                        offset: start as u32,
                        len: nl as u32,
                    })),
                }],
                body: None,
            });
            if let Some(n) = line.strip_prefix(b"SKIP ") {
                res.skip = std::str::from_utf8(n).unwrap().parse().unwrap();
                break;
            }
        }
        Ok(res)
    }

    fn run(
        &mut self,
        _: u16,
        jobs: &[crate::Job<'_, u32>],
        data: &[u8],
    ) -> Vec<Result<wit::FeedResult, BackendFault>> {
        let mut pos = 0;
        let mut batch = Vec::new();
        for j in jobs {
            let n = match j.kind {
                wit::CallKind::Feed | wit::CallKind::More => j.len as usize,
                _ => 0,
            };
            batch.push((*j.session, j.dir, j.kind, data[pos..pos + n].to_vec()));
            pos += n;
        }
        assert_eq!(pos, data.len(), "the batch's data is exactly its feeds'");
        self.batches.push(batch);
        crate::backend::run_one_by_one(self, jobs, data)
    }

    fn gap(&mut self, _: &u32, _: Direction, _: u64) -> Result<wit::FeedResult, BackendFault> {
        Ok(wit::FeedResult {
            consumed: 0,
            skip: 0,
            need: 0,
            messages: wit::Messages::default(),
            error: None,
            switch: None,
        })
    }

    fn end(&mut self, _: &u32, _: Direction) -> Result<wit::FeedResult, BackendFault> {
        Ok(wit::FeedResult {
            consumed: 0,
            skip: 0,
            need: 0,
            messages: wit::Messages::default(),
            error: None,
            switch: None,
        })
    }

    fn close(&mut self, s: &u32) {
        self.sessions.remove(s);
    }
}

fn catalog(transport: Transport) -> Arc<Catalog> {
    Arc::new(Catalog {
        plugins: vec![PluginSchema::new(
            "lines".into(),
            "0".into(),
            vec![ProtocolSchema {
                name: "LINES".into(),
                flag: "lines".into(),
                transport,
                ports: vec![7777],
                request_summary: "{line}".into(),
                response_summary: "{line}".into(),
            }],
            vec![FieldSchema {
                id: 0,
                name: "line".into(),
                ty: FieldType::Str,
                top_level: true,
                doc: String::new(),
            }],
        )],
    })
}

struct Harness {
    stage: DissectStage<Lines>,
    flow: FlowInfo,
    entries: Vec<Entry>,
    offsets: [u64; 2],
    /// Flush after every event (off: only when a test says so).
    auto_flush: bool,
}

impl Harness {
    fn new() -> Self {
        Self::with_transport(Transport::Tcp)
    }

    fn with_transport(transport: Transport) -> Self {
        let client = Endpoint::new("10.0.0.1".parse().unwrap(), 40000);
        let server = Endpoint::new("10.0.0.2".parse().unwrap(), 7777);
        let flow = FlowInfo {
            id: 1,
            transport,
            client,
            server,
            first_seen: Timestamp(0),
            syn_seen: true,
        };
        let mut h = Harness {
            stage: DissectStage::new(
                Lines::default(),
                catalog(transport),
                DissectConfig::default(),
            ),
            flow,
            entries: vec![],
            offsets: [0; 2],
            auto_flush: true,
        };
        let flow = h.flow.clone();
        h.event(FlowEvent::Open { flow: &flow });
        h
    }

    /// One event, then its queued calls at once (as if each event ended a
    /// batch window).
    fn event(&mut self, ev: FlowEvent<'_>) {
        let entries = &mut self.entries;
        self.stage.on_event(ev, &mut |e| entries.push(e));
        if self.auto_flush {
            self.stage.flush(&mut |e| entries.push(e));
        }
    }

    /// Calls run only at `flush`, as in the pipeline.
    fn batched() -> Self {
        let mut h = Self::new();
        h.auto_flush = false;
        h
    }

    /// Every batch the backend ran, as (direction, kind, text) per call.
    fn batches(&self) -> Vec<Vec<(Direction, wit::CallKind, &str)>> {
        self.stage
            .backend()
            .batches
            .iter()
            .map(|b| fed(b))
            .collect()
    }

    fn flush(&mut self) {
        let entries = &mut self.entries;
        self.stage.flush(&mut |e| entries.push(e));
    }

    fn send(&mut self, dir: Direction, ts: i64, data: &[u8]) {
        let flow = self.flow.clone();
        let offset = self.offsets[dir.index()];
        self.offsets[dir.index()] += data.len() as u64;
        self.event(FlowEvent::Data {
            flow: &flow,
            dir,
            ts: Timestamp(ts),
            offset,
            data,
        });
    }

    fn datagram(&mut self, dir: Direction, ts: i64, data: &[u8]) {
        let flow = self.flow.clone();
        self.event(FlowEvent::Datagram {
            flow: &flow,
            dir,
            ts: Timestamp(ts),
            data,
        });
    }

    fn close(&mut self) {
        let flow = self.flow.clone();
        self.event(FlowEvent::Close {
            flow: &flow,
            ts: Timestamp(0),
            reason: CloseReason::Fin,
            stats: FlowStats::default(),
        });
    }

    fn lines(&self) -> Vec<(Option<String>, Option<String>)> {
        let text = |m: &Option<remora_entry::Message>| {
            m.as_ref().map(|m| match m.get(0) {
                Some(ValueRef::Str(s)) => s.to_string(),
                other => panic!("unexpected {other:?}"),
            })
        };
        self.entries
            .iter()
            .map(|e| (text(&e.request), text(&e.response)))
            .collect()
    }
}

fn s(x: &str) -> Option<String> {
    Some(x.to_owned())
}

#[test]
fn requests_pair_with_responses_by_txn() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 100, b"get a\nget b\n");
    h.send(Direction::ToClient, 250, b"A\n");
    h.send(Direction::ToClient, 300, b"B\n");
    h.close();
    assert_eq!(h.lines(), vec![(s("get a"), s("A")), (s("get b"), s("B"))]);
    assert!(h.entries.iter().all(|e| e.complete()));
    assert_eq!(h.entries[0].elapsed_us(), 150);
}

#[test]
fn partial_message_is_buffered_by_the_host_until_complete() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"hel");
    h.send(Direction::ToServer, 2, b"lo wor");
    h.send(Direction::ToServer, 3, b"ld\n");
    h.send(Direction::ToClient, 4, b"ok\n");
    h.close();
    assert_eq!(h.lines(), vec![(s("hello world"), s("ok"))]);
    // the request's time is that of its first byte
    assert_eq!(h.entries[0].request.as_ref().unwrap().ts, Timestamp(1));
}

#[test]
fn skipped_bytes_never_reach_the_plugin() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"SKIP 1000\n");
    for _ in 0..10 {
        h.send(Direction::ToServer, 2, &[b'x'; 100]);
    }
    h.send(Direction::ToServer, 3, b"after\n");
    h.close();
    let fed = h.stage.backend().fed_bytes;
    assert!(
        fed < 100,
        "skipped body crossed the boundary: {fed} bytes fed"
    );
    assert_eq!(h.lines(), vec![(s("SKIP 1000"), None), (s("after"), None)]);
}

#[test]
fn skip_ending_inside_a_segment_feeds_the_rest_at_once() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"SKIP 3\nxxxnext\n");
    h.close();
    assert_eq!(h.lines(), vec![(s("SKIP 3"), None), (s("next"), None)]);
}

#[test]
fn unanswered_requests_become_incomplete_entries_at_close() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"one\ntwo\n");
    h.send(Direction::ToClient, 2, b"ONE\n");
    h.close();
    assert_eq!(h.lines(), vec![(s("one"), s("ONE")), (s("two"), None)]);
    assert!(!h.entries[1].complete());
    assert_eq!(h.stage.counters().incomplete_entries, 1);
}

#[test]
fn a_fault_drops_the_plugin_for_the_flow_and_keeps_what_was_paired() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"one\n");
    h.send(Direction::ToClient, 2, b"ONE\n");
    h.send(Direction::ToServer, 3, b"two\nBOOM\n");
    h.send(Direction::ToServer, 4, b"three\n");
    h.close();
    assert_eq!(h.lines(), vec![(s("one"), s("ONE"))]);
    let c = h.stage.counters();
    assert_eq!(c.plugin_faults, 1);
    assert_eq!(c.flows_fallen_back, 1);
    assert!(c.raw_bytes >= 6, "bytes after the fault are counted raw");
}

#[test]
fn repeated_parse_errors_fall_back_to_raw() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"ERR\n");
    h.send(Direction::ToServer, 1, b"ERR\n");
    h.send(Direction::ToServer, 1, b"ERR\n");
    h.send(Direction::ToServer, 1, b"fine\n");
    h.close();
    assert!(h.entries.is_empty());
    assert_eq!(h.stage.counters().parse_errors, 3);
    assert_eq!(h.stage.counters().flows_fallen_back, 1);
}

#[test]
fn unclaimed_flow_is_counted_raw() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"\x00\x01binary");
    h.close();
    assert!(h.entries.is_empty());
    assert_eq!(h.stage.counters().flows_raw, 1);
    assert_eq!(h.stage.counters().flows_dissected, 0);
}

#[test]
fn a_raw_flow_is_remembered_by_id_only_until_it_closes() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"\x00\x01binary");
    assert_eq!((h.stage.flows_tracked(), h.stage.flows_known_raw()), (0, 1));
    // Later bytes, a gap and the ends count or do nothing; none brings
    // probing back or counts the flow twice.
    h.send(Direction::ToClient, 2, b"hello\n");
    let flow = h.flow.clone();
    h.event(FlowEvent::Gap {
        flow: &flow,
        dir: Direction::ToServer,
        offset: 8,
        len: 10,
        ts: Timestamp(3),
    });
    for dir in Direction::BOTH {
        h.event(FlowEvent::End {
            flow: &flow,
            dir,
            ts: Timestamp(4),
        });
    }
    assert_eq!(h.stage.flows_tracked(), 0);
    let c = h.stage.counters();
    assert_eq!((c.raw_bytes, c.plugin_calls), (8 + 6, 1), "one probe only");
    h.close();
    let c = h.stage.counters();
    assert_eq!((c.flows_raw, c.flows_dissected), (1, 0));
    assert_eq!((h.stage.flows_tracked(), h.stage.flows_known_raw()), (0, 0));
    assert!(h.entries.is_empty());
}

/// Ends the harness's flow `a` toward the server before any byte (the end
/// is held), then sends a second flow `b`'s first bytes, which apply it.
fn held_end_then_another_flows_bytes(h: &mut Harness) -> (FlowInfo, FlowInfo) {
    let a = h.flow.clone();
    let b = FlowInfo {
        id: 2,
        client: Endpoint::new("10.0.0.3".parse().unwrap(), 40001),
        ..a.clone()
    };
    h.event(FlowEvent::End {
        flow: &a,
        dir: Direction::ToServer,
        ts: Timestamp(1),
    });
    assert_eq!(h.stage.flows_tracked(), 0, "the end is held");
    h.event(FlowEvent::Data {
        flow: &b,
        dir: Direction::ToServer,
        ts: Timestamp(2),
        offset: 0,
        data: b"hi\n",
    });
    assert_eq!(h.stage.flows_tracked(), 2, "a's held end made its state");
    (a, b)
}

#[test]
fn a_flow_that_probing_settles_raw_at_its_close_is_counted_once() {
    // a's other direction ends inside its close: both ends then settle its
    // probing (raw) there.
    let mut h = Harness::new();
    held_end_then_another_flows_bytes(&mut h);
    h.close();
    let c = h.stage.counters();
    assert_eq!((c.flows_raw, c.flows_dissected), (1, 1));
    assert_eq!(h.stage.flows_known_raw(), 0, "its close forgot it");
    assert_eq!(h.stage.flows_tracked(), 1, "b is still open");
}

#[test]
fn a_flow_without_bytes_holds_no_state_and_closes_raw() {
    let mut h = Harness::new();
    assert_eq!(h.stage.flows_tracked(), 0, "Open alone makes no state");
    h.close();
    let c = h.stage.counters();
    assert_eq!((c.flows_raw, c.flows_dissected, c.plugin_calls), (1, 0, 0));
    assert_eq!(h.stage.flows_tracked(), 0);
    assert!(h.entries.is_empty());
}

#[test]
fn a_flows_first_bytes_make_its_state_and_its_close_drops_it() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"hello\n");
    assert_eq!(h.stage.flows_tracked(), 1);
    h.send(Direction::ToClient, 2, b"world\n");
    h.close();
    assert_eq!(h.stage.flows_tracked(), 0);
    assert_eq!(h.lines(), vec![(s("hello"), s("world"))]);
    let c = h.stage.counters();
    assert_eq!((c.flows_raw, c.flows_dissected), (0, 1));
}

#[test]
fn ends_and_close_of_a_flow_without_bytes_make_no_state() {
    let mut h = Harness::new();
    let flow = h.flow.clone();
    for dir in Direction::BOTH {
        h.event(FlowEvent::End {
            flow: &flow,
            dir,
            ts: Timestamp(1),
        });
        assert_eq!(h.stage.flows_tracked(), 0, "an end waits for the close");
    }
    h.close();
    let c = h.stage.counters();
    assert_eq!((c.flows_raw, c.flows_dissected, c.plugin_calls), (1, 0, 0));
    assert_eq!(h.stage.flows_tracked(), 0);
}

#[test]
fn a_held_end_is_applied_when_another_event_comes_first() {
    let mut h = Harness::new();
    let (a, _) = held_end_then_another_flows_bytes(&mut h);
    // a's other direction ends: with the first end remembered, both are
    // settled without bytes and a is raw at once, before its close.
    h.event(FlowEvent::End {
        flow: &a,
        dir: Direction::ToClient,
        ts: Timestamp(3),
    });
    assert_eq!(h.stage.counters().flows_raw, 1);
    assert_eq!(h.stage.flows_known_raw(), 1);
    h.close();
    assert_eq!(h.stage.counters().flows_raw, 1);
    assert_eq!((h.stage.flows_tracked(), h.stage.flows_known_raw()), (1, 0));
}

#[test]
fn pending_bytes_over_the_cap_fall_back_instead_of_growing() {
    let mut h = Harness::new();
    h.stage.cfg.max_pending = 1000;
    h.send(Direction::ToServer, 1, b"start");
    for _ in 0..20 {
        h.send(Direction::ToServer, 2, &[b'y'; 100]);
    }
    h.close();
    assert_eq!(
        h.stage
            .counters()
            .drops
            .get(remora_core::DropReason::DissectBufferLimit),
        1
    );
    assert_eq!(h.stage.counters().flows_fallen_back, 1);
}

#[test]
fn unpaired_messages_are_bounded_in_bytes() {
    let mut h = Harness::new();
    h.stage.cfg.max_unpaired_bytes = 100;
    let line = "x".repeat(40);
    for _ in 0..5 {
        h.send(Direction::ToServer, 1, format!("{line}\n").as_bytes());
    }
    // 5 x 40 bytes wait for responses that never come: only ~100 bytes may
    // wait, older requests leave early as incomplete entries.
    assert_eq!(h.entries.len(), 3, "{:?}", h.lines());
    assert!(h.entries.iter().all(|e| !e.complete()));
    h.close();
    assert_eq!(h.entries.len(), 5);
}

#[test]
fn datagrams_are_fed_one_per_call_and_paired() {
    let mut h = Harness::with_transport(Transport::Udp);
    h.datagram(Direction::ToServer, 10, b"query one\n");
    h.datagram(Direction::ToServer, 11, b"query two\n");
    h.datagram(Direction::ToClient, 20, b"answer one\n");
    h.close();
    assert_eq!(
        h.lines(),
        vec![(s("query one"), s("answer one")), (s("query two"), None)]
    );
    assert_eq!(h.entries[0].transport, Transport::Udp);
    assert_eq!(h.entries[0].elapsed_us(), 10);
    // the probe's datagram is replayed, then each one is one call
    assert_eq!(h.stage.backend().calls, 3);
}

#[test]
fn datagrams_wait_for_the_flush_and_each_is_a_call_of_its_own() {
    let mut h = Harness::with_transport(Transport::Udp);
    h.auto_flush = false;
    h.datagram(Direction::ToServer, 10, b"query one\n");
    // Consumed by nobody: the next datagram must not start with it.
    h.datagram(Direction::ToServer, 11, b"half");
    h.datagram(Direction::ToServer, 12, b"query two\n");
    h.datagram(Direction::ToClient, 20, b"answer one\n");
    assert!(h.stage.backend().batches.is_empty(), "queued, not run");
    h.flush();
    use wit::CallKind::Feed;
    assert_eq!(
        h.batches(),
        vec![vec![
            (Direction::ToServer, Feed, "query one\n"),
            (Direction::ToServer, Feed, "half"),
            (Direction::ToServer, Feed, "query two\n"),
            (Direction::ToClient, Feed, "answer one\n"),
        ]],
        "one crossing, one call per datagram, in arrival order"
    );
    assert_eq!(h.stage.counters().plugin_batches, 1);
    h.close();
    h.flush();
    assert_eq!(
        h.lines(),
        vec![(s("query one"), s("answer one")), (s("query two"), None)]
    );
    // Each message is stamped with its own datagram's time.
    assert_eq!(h.entries[0].elapsed_us(), 10);
    assert_eq!(h.entries[1].request.as_ref().unwrap().ts, Timestamp(12));
}

#[test]
fn unclaimed_datagrams_are_counted_raw() {
    let mut h = Harness::with_transport(Transport::Udp);
    h.datagram(Direction::ToServer, 1, b"\x00binary");
    h.close();
    assert!(h.entries.is_empty());
    assert_eq!(h.stage.counters().flows_raw, 1);
}

#[test]
fn a_first_packet_larger_than_the_probe_limit_is_replayed_whole() {
    let mut h = Harness::new();
    h.stage.cfg.probe_bytes = 16;
    // One packet: a 40-byte line, then another; the probe sees 16 bytes, the
    // plugin must still get all of it, in line with what follows.
    let first = format!("{}\n{}\n", "a".repeat(40), "b".repeat(30));
    h.send(Direction::ToServer, 1, first.as_bytes());
    h.send(Direction::ToServer, 2, b"tail\n");
    h.close();
    let reqs: Vec<_> = h.lines().into_iter().map(|(q, _)| q.unwrap()).collect();
    assert_eq!(
        reqs,
        vec!["a".repeat(40), "b".repeat(30), "tail".to_owned()]
    );
}

/// One flow sending one line, dissected with these plugins on `backend`.
fn one_line_with(plugins: Vec<PluginSchema>, backend: Lines) -> Harness {
    let catalog = Arc::new(Catalog { plugins });
    let mut stage = DissectStage::new(backend, catalog, DissectConfig::default());
    let mut h = Harness::new();
    std::mem::swap(&mut h.stage, &mut stage);
    let flow = h.flow.clone();
    h.event(FlowEvent::Open { flow: &flow });
    h.send(Direction::ToServer, 1, b"hello\n");
    h.close();
    h
}

#[test]
fn a_port_hinted_plugin_that_says_yes_is_chosen_without_asking_the_others() {
    // Two copies of the line plugin: the first has no port hint, the second
    // hints the flow's port 7777. Only the hinted one is probed.
    let mut plugins = catalog(Transport::Tcp).plugins.clone();
    let mut unhinted = plugins[0].clone();
    unhinted.protocols[0].ports = vec![1];
    plugins.insert(0, unhinted);
    let h = one_line_with(plugins, Lines::default());
    assert_eq!(h.entries.len(), 1);
    assert_eq!(h.entries[0].plugin, 1, "the hinted plugin");
    assert_eq!(
        h.stage.backend().probes,
        1,
        "only the hinted plugin was probed"
    );
}

/// Four copies of the line plugin, none hinting the flow's port, with these
/// confidences: (the plugin chosen, probes made).
fn choose_among_unhinted(confidences: [u8; 4]) -> (u16, usize) {
    let mut plugins = catalog(Transport::Tcp).plugins.clone();
    plugins[0].protocols[0].ports = vec![1];
    let plugins = vec![plugins[0].clone(); 4];
    let backend = Lines {
        confidence: (0..).zip(confidences).collect(),
        ..Lines::default()
    };
    let h = one_line_with(plugins, backend);
    assert_eq!(h.entries.len(), 1);
    (h.entries[0].plugin, h.stage.backend().probes)
}

#[test]
fn without_a_hint_the_most_confident_plugin_wins_and_certainty_ends_the_probing() {
    // Everyone is asked; the highest confidence wins, ties the earlier one.
    assert_eq!(choose_among_unhinted([50, 90, 95, 95]), (2, 4));
    assert_eq!(choose_among_unhinted([50, 50, 50, 50]), (0, 4));
    // A certain answer cannot be beaten: the plugins after it are not asked,
    // and the choice is the same as asking them would make.
    assert_eq!(choose_among_unhinted([50, 100, 100, 95]), (1, 2));
    assert_eq!(choose_among_unhinted([100, 50, 50, 50]), (0, 1));
    assert_eq!(choose_among_unhinted([99, 50, 50, 100]), (3, 4));
}

#[test]
fn a_protocol_switch_hands_the_held_bytes_to_a_new_session() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"a\n");
    h.send(Direction::ToClient, 2, b"A\nrest-");
    // To-client, the switch is at offset 4 ("A\nre|st-"): the new session
    // gets the held bytes from exactly there; to-server, from after the
    // SWITCH line.
    h.send(Direction::ToServer, 3, b"SWITCH LINES 4\nb\n");
    h.send(Direction::ToClient, 4, b"B\n");
    h.close();
    assert_eq!(
        h.lines(),
        vec![(s("a"), s("A")), (s("b"), s("st-B"))],
        "{:?}",
        h.entries
    );
    let c = h.stage.counters();
    assert_eq!((c.protocol_switches, c.switches_unclaimed), (1, 0));
    assert_eq!(c.flows_dissected, 1);
    let b = h.stage.backend();
    assert_eq!(
        b.takeovers,
        vec![(2, "LINES".to_owned(), vec![("k".into(), "v".into())])]
    );
    // The old session was closed at the switch, the new one at the end.
    assert!(b.sessions.is_empty());
}

#[test]
fn a_switch_to_an_undeclared_protocol_leaves_the_rest_raw() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, b"SWITCH NOPE 0\nmore\n");
    h.send(Direction::ToClient, 2, b"x\n");
    h.close();
    assert!(h.entries.is_empty(), "{:?}", h.entries);
    let c = h.stage.counters();
    assert_eq!((c.protocol_switches, c.switches_unclaimed), (0, 1));
    assert_eq!(c.flows_raw, 1);
    assert!(h.stage.backend().sessions.is_empty());
}

#[test]
fn a_plugin_that_keeps_switching_is_stopped() {
    let mut h = Harness::new();
    h.send(Direction::ToServer, 1, &b"SWITCH lines 0\n".repeat(10));
    h.close();
    let c = h.stage.counters();
    assert_eq!(c.protocol_switches as u8, super::MAX_SWITCHES_PER_FLOW);
    assert_eq!(c.switches_unclaimed, 1);
}

fn fed(batch: &[Fed]) -> Vec<(Direction, wit::CallKind, &str)> {
    batch
        .iter()
        .map(|(_, d, k, b)| (*d, *k, std::str::from_utf8(b).unwrap()))
        .collect()
}

#[test]
fn queued_calls_wait_for_the_flush_and_cross_in_one_batch() {
    let mut h = Harness::batched();
    h.send(Direction::ToServer, 1, b"a");
    h.send(Direction::ToServer, 2, b"b\n");
    h.send(Direction::ToClient, 3, b"A\n");
    assert!(
        h.stage.backend().batches.is_empty(),
        "nothing runs before the flush"
    );
    assert!(h.entries.is_empty());
    h.flush();
    let batches = &h.stage.backend().batches;
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(
        fed(&batches[0]),
        vec![
            (Direction::ToServer, wit::CallKind::Feed, "ab\n"),
            (Direction::ToClient, wit::CallKind::Feed, "A\n")
        ],
        "one call per direction, bytes coalesced, in arrival order"
    );
    assert_eq!(h.lines(), vec![(s("ab"), s("A"))]);
    // The first packet's time, not the flush's, stamps the request.
    assert_eq!(h.entries[0].request.as_ref().unwrap().ts, Timestamp(1));
}

#[test]
fn bytes_after_the_other_directions_call_continue_in_the_same_batch() {
    let mut h = Harness::batched();
    h.send(Direction::ToServer, 1, b"a\n");
    h.send(Direction::ToClient, 2, b"A\n");
    // A second request after the response: it cannot join the first call
    // (the plugin would see it before the response), so it continues in a
    // call of its own after the response's; likewise the second response.
    h.send(Direction::ToServer, 3, b"b");
    h.send(Direction::ToServer, 4, b"\n");
    h.send(Direction::ToClient, 5, b"B\n");
    h.flush();
    let batches = h.batches();
    use wit::CallKind::{Feed, More};
    assert_eq!(
        batches,
        vec![vec![
            (Direction::ToServer, Feed, "a\n"),
            (Direction::ToClient, Feed, "A\n"),
            (Direction::ToServer, More, "b\n"),
            (Direction::ToClient, More, "B\n"),
        ]]
    );
    assert_eq!(h.lines(), vec![(s("a"), s("A")), (s("b"), s("B"))]);
    assert_eq!(h.entries[1].request.as_ref().unwrap().ts, Timestamp(3));
}

#[test]
fn a_continuation_starts_with_what_the_earlier_call_left() {
    let mut h = Harness::batched();
    // "par" is an unfinished line: the first call leaves it, the
    // continuation completes it with "tial\n".
    h.send(Direction::ToServer, 1, b"a\npar");
    h.send(Direction::ToClient, 2, b"A\n");
    h.send(Direction::ToServer, 3, b"tial\n");
    h.flush();
    // The host dropped what the plugin consumed, in both calls: the next
    // bytes are offered alone.
    h.send(Direction::ToServer, 4, b"c\n");
    h.flush();
    let last = h.stage.backend().batches.last().unwrap().clone();
    assert_eq!(
        fed(&last),
        vec![(Direction::ToServer, wit::CallKind::Feed, "c\n")]
    );
    h.close();
    h.flush();
    assert_eq!(
        h.lines(),
        vec![(s("a"), s("A")), (s("partial"), None), (s("c"), None)]
    );
}

#[test]
fn a_skip_asked_for_by_the_first_call_drops_the_continuations_bytes() {
    let mut h = Harness::batched();
    h.send(Direction::ToServer, 1, b"SKIP 5\n");
    h.send(Direction::ToClient, 2, b"A\n");
    // 5 bytes to drop: "12345", then a line.
    h.send(Direction::ToServer, 3, b"12345x\n");
    h.close();
    h.flush();
    let reqs: Vec<_> = h.lines().into_iter().map(|(q, _)| q).collect();
    assert_eq!(reqs, vec![s("SKIP 5"), s("x")]);
}

#[test]
fn close_runs_in_the_batch_after_the_flows_calls() {
    let mut h = Harness::batched();
    h.send(Direction::ToServer, 1, b"a\n");
    h.send(Direction::ToClient, 2, b"A\n");
    h.send(Direction::ToServer, 3, b"b\n");
    h.close();
    assert!(h.entries.is_empty(), "the close waits for the batch");
    h.flush();
    assert_eq!(h.lines(), vec![(s("a"), s("A")), (s("b"), None)]);
    let batches = h.batches();
    use wit::CallKind::{Close, End, Feed, More};
    assert_eq!(
        batches,
        vec![vec![
            (Direction::ToServer, Feed, "a\n"),
            (Direction::ToClient, Feed, "A\n"),
            (Direction::ToServer, More, "b\n"),
            (Direction::ToServer, End, ""),
            (Direction::ToClient, End, ""),
            (Direction::ToServer, Close, ""),
        ]],
        "one crossing for the flow's bytes, ends and close"
    );
    assert!(
        h.stage.backend().sessions.is_empty(),
        "the session was closed"
    );
}
