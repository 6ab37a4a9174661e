//! A dissector whose `feed` panics.
//!
//! Test fixture for the host runtime: claims TCP port 7003 only (probe says
//! `yes(100)` there and `no` everywhere else).

use remora_sdk::prelude::*;

const NAME: &str = "test-panic";
const PORT: u16 = 7003;

pub struct Panic;
pub struct Boom;

impl Dissector for Panic {
    type Session = Boom;

    fn info() -> PluginInfo {
        PluginInfo::new(NAME, env!("CARGO_PKG_VERSION"))
            .protocol(ProtocolDecl::tcp(&NAME.to_uppercase(), NAME).ports(&[PORT]))
            .field(FieldDecl::new(1, "x", FieldType::Str))
    }

    fn probe(flow: &FlowInfo, _dir: Direction, _data: &[u8]) -> Probe {
        if flow.transport == Transport::Tcp && flow.server_port == PORT {
            Probe::Yes(100)
        } else {
            Probe::No
        }
    }

    fn session(_flow: &FlowInfo) -> Boom {
        Boom
    }
}

impl Session for Boom {
    fn feed(&mut self, _dir: Direction, input: &Input, _out: &mut Output) -> Progress {
        // Always true. A `feed` that visibly never returns is not inlined into
        // the export (calls to diverging functions count as cold), and the
        // host names the innermost plugin frame of a trap: keep it the
        // export, `...#[method]session.feed`, as the host tests expect.
        if input.len() < usize::MAX {
            panic!("test-panic: feed called with {} bytes", input.len())
        }
        Progress::default()
    }

    fn gap(&mut self, _dir: Direction, _len: u64, _out: &mut Output) {}
}

remora_sdk::export_dissector!(Panic);
