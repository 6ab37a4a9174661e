#![no_main]
//! Feeds arbitrary bytes, cut at arbitrary points, into both directions of a
//! session. The first byte picks the body cap, the second the split size.

use libfuzzer_sys::fuzz_target;
use remora_http1::Http1Session;
use remora_sdk::native::feed_once;
use remora_sdk::{Direction, Output, Session};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let cap = data[0] as usize * 4;
    let step = (data[1] as usize % 64) + 1;
    let mut s = Http1Session::with_cap(cap);
    let mut out = Output::new();
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut base = [0u64; 2];
    let mut skip = [0u64; 2];
    for (i, piece) in data[2..].chunks(step).enumerate() {
        let dir = if i % 3 == 2 { Direction::ToClient } else { Direction::ToServer };
        let d = dir.index();
        let drop = (skip[d] as usize).min(piece.len());
        skip[d] -= drop as u64;
        base[d] += drop as u64;
        pending[d].extend_from_slice(&piece[drop..]);
        if pending[d].is_empty() {
            continue;
        }
        let r = feed_once(&mut s, dir, base[d], &pending[d], &mut out);
        assert!(r.consumed > 0 || r.need > 0 || r.error.is_some());
        assert!(r.consumed as usize <= pending[d].len());
        for m in &r.messages {
            for f in &m.fields {
                if let remora_sdk::Value::Str(remora_sdk::Text::Span(sp)) = &f.value {
                    assert!(sp.range().end <= pending[d].len());
                }
            }
        }
        pending[d].drain(..r.consumed as usize);
        base[d] += r.consumed as u64;
        let now = (r.skip as usize).min(pending[d].len());
        pending[d].drain(..now);
        base[d] += now as u64;
        skip[d] = r.skip - now as u64;
    }
    s.end(Direction::ToServer, &mut out);
    s.end(Direction::ToClient, &mut out);
});
