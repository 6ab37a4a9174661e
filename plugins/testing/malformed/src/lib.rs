//! A dissector whose `feed` returns output that breaks the contract: the first
//! input byte modulo 3 picks `consumed` past the input, a span out of range, or
//! an undeclared field id. The SDK passes such raw values through unchecked
//! (a hand-built `Progress` and `Span`, any field id); the host must reject them.
//!
//! Test fixture for the host runtime: claims TCP port 7004 only (probe says
//! `yes(100)` there and `no` everywhere else).

use remora_sdk::prelude::*;

const NAME: &str = "test-malformed";
const PORT: u16 = 7004;
const F_X: u16 = 1;
const UNDECLARED: u16 = 999;

pub struct Malformed;
pub struct Liar;

impl Dissector for Malformed {
    type Session = Liar;

    fn info() -> PluginInfo {
        PluginInfo::new(NAME, env!("CARGO_PKG_VERSION"))
            .protocol(ProtocolDecl::tcp(&NAME.to_uppercase(), NAME).ports(&[PORT]))
            .field(FieldDecl::new(F_X, "x", FieldType::Str))
    }

    fn probe(flow: &FlowInfo, _dir: Direction, _data: &[u8]) -> Probe {
        if flow.transport == Transport::Tcp && flow.server_port == PORT {
            Probe::Yes(100)
        } else {
            Probe::No
        }
    }

    fn session(_flow: &FlowInfo) -> Liar {
        Liar
    }
}

impl Session for Liar {
    fn feed(&mut self, _dir: Direction, input: &Input, out: &mut Output) -> Progress {
        let len = input.len();
        match input.data.first().copied().unwrap_or(0) % 3 {
            // Consumes one byte more than it was given.
            0 => Progress {
                consumed: len + 1,
                ..Progress::default()
            },
            // A span starting right after the input.
            1 => {
                let span = Span {
                    offset: len as u32,
                    len: 1,
                };
                out.request(0, 0).field(F_X, span);
                Progress::default()
            }
            // A field id `info` never declared.
            _ => {
                out.request(0, 0).int(UNDECLARED, 1);
                Progress::default()
            }
        }
    }

    fn gap(&mut self, _dir: Direction, _len: u64, _out: &mut Output) {}
}

remora_sdk::export_dissector!(Malformed);
