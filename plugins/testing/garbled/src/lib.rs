//! A dissector whose `run` answers break the batch encoding itself, which
//! the SDK never does: written against the raw bindings of the contract.
//! The first byte of the batch's data picks the damage: `0` one answer
//! fewer than calls, `1` a byte after the last answer, `2` flags no
//! contract version defines, anything else well-formed empty answers.
//!
//! Test fixture for the host runtime: claims TCP port 7006 only.

wit_bindgen::generate!({ path: "../../../wit", world: "dissector-plugin" });

use exports::remora::plugin::dissector::Guest;
use remora::plugin::types::{
    Direction, FieldDecl, FlowInfo, PluginInfo, ProbeResult, ProtocolDecl, Transport,
};

const PORT: u16 = 7006;

/// An answer that consumed nothing and carries no messages.
const EMPTY_ANSWER: [u8; 21] = [0; 21];

struct Garbled;

impl Guest for Garbled {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "test-garbled".into(),
            version: "0.1.0".into(),
            protocols: vec![ProtocolDecl {
                name: "TEST-GARBLED".into(),
                flag: "test_garbled".into(),
                transport: Transport::Tcp,
                ports: vec![PORT],
                request_summary: String::new(),
                response_summary: String::new(),
            }],
            fields: Vec::<FieldDecl>::new(),
        }
    }

    fn probe(flow: FlowInfo, _dir: Direction, _data: Vec<u8>) -> ProbeResult {
        if flow.server_port == PORT {
            ProbeResult::Yes(100)
        } else {
            ProbeResult::No
        }
    }

    fn open(_flow: FlowInfo) -> u32 {
        0
    }

    fn takeover(_session: u32, _previous: String, _params: Vec<(String, String)>) {}

    fn run(calls: Vec<u8>, data: Vec<u8>) -> Vec<u8> {
        let n = calls.len() / 24;
        let mut out = EMPTY_ANSWER.repeat(n);
        match data.first() {
            Some(b'0') => out.truncate(out.len() - EMPTY_ANSWER.len()),
            Some(b'1') => out.push(0),
            Some(b'2') => out[16] = 0x80,
            _ => {}
        }
        out
    }
}

export!(Garbled);
