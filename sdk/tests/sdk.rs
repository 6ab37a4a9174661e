//! The SDK driven natively with a tiny line protocol: one message per line,
//! a length-prefixed "BLOB n" whose payload is skipped.

use remora_sdk::native::{clear_config, feed_once, set_config, take_logs, Harness};
use remora_sdk::prelude::*;

const F_LINE: u16 = 0;
const F_LEN: u16 = 1;

struct Lines;
struct LinesSession {
    n: u64,
    max: usize,
}

impl Dissector for Lines {
    type Session = LinesSession;
    fn info() -> PluginInfo {
        PluginInfo::new("lines", "0.1.0")
            .protocol(
                ProtocolDecl::tcp("Lines", "lines")
                    .ports(&[7])
                    .summaries("{line}", ""),
            )
            .field(
                FieldDecl::new(F_LINE, "line", FieldType::Str)
                    .top_level()
                    .doc("the line"),
            )
            .field(FieldDecl::new(F_LEN, "len", FieldType::Int))
    }
    fn probe(_: &FlowInfo, _: Direction, data: &[u8]) -> Probe {
        if data.is_ascii() {
            Probe::Yes(10)
        } else {
            Probe::No
        }
    }
    fn session(_: &FlowInfo) -> LinesSession {
        remora_sdk::log::info!("new session, max {}", config_or("max-line", 64usize));
        LinesSession {
            n: 0,
            max: config_or("max-line", 64usize),
        }
    }
}

impl Session for LinesSession {
    fn feed(&mut self, _dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let mut c = input.cursor(0);
        loop {
            let start = c.pos();
            let Some(line) = c.line() else {
                if c.remaining() > self.max {
                    out.error("line too long");
                    return Progress::consumed(input.len());
                }
                return Progress::need(start, c.remaining() + 1);
            };
            let text = &input.data[line.clone()];
            if let Some(n) = text.strip_prefix(b"BLOB ") {
                let n: u64 = std::str::from_utf8(n)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                out.standalone(self.n, input.offset(start))
                    .field(F_LINE, input.span(line))
                    .int(F_LEN, n as i64);
                self.n += 1;
                let here = (c.remaining() as u64).min(n);
                c.advance(here as usize);
                if here < n {
                    return Progress::skip(c.pos(), n - here);
                }
                continue;
            }
            out.standalone(self.n, input.offset(start))
                .field(F_LINE, input.span(line));
            self.n += 1;
        }
    }
}

remora_sdk::export_dissector!(Lines);

fn line(m: &Message) -> String {
    match m.value(F_LINE) {
        Some(Value::Str(Text::Owned(s))) => s.clone(),
        v => panic!("{v:?}"),
    }
}

#[test]
fn info_builder() {
    let i = Lines::info();
    assert_eq!(i.field_named("line").unwrap().id, F_LINE);
    assert!(i.field_named("line").unwrap().top_level);
    assert!(!i.field_named("len").unwrap().top_level);
    let mut j = PluginInfo::new("x", "1");
    assert_eq!(j.add_field(FieldDecl::new(99, "a", FieldType::Str)), 0);
    assert_eq!(j.add_field(FieldDecl::new(99, "b", FieldType::Int)), 1);
}

#[test]
fn harness_follows_consumed_need_and_skip() {
    clear_config();
    let mut h = Harness::<Lines>::tcp(7);
    h.feed(Direction::ToServer, b"hello\nwor");
    assert_eq!(h.messages.len(), 1);
    assert_eq!(h.pending(Direction::ToServer), 3);
    h.feed(Direction::ToServer, b"ld\r\nBLOB 10\n0123");
    // the 6 remaining blob bytes are dropped by the harness, unseen
    h.feed(Direction::ToServer, b"456789after\n");
    let lines: Vec<String> = h.messages.iter().map(line).collect();
    assert_eq!(lines, ["hello", "world", "BLOB 10", "after"]);
    assert_eq!(h.bytes_skipped, 6);
    assert_eq!(h.messages[3].start, 6 + 7 + 8 + 10);
    assert!(h.errors.is_empty());
}

#[test]
fn byte_by_byte_same_as_whole() {
    let data = b"a\nBLOB 3\nxyzb\nccc\n";
    let mut whole = Harness::<Lines>::tcp(7);
    whole.feed(Direction::ToClient, data);
    let mut bytes = Harness::<Lines>::tcp(7);
    let cuts: Vec<usize> = (1..data.len()).collect();
    bytes.feed_split(Direction::ToClient, data, &cuts);
    assert_eq!(whole.messages, bytes.messages);
}

#[test]
fn config_and_log_are_thread_local_natively() {
    set_config("max-line", "4");
    let _ = take_logs();
    let mut h = Harness::<Lines>::tcp(7);
    assert!(take_logs()[0].1.contains("max 4"));
    h.feed(Direction::ToServer, b"toolongline");
    assert_eq!(h.errors, ["line too long"]);
    clear_config();
    assert_eq!(remora_sdk::config("max-line"), None);
}

#[test]
fn raw_feed_gives_spans() {
    let mut s = Lines::session(&FlowInfo::tcp_test(1, 7));
    let mut out = Output::new();
    let r = feed_once(&mut s, Direction::ToServer, 1000, b"abc\nde", &mut out);
    assert_eq!((r.consumed, r.need, r.skip), (4, 3, 0));
    assert_eq!(r.messages[0].start, 1000);
    assert_eq!(
        r.messages[0].fields[0].value,
        Value::Str(Text::Span(Span { offset: 0, len: 3 }))
    );
}

#[test]
fn input_and_cursor_helpers() {
    let data = b"GET /x HTTP/1.1\r\n\x00\x01\x02\x03\x04\x05\x06\x07\x08";
    let input = Input::new(50, data);
    let s = std::str::from_utf8(&data[4..6]).unwrap();
    assert_eq!(input.span_of_str(s), Span { offset: 4, len: 2 });
    assert_eq!(input.span_of(b"elsewhere"), Span::default());
    assert_eq!(
        input.span(10..1000),
        Span {
            offset: 10,
            len: data.len() as u32 - 10
        }
    );
    assert_eq!(input.bytes(Span { offset: 0, len: 3 }), b"GET");
    assert_eq!(input.offset(3), 53);
    let mut c = input.cursor(0);
    assert_eq!(c.find_seq(b"HTTP"), Some(7));
    assert_eq!(c.line(), Some(0..15));
    assert_eq!(c.u8(), Some(0));
    assert_eq!(c.u16_be(), Some(0x0102));
    assert_eq!(c.u32_le(), Some(0x0605_0403));
    assert_eq!(c.take(5), None);
    assert_eq!(c.take(2), Some(&b"\x07\x08"[..]));
    assert!(c.is_empty());
    assert_eq!(c.line(), None);
}

#[test]
fn output_take_and_finish() {
    let mut out = Output::new();
    out.request(3, 10)
        .field(0, "GET")
        .pair(1, "k", "v")
        .body(Body {
            data: b"x".to_vec(),
            original_len: 1,
            ..Default::default()
        });
    out.error("first");
    out.error("second");
    let r = out.finish(Progress::need(5, 9));
    assert_eq!((r.consumed, r.need), (5, 9));
    assert_eq!(r.error.as_deref(), Some("first"));
    assert_eq!(r.messages[0].kind, MessageKind::Request);
    assert_eq!(r.messages[0].body.as_ref().unwrap().data, b"x");
    let (m, e) = out.take();
    assert!(m.is_empty() && e.is_none());
}
