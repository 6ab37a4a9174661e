//! A dissector whose `feed` spins forever (exercises the CPU deadline).
//!
//! Test fixture for the host runtime: claims TCP port 7001 only (probe says
//! `yes(100)` there and `no` everywhere else).

use remora_sdk::prelude::*;

const NAME: &str = "test-loop";
const PORT: u16 = 7001;

pub struct Loop;
pub struct Spin;

impl Dissector for Loop {
    type Session = Spin;

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

    fn session(_flow: &FlowInfo) -> Spin {
        Spin
    }
}

impl Session for Spin {
    fn feed(&mut self, _dir: Direction, input: &Input, _out: &mut Output) -> Progress {
        let mut x = input.len() as u64;
        loop {
            x = core::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }

    fn gap(&mut self, _dir: Direction, _len: u64, _out: &mut Output) {}
}

remora_sdk::export_dissector!(Loop);
