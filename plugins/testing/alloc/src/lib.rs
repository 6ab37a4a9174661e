//! A dissector whose `feed` allocates without bound (exercises the memory limit).
//!
//! Test fixture for the host runtime: claims TCP port 7002 only (probe says
//! `yes(100)` there and `no` everywhere else).

use remora_sdk::prelude::*;

const NAME: &str = "test-alloc";
const PORT: u16 = 7002;

pub struct Alloc;
pub struct Hoard(Vec<Vec<u8>>);

impl Dissector for Alloc {
    type Session = Hoard;

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

    fn session(_flow: &FlowInfo) -> Hoard {
        Hoard(Vec::new())
    }
}

impl Session for Hoard {
    fn feed(&mut self, _dir: Direction, input: &Input, _out: &mut Output) -> Progress {
        loop {
            // 1 MiB, touched so the pages are really used; `black_box` keeps
            // the optimiser from proving the hoard is never read.
            self.0.push(vec![input.len() as u8 | 1; 1 << 20]);
            core::hint::black_box(&self.0);
        }
    }

    fn gap(&mut self, _dir: Direction, _len: u64, _out: &mut Output) {}
}

remora_sdk::export_dissector!(Alloc);
