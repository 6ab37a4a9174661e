//! A dissector whose `feed` recurses without bound (exercises the stack limit).
//!
//! Test fixture for the host runtime: claims TCP port 7005 only (probe says
//! `yes(100)` there and `no` everywhere else).

use remora_sdk::prelude::*;

const NAME: &str = "test-stack";
const PORT: u16 = 7005;

pub struct Deep;
pub struct Recurse;

impl Dissector for Deep {
    type Session = Recurse;

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

    fn session(_flow: &FlowInfo) -> Recurse {
        Recurse
    }
}

impl Session for Recurse {
    fn feed(&mut self, _dir: Direction, input: &Input, _out: &mut Output) -> Progress {
        let n = recurse(input.data, 0);
        Progress::consumed(n as usize % (input.len() + 1))
    }

    fn gap(&mut self, _dir: Direction, _len: u64, _out: &mut Output) {}
}

remora_sdk::export_dissector!(Deep);

/// Not a tail call (the result is used after the call), so it cannot become a
/// loop; only scalars live in the frame, so it uses the wasm stack rather than
/// the shadow stack in linear memory.
#[inline(never)]
fn recurse(data: &[u8], depth: u32) -> u32 {
    if depth == u32::MAX {
        return 0;
    }
    let below = recurse(data, depth + 1);
    let b = data
        .get(depth as usize % data.len().max(1))
        .copied()
        .unwrap_or(1) as u32;
    below.wrapping_mul(31).wrapping_add(b ^ depth)
}
