//! Synthetic captures for pipeline tests: TCP conversations with real
//! handshakes, sequence numbers and teardown, written as pcap in memory.

use std::net::Ipv4Addr;
use std::path::Path;

use etherparse::PacketBuilder;
use remora_source::{CaptureReader, PcapWriter};

pub struct Capture {
    w: PcapWriter<Vec<u8>>,
    ts: u64,
}

/// One TCP connection being written.
pub struct Conn {
    client: (Ipv4Addr, u16),
    server: (Ipv4Addr, u16),
    cseq: u32,
    sseq: u32,
}

impl Capture {
    pub fn new() -> Self {
        Capture {
            w: PcapWriter::new(Vec::new()).unwrap(),
            ts: 1_700_000_000_000_000,
        }
    }

    fn frame(
        &mut self,
        from: (Ipv4Addr, u16),
        to: (Ipv4Addr, u16),
        seq: u32,
        ack: u32,
        flags: &str,
        payload: &[u8],
    ) {
        let mut b = PacketBuilder::ethernet2([1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2])
            .ipv4(from.0.octets(), to.0.octets(), 64)
            .tcp(from.1, to.1, seq, 65535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('P') {
            b = b.psh();
        }
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).unwrap();
        self.ts += 10;
        self.w.write_frame(self.ts, &out).unwrap();
    }

    /// Handshake of a new connection from 10.0.0.1:`cport` to 10.0.0.2:`sport`.
    pub fn connect(&mut self, cport: u16, sport: u16) -> Conn {
        let c = Conn {
            client: (Ipv4Addr::new(10, 0, 0, 1), cport),
            server: (Ipv4Addr::new(10, 0, 0, 2), sport),
            cseq: 1000,
            sseq: 5000,
        };
        self.frame(c.client, c.server, c.cseq - 1, 0, "S", b"");
        self.frame(c.server, c.client, c.sseq - 1, c.cseq, "SA", b"");
        self.frame(c.client, c.server, c.cseq, c.sseq, "A", b"");
        c
    }

    pub fn client_sends(&mut self, c: &mut Conn, data: &[u8]) {
        self.frame(c.client, c.server, c.cseq, c.sseq, "PA", data);
        c.cseq = c.cseq.wrapping_add(data.len() as u32);
    }

    pub fn server_sends(&mut self, c: &mut Conn, data: &[u8]) {
        self.frame(c.server, c.client, c.sseq, c.cseq, "PA", data);
        c.sseq = c.sseq.wrapping_add(data.len() as u32);
    }

    pub fn close(&mut self, c: &mut Conn) {
        self.frame(c.client, c.server, c.cseq, c.sseq, "FA", b"");
        c.cseq += 1;
        self.frame(c.server, c.client, c.sseq, c.cseq, "FA", b"");
        c.sseq += 1;
        self.frame(c.client, c.server, c.cseq, c.sseq, "A", b"");
    }

    pub fn reader(self) -> CaptureReader {
        let bytes = self.w.into_inner();
        CaptureReader::open_reader(
            std::io::Cursor::new(bytes),
            Path::new("synthetic.pcap"),
            None,
        )
        .unwrap()
    }
}
