//! A trivial, well-behaved dissector used by the host's tests and benches.
//!
//! Protocol `LINES` on TCP port 7777: every `\n`-terminated line sent to the
//! server is a request, every line sent to the client a response; the n-th
//! line of each direction has `txn` n, so request n pairs with response n.
//! The line `WHO` is answered, in its message, by the flow's addresses as the
//! plugin got them (`client_ip:port > server_ip:port`). The line `LEAK`
//! also keeps 256 KiB of the instance's memory for good, as a guest whose
//! toolchain never frees would (the runtime's instance renewal is tested
//! with it).

use remora_sdk::prelude::*;

const PORT: u16 = 7777;
const F_LINE: u16 = 1;
const LEAK_BYTES: usize = 256 << 10;

pub struct Lines;

pub struct LinesSession {
    /// Next txn per direction (indexed by `Direction::index`).
    next_txn: [u64; 2],
    /// What `WHO` is answered with.
    who: String,
}

impl Dissector for Lines {
    type Session = LinesSession;

    fn info() -> PluginInfo {
        PluginInfo::new("test-lines", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::tcp("LINES", "lines")
                    .ports(&[PORT])
                    .summaries("{line}", "{line}"),
            )
            .field(
                FieldDecl::new(F_LINE, "line", FieldType::Str)
                    .top_level()
                    .doc("The line, without its terminating newline."),
            )
    }

    fn probe(flow: &FlowInfo, _dir: Direction, data: &[u8]) -> Probe {
        if flow.transport != Transport::Tcp || flow.server_port != PORT {
            return Probe::No;
        }
        match data.first() {
            None => Probe::NeedMore,
            Some(b) if b.is_ascii_alphabetic() => Probe::Yes(50),
            Some(_) => Probe::No,
        }
    }

    fn session(flow: &FlowInfo) -> LinesSession {
        let who = format!(
            "{}:{} > {}:{}",
            flow.client_ip, flow.client_port, flow.server_ip, flow.server_port
        );
        LinesSession {
            next_txn: [0; 2],
            who,
        }
    }
}

impl Session for LinesSession {
    fn feed(&mut self, dir: Direction, input: &Input, out: &mut Output) -> Progress {
        let kind = match dir {
            Direction::ToServer => MessageKind::Request,
            Direction::ToClient => MessageKind::Response,
        };
        let txn = &mut self.next_txn[dir.index()];
        let mut start = 0;
        // The line keeps a `\r` before its `\n` (no `Cursor::line`, which strips it).
        while let Some(nl) = input.cursor(start).find(b'\n') {
            let text = &input.data[start..nl];
            if text == b"LEAK" {
                core::hint::black_box(Vec::leak(vec![1u8; LEAK_BYTES]));
            }
            let line: Text = if text == b"WHO" {
                self.who.as_str().into()
            } else {
                input.span(start..nl).into()
            };
            out.message(kind, *txn, input.offset(start))
                .field(F_LINE, line);
            *txn += 1;
            start = nl + 1;
        }
        Progress::consumed(start)
    }

    fn gap(&mut self, _dir: Direction, _len: u64, _out: &mut Output) {}
}

remora_sdk::export_dissector!(Lines);
