//! Drives one plugin session natively the way the host does, with the
//! structure of the conversation taken from the fuzz input, and checks the
//! feed contract on every call.
//!
//! Input layout (every byte sequence is valid; short inputs just end early):
//! - byte 0, flags: bits 0-1 pick the transport from the target's list,
//!   bit 2 moves the server to a non-standard port, bits 3-7 (when non-zero)
//!   set `body-cap` to `(bits << 2)` so body truncation paths run.
//! - then records, each starting with a header byte `h`:
//!   - `0b0dLLLLLL`: data for direction `d`; `L + 1` bytes follow, or when
//!     `L == 63` a little-endian u16 length follows, then that many bytes.
//!     On TCP the bytes are appended to the pending bytes (one segment); on UDP
//!     they are one datagram.
//!   - `0b10dLLLLL`: gap of `L + 1` bytes in direction `d`.
//!   - `0b11d?????`: direction `d` ends.
//! - after the last record both directions end.
//!
//! `make_seeds.py` writes captured conversations in this layout.

use remora_sdk::native::{clear_config, set_config};
use remora_sdk::{
    Direction, Dissector, FlowInfo, Input, Message, Output, Session, Text, Transport, Value,
};

/// Largest `need` a session may ask for. The host buffers up to `need` bytes
/// per direction, so an absurd value is a parser trusting a length field
/// without a bound.
pub const MAX_NEED: usize = 64 << 20;

struct Dir {
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    base: u64,
    /// Bytes still to drop from what arrives next.
    skip: u64,
    need: usize,
    ended: bool,
    probed: bool,
}

struct Driver<D: Dissector> {
    session: D::Session,
    flow: FlowInfo,
    out: Output,
    dirs: [Dir; 2],
    /// The session handed the flow to another protocol: the host stops
    /// calling it.
    switched: bool,
}

fn check_spans(msgs: &[Message], len: usize, what: &str) {
    for m in msgs {
        for f in &m.fields {
            let texts: &[&Text] = match &f.value {
                Value::Str(t) => &[t],
                Value::Pair(a, b) => &[a, b],
                _ => &[],
            };
            for t in texts {
                if let Text::Span(sp) = t {
                    let r = sp.range();
                    assert!(
                        r.end <= len,
                        "{what}: field {} span {r:?} outside input of {len} bytes",
                        f.id
                    );
                }
            }
        }
        if let Some(body) = &m.body {
            assert!(
                body.data.len() as u64 <= body.original_len || body.decoded_from.is_some(),
                "{what}: body keeps {} bytes of a {}-byte body",
                body.data.len(),
                body.original_len
            );
        }
    }
}

impl<D: Dissector> Driver<D> {
    fn transport(&self) -> Transport {
        self.flow.transport
    }

    fn data(&mut self, dir: Direction, mut bytes: &[u8]) {
        let udp = self.transport() == Transport::Udp;
        let d = &mut self.dirs[dir.index()];
        if d.ended || bytes.is_empty() || self.switched {
            return;
        }
        if !d.probed {
            d.probed = true;
            let _ = D::probe(&self.flow, dir, bytes);
        }
        if udp {
            // One datagram per call, nothing carried over.
            let input = Input::new(d.base, bytes);
            let p = self.session.feed(dir, &input, &mut self.out);
            let (msgs, _) = self.out.take();
            self.out.take_switch();
            check_spans(&msgs, bytes.len(), "udp feed");
            assert!(
                p.consumed <= bytes.len(),
                "udp feed consumed {} of {}",
                p.consumed,
                bytes.len()
            );
            d.base += bytes.len() as u64;
            return;
        }
        if d.skip > 0 {
            let n = d.skip.min(bytes.len() as u64);
            d.skip -= n;
            d.base += n;
            bytes = &bytes[n as usize..];
        }
        d.pending.extend_from_slice(bytes);
        self.pump(dir);
    }

    /// Calls `feed` like the host: again after every call that consumed or
    /// skipped something, while bytes remain and `need` is met.
    fn pump(&mut self, dir: Direction) {
        loop {
            let o = &self.dirs[dir.reverse().index()];
            let other_seen = o.base + o.pending.len() as u64;
            let d = &mut self.dirs[dir.index()];
            let len = d.pending.len();
            if len == 0 || len < d.need {
                return;
            }
            let input = Input::new(d.base, &d.pending);
            let p = self.session.feed(dir, &input, &mut self.out);
            let (msgs, err) = self.out.take();
            let switch = self.out.take_switch();
            check_spans(&msgs, len, "feed");
            // A call may complete a message of the other direction (a stream
            // reset ends a response), so bound starts by the longer stream.
            let seen = (d.base + len as u64).max(other_seen);
            for m in &msgs {
                assert!(
                    m.start <= seen,
                    "message starts at {} beyond the {seen} bytes seen",
                    m.start
                );
            }
            assert!(p.consumed <= len, "consumed {} of {len} bytes", p.consumed);
            assert!(p.need <= MAX_NEED, "need {} exceeds {MAX_NEED}", p.need);
            let stalled = p.consumed == 0 && p.skip == 0 && err.is_none() && switch.is_none();
            // A call that takes nothing must wait for more than it was given,
            // or the host would call again with the same bytes for nothing.
            assert!(
                !stalled || p.need > len,
                "no progress on {len} bytes and need {} does not ask for more",
                p.need
            );
            d.pending.drain(..p.consumed);
            d.base += p.consumed as u64;
            if let Some(sw) = switch {
                for (i, dir) in self.dirs.iter().enumerate() {
                    assert!(
                        sw.offsets[i] >= dir.base,
                        "switch to {} at offset {} of direction {i}, but bytes up to {} were consumed",
                        sw.protocol,
                        sw.offsets[i],
                        dir.base
                    );
                }
                self.switched = true;
                return;
            }
            let d = &mut self.dirs[dir.index()];
            let s = p.skip.min(d.pending.len() as u64);
            d.pending.drain(..s as usize);
            d.base += s;
            d.skip = p.skip - s;
            d.need = p.need;
            if p.consumed == 0 && p.skip == 0 {
                return;
            }
        }
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        let udp = self.transport() == Transport::Udp;
        let d = &mut self.dirs[dir.index()];
        // The host reports gaps in TCP streams only.
        if d.ended || udp || self.switched {
            return;
        }
        d.base += d.pending.len() as u64 + len;
        d.pending.clear();
        d.need = 0;
        d.skip = d.skip.saturating_sub(len);
        self.session.gap(dir, len, &mut self.out);
        self.check_no_input("gap");
    }

    fn end(&mut self, dir: Direction) {
        let d = &mut self.dirs[dir.index()];
        if d.ended || self.switched {
            return;
        }
        d.ended = true;
        self.session.end(dir, &mut self.out);
        self.check_no_input("end");
    }

    /// `gap` and `end` get no input, so a span in what they emit points nowhere.
    fn check_no_input(&mut self, what: &str) {
        let (msgs, _) = self.out.take();
        check_spans(&msgs, 0, what);
    }
}

/// Run `data` (layout in the module docs) through a fresh session of `D` on a
/// flow whose transport is chosen from `transports` and whose server listens on
/// `port`. Panics when the session panics or breaks the feed contract.
pub fn run<D: Dissector>(transports: &[Transport], port: u16, data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let transport = transports[(flags & 3) as usize % transports.len()];
    let mut flow = FlowInfo::tcp_test(1, if flags & 4 != 0 { 40001 } else { port });
    flow.transport = transport;
    clear_config();
    if flags >> 3 != 0 {
        set_config("body-cap", &(((flags >> 3) as usize) << 2).to_string());
    }
    let session = D::session(&flow);
    clear_config();
    let new_dir = || Dir {
        pending: Vec::new(),
        base: 0,
        skip: 0,
        need: 0,
        ended: false,
        probed: false,
    };
    let mut drv = Driver::<D> {
        session,
        flow,
        out: Output::new(),
        dirs: [new_dir(), new_dir()],
        switched: false,
    };
    while let Some((&h, tail)) = rest.split_first() {
        rest = tail;
        let dir = if h & 0x40 != 0 && h & 0x80 == 0 || h & 0x80 != 0 && h & 0x20 != 0 {
            Direction::ToClient
        } else {
            Direction::ToServer
        };
        if h & 0x80 == 0 {
            let mut n = (h & 0x3f) as usize + 1;
            if n == 64 {
                if rest.len() < 2 {
                    break;
                }
                n = u16::from_le_bytes([rest[0], rest[1]]) as usize;
                rest = &rest[2..];
            }
            let (chunk, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            drv.data(dir, chunk);
        } else if h & 0x40 == 0 {
            drv.gap(dir, (h & 0x1f) as u64 + 1);
        } else {
            drv.end(dir);
        }
    }
    drv.end(Direction::ToServer);
    drv.end(Direction::ToClient);
}
