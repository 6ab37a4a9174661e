//! `gen-http-capture`: a deterministic (seeded) generator of a realistic
//! HTTP/1.1 capture, written as a classic pcap file (Ethernet / IPv4 / TCP).
//!
//! What the traffic looks like:
//! - many concurrent keep-alive connections (default 64 open at any time),
//!   their packets interleaved one segment at a time in seeded random order;
//! - each connection: SYN (MSS/SACK/WS options), SYN-ACK, ACK, then K
//!   request/response exchanges (K drawn around `--keepalive`), then a
//!   FIN/FIN/ACK teardown started by the client;
//! - requests: GET (mostly), POST with a JSON body (some larger than one
//!   segment), conditional GET answered 304; statuses 200/201/304/404/500;
//! - responses: Content-Length for most, ~15% chunked (random chunk sizes);
//!   ~10% of bodies are large (4-48 KiB) and split into MSS-sized segments;
//! - the receiver sends ACK-only segments the way a Linux stack would (every
//!   second full segment, a delayed ACK after a burst, a bare ACK for a request
//!   the server takes a moment to answer);
//! - seq/ack numbers are consistent per direction from random ISNs;
//! - timestamps advance 5-15 µs per packet (≈10 µs on average).
//!
//! Usage: `gen-http-capture [--packets N] [--seed S] -o FILE`
//! Prints one summary line on stderr:
//! `wrote P packets, C connections, R requests (...)`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use etherparse::{PacketBuilder, TcpOptionElement};

#[derive(Parser, Debug)]
#[command(about = "Generate a deterministic synthetic HTTP/1.1 pcap")]
struct Args {
    /// Approximate number of packets to write (connections in flight are
    /// always finished, so the result is slightly above this).
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// Seed for the pseudo-random generator (same seed -> identical file).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output pcap file.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Connections open at the same time.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Mean number of requests per keep-alive connection.
    #[arg(long, default_value_t = 8)]
    keepalive: u32,
}

const MSS: usize = 1460;
const SERVER_PORT: u16 = 80;
/// 2026-11-25T00:00:00Z
const START_US: u64 = 1_795_564_800 * 1_000_000;

// ---------------------------------------------------------------- rng

/// SplitMix64: tiny, fast, good enough, and fully deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// True with probability `pct`%.
    fn pct(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

// ---------------------------------------------------------------- pcap

struct PcapWriter {
    out: BufWriter<File>,
    buf: Vec<u8>,
    packets: u64,
    bytes: u64,
}

impl PcapWriter {
    fn create(path: &PathBuf) -> std::io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // µs resolution
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone = 0, sigfigs = 0
        hdr[16..20].copy_from_slice(&262_144u32.to_le_bytes()); // snaplen
        hdr[20..24].copy_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        out.write_all(&hdr)?;
        Ok(PcapWriter {
            out,
            buf: Vec::with_capacity(2048),
            packets: 0,
            bytes: 24,
        })
    }

    fn record(&mut self, ts_us: u64) -> std::io::Result<()> {
        let len = self.buf.len() as u32;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&self.buf)?;
        self.packets += 1;
        self.bytes += 16 + len as u64;
        Ok(())
    }
}

// ---------------------------------------------------------------- traffic model

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    C2S,
    S2C,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Syn,
    SynAck,
    /// Data (possibly empty = pure ACK) from `buf` range; `psh` on the last
    /// segment of a message.
    Data {
        start: usize,
        len: usize,
        psh: bool,
    },
    Fin,
}

#[derive(Clone, Copy, Debug)]
struct Seg {
    dir: Dir,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Exchange,
    Teardown,
    Done,
}

struct Conn {
    cip: [u8; 4],
    sip: [u8; 4],
    cport: u16,
    /// Next sequence number each side will use.
    cseq: u32,
    sseq: u32,
    cwin: u16,
    swin: u16,
    requests_left: u32,
    phase: Phase,
    queue: VecDeque<Seg>,
    /// Bytes of the current request / response.
    req: Vec<u8>,
    resp: Vec<u8>,
}

#[derive(Default)]
struct Stats {
    connections: u64,
    requests: u64,
    by_status: [u64; 5], // 200 201 304 404 500
    chunked: u64,
    large: u64,
}

fn mac(ip: [u8; 4]) -> [u8; 6] {
    [0x02, 0x42, ip[0], ip[1], ip[2], ip[3]]
}

/// Deterministic printable filler used for bodies.
fn make_filler() -> Vec<u8> {
    let mut v = Vec::with_capacity(70_000);
    let mut i = 0u32;
    while v.len() < 65_536 {
        let s = format!(
            "{{\"id\":{i},\"name\":\"user-{i}\",\"email\":\"user{i}@example.com\",\"active\":{},\"score\":{}}},\n",
            i.is_multiple_of(3),
            (i * 7919) % 1000
        );
        v.extend_from_slice(s.as_bytes());
        i += 1;
    }
    v
}

fn body<'a>(rng: &mut Rng, filler: &'a [u8], len: usize) -> &'a [u8] {
    let start = rng.range(0, (filler.len() - len) as u64) as usize;
    &filler[start..start + len]
}

const AGENTS: &[&str] = &[
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
    "okhttp/4.12.0",
];

impl Conn {
    /// Split `len` bytes of a message into MSS segments, with the receiver's
    /// ACK-only segments after every second full segment and after the end.
    fn push_message(&mut self, dir: Dir, len: usize, trailing_ack: bool) {
        let back = if dir == Dir::C2S { Dir::S2C } else { Dir::C2S };
        let mut off = 0;
        let mut n = 0u32;
        while off < len {
            let mut l = (len - off).min(MSS);
            // Never leave a tail of a few bytes for the last segment: tshark
            // 4.0 flags a chunked body whose final CRLF arrives alone as
            // malformed, and the oracle must agree with the writer's counts.
            if len - off > l && len - off - l < 8 {
                l -= 8;
            }
            let last = off + l == len;
            self.queue.push_back(Seg {
                dir,
                kind: Kind::Data {
                    start: off,
                    len: l,
                    psh: last,
                },
            });
            off += l;
            n += 1;
            if !last && n.is_multiple_of(2) {
                self.queue.push_back(Seg {
                    dir: back,
                    kind: Kind::Data {
                        start: 0,
                        len: 0,
                        psh: false,
                    },
                });
            }
        }
        if trailing_ack {
            self.queue.push_back(Seg {
                dir: back,
                kind: Kind::Data {
                    start: 0,
                    len: 0,
                    psh: false,
                },
            });
        }
    }

    /// Queue the next request/response exchange.
    fn exchange(&mut self, rng: &mut Rng, filler: &[u8], stats: &mut Stats) {
        use std::fmt::Write as _;
        let host = format!("api-{}.shop.svc.cluster.local", self.sip[3]);
        let agent = AGENTS[(self.cport as usize) % AGENTS.len()];
        let roll = rng.range(0, 99);
        let id = rng.range(1, 99_999);
        let mut req = String::with_capacity(512);
        let mut req_body: &[u8] = &[];
        // (status, reason, body length or None for no body)
        let (status, reason, mut body_len): (u16, &str, Option<usize>);
        let ctype;
        match roll {
            0..=54 => {
                let _ = write!(
                    req,
                    "GET /api/v1/users/{id}?fields=name,email&page={} HTTP/1.1\r\n",
                    id % 7
                );
                (status, reason, body_len) = (200, "OK", Some(rng.range(120, 1400) as usize));
                ctype = "application/json";
            }
            55..=64 => {
                let _ = write!(
                    req,
                    "GET /static/app.{:08x}.js HTTP/1.1\r\n",
                    id * 2654435761 % (1 << 32)
                );
                (status, reason, body_len) = (200, "OK", Some(rng.range(800, 3000) as usize));
                ctype = "application/javascript";
            }
            65..=74 => {
                let _ = write!(req, "POST /api/v1/orders HTTP/1.1\r\n");
                let n = if rng.pct(20) {
                    rng.range(1500, 6000)
                } else {
                    rng.range(60, 900)
                } as usize;
                req_body = body(rng, filler, n);
                (status, reason, body_len) = (201, "Created", Some(rng.range(60, 300) as usize));
                ctype = "application/json";
            }
            75..=82 => {
                let _ = write!(req, "GET /assets/img/logo-{}.png HTTP/1.1\r\n", id % 50);
                (status, reason, body_len) = (304, "Not Modified", None);
                ctype = "image/png";
            }
            83..=89 => {
                let _ = write!(req, "GET /api/v1/products/{id}/reviews HTTP/1.1\r\n");
                (status, reason, body_len) = (404, "Not Found", Some(rng.range(40, 200) as usize));
                ctype = "application/json";
            }
            90..=92 => {
                let _ = write!(req, "PUT /api/v1/carts/{id} HTTP/1.1\r\n");
                let n = rng.range(40, 400) as usize;
                req_body = body(rng, filler, n);
                (status, reason, body_len) = (
                    500,
                    "Internal Server Error",
                    Some(rng.range(100, 400) as usize),
                );
                ctype = "text/html";
            }
            _ => {
                let _ = write!(req, "GET /api/v1/feed/{id} HTTP/1.1\r\n");
                (status, reason, body_len) = (200, "OK", Some(rng.range(300, 4000) as usize));
                ctype = "application/json";
            }
        }
        let _ = write!(
            req,
            "Host: {host}\r\nUser-Agent: {agent}\r\nAccept: */*\r\n"
        );
        if status == 304 {
            let _ = write!(req, "If-None-Match: \"{:x}-{:x}\"\r\n", id, id * 31);
        }
        if !req_body.is_empty() {
            let _ = write!(
                req,
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                req_body.len()
            );
        }
        let _ = write!(req, "X-Request-Id: {:016x}\r\n\r\n", rng.next());
        self.req.clear();
        self.req.extend_from_slice(req.as_bytes());
        self.req.extend_from_slice(req_body);

        // ~10% of responses that carry a body are large.
        if status == 200 && body_len.is_some() && rng.pct(14) {
            body_len = Some(rng.range(4096, 49_152) as usize);
            stats.large += 1;
        }
        let chunked = body_len.is_some() && (roll >= 93 || (status == 200 && rng.pct(8)));
        let mut resp = String::with_capacity(512);
        let _ = write!(
            resp,
            "HTTP/1.1 {status} {reason}\r\nServer: nginx/1.22.1\r\nDate: Wed, 25 Nov 2026 18:{:02}:{:02} GMT\r\n",
            (id / 60) % 60,
            id % 60
        );
        if status == 304 {
            let _ = write!(resp, "ETag: \"{:x}-{:x}\"\r\n", id, id * 31);
        } else {
            let _ = write!(resp, "Content-Type: {ctype}\r\n");
        }
        self.resp.clear();
        match body_len {
            None => {
                resp.push_str("Connection: keep-alive\r\n\r\n");
                self.resp.extend_from_slice(resp.as_bytes());
            }
            Some(n) if chunked => {
                stats.chunked += 1;
                resp.push_str("Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");
                self.resp.extend_from_slice(resp.as_bytes());
                let data = body(rng, filler, n);
                let mut off = 0;
                while off < n {
                    let c = (rng.range(256, 4096) as usize).min(n - off);
                    let _ = write!(HexLine(&mut self.resp), "{c:x}\r\n");
                    self.resp.extend_from_slice(&data[off..off + c]);
                    self.resp.extend_from_slice(b"\r\n");
                    off += c;
                }
                self.resp.extend_from_slice(b"0\r\n\r\n");
            }
            Some(n) => {
                let _ = write!(
                    resp,
                    "Content-Length: {n}\r\nConnection: keep-alive\r\n\r\n"
                );
                self.resp.extend_from_slice(resp.as_bytes());
                self.resp.extend_from_slice(body(rng, filler, n));
            }
        }
        stats.requests += 1;
        stats.by_status[match status {
            200 => 0,
            201 => 1,
            304 => 2,
            404 => 3,
            _ => 4,
        }] += 1;

        // Request; the server ACKs a multi-segment upload as it arrives and
        // sends a bare ACK when it takes a moment to answer (30%).
        let req_len = self.req.len();
        let server_acks_first = req_len > MSS || rng.pct(30);
        self.push_message(Dir::C2S, req_len, server_acks_first);
        // Response; the client's delayed ACK follows unless the next request
        // piggybacks it (the last response is always ACKed before teardown).
        let resp_len = self.resp.len();
        let client_acks = resp_len > MSS || self.requests_left == 1 || rng.pct(50);
        self.push_message(Dir::S2C, resp_len, client_acks);
    }

    /// Fill the queue with the next phase; returns false when finished.
    fn refill(&mut self, rng: &mut Rng, filler: &[u8], stats: &mut Stats) -> bool {
        match self.phase {
            Phase::Exchange => {
                self.exchange(rng, filler, stats);
                self.requests_left -= 1;
                if self.requests_left == 0 {
                    self.phase = Phase::Teardown;
                }
                true
            }
            Phase::Teardown => {
                self.queue.push_back(Seg {
                    dir: Dir::C2S,
                    kind: Kind::Fin,
                });
                self.queue.push_back(Seg {
                    dir: Dir::S2C,
                    kind: Kind::Fin,
                });
                self.queue.push_back(Seg {
                    dir: Dir::C2S,
                    kind: Kind::Data {
                        start: 0,
                        len: 0,
                        psh: false,
                    },
                });
                self.phase = Phase::Done;
                true
            }
            Phase::Done => false,
        }
    }

    /// Serialize one segment into `buf` and advance sequence numbers.
    fn emit(&mut self, seg: Seg, buf: &mut Vec<u8>) {
        buf.clear();
        let (src, dst, sport, dport, seq, ack, win) = match seg.dir {
            Dir::C2S => (
                self.cip,
                self.sip,
                self.cport,
                SERVER_PORT,
                self.cseq,
                self.sseq,
                self.cwin,
            ),
            Dir::S2C => (
                self.sip,
                self.cip,
                SERVER_PORT,
                self.cport,
                self.sseq,
                self.cseq,
                self.swin,
            ),
        };
        let base = PacketBuilder::ethernet2(mac(src), mac(dst)).ipv4(src, dst, 64);
        let syn_opts = [
            TcpOptionElement::MaximumSegmentSize(MSS as u16),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::WindowScale(7),
        ];
        let advance: u32 = match seg.kind {
            Kind::Syn => {
                let b = base
                    .tcp(sport, dport, seq, 64240)
                    .syn()
                    .options(&syn_opts)
                    .expect("options");
                b.write(buf, &[]).expect("write");
                1
            }
            Kind::SynAck => {
                let b = base
                    .tcp(sport, dport, seq, 65160)
                    .syn()
                    .ack(ack)
                    .options(&syn_opts)
                    .expect("options");
                b.write(buf, &[]).expect("write");
                1
            }
            Kind::Fin => {
                base.tcp(sport, dport, seq, win)
                    .fin()
                    .ack(ack)
                    .write(buf, &[])
                    .expect("write");
                1
            }
            Kind::Data { start, len, psh } => {
                let payload = match seg.dir {
                    Dir::C2S => &self.req[start..start + len],
                    Dir::S2C => &self.resp[start..start + len],
                };
                let b = base.tcp(sport, dport, seq, win).ack(ack);
                if psh {
                    b.psh().write(buf, payload).expect("write");
                } else {
                    b.write(buf, payload).expect("write");
                }
                len as u32
            }
        };
        match seg.dir {
            Dir::C2S => self.cseq = self.cseq.wrapping_add(advance),
            Dir::S2C => self.sseq = self.sseq.wrapping_add(advance),
        }
    }
}

/// `write!` adapter appending to a Vec<u8>.
struct HexLine<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for HexLine<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn new_conn(rng: &mut Rng, next_port: &mut [u16], keepalive: u32) -> Conn {
    let client = rng.range(0, next_port.len() as u64 - 1) as usize;
    let cip = [10, 1, (client / 250) as u8, (client % 250 + 2) as u8];
    let sip = [10, 96, 0, rng.range(10, 13) as u8];
    let cport = next_port[client];
    next_port[client] = if cport >= 60_999 { 32_768 } else { cport + 1 };
    let k = rng.range(1, (2 * keepalive as u64).saturating_sub(1).max(1)) as u32;
    let mut c = Conn {
        cip,
        sip,
        cport,
        cseq: rng.next() as u32,
        sseq: rng.next() as u32,
        cwin: 502,
        swin: 509,
        requests_left: k,
        phase: Phase::Exchange,
        queue: VecDeque::with_capacity(64),
        req: Vec::with_capacity(2048),
        resp: Vec::with_capacity(8192),
    };
    c.queue.push_back(Seg {
        dir: Dir::C2S,
        kind: Kind::Syn,
    });
    c.queue.push_back(Seg {
        dir: Dir::S2C,
        kind: Kind::SynAck,
    });
    c.queue.push_back(Seg {
        dir: Dir::C2S,
        kind: Kind::Data {
            start: 0,
            len: 0,
            psh: false,
        },
    });
    c
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut rng = Rng(args.seed ^ 0x5EED_F04E_4D04);
    let filler = make_filler();
    let mut w = PcapWriter::create(&args.output)?;
    let mut stats = Stats::default();
    // 1000 client addresses, each with its own ephemeral-port counter so a
    // 4-tuple is never reused within a capture of a few million packets.
    let mut next_port: Vec<u16> = (0..1000)
        .map(|_| rng.range(32_768, 40_000) as u16)
        .collect();
    let mut active: Vec<Conn> = Vec::with_capacity(args.concurrency);
    let mut ts = START_US;
    // Rough packets per exchange, to stop opening connections in time.
    const PER_EXCHANGE: u64 = 6;
    let concurrency = args.concurrency.max(1);
    loop {
        // Keep `concurrency` connections open while the budget allows.
        while active.len() < concurrency {
            let pending: u64 = active
                .iter()
                .map(|c| c.requests_left as u64 * PER_EXCHANGE + c.queue.len() as u64 + 3)
                .sum();
            if stats.connections > 0 && w.packets + pending >= args.packets {
                break;
            }
            active.push(new_conn(&mut rng, &mut next_port, args.keepalive.max(1)));
            stats.connections += 1;
        }
        if active.is_empty() {
            break;
        }
        let i = rng.range(0, active.len() as u64 - 1) as usize;
        let c = &mut active[i];
        if c.queue.is_empty() && !c.refill(&mut rng, &filler, &mut stats) {
            active.swap_remove(i);
            continue;
        }
        let seg = c.queue.pop_front().expect("refilled");
        c.emit(seg, &mut w.buf);
        ts += rng.range(5, 15);
        w.record(ts)?;
    }
    w.out.flush()?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} packets, {} connections, {} requests ({} responses: 200={} 201={} 304={} 404={} 500={}; {} chunked, {} large bodies; {:.1} MB in {:.2}s)",
        w.packets,
        stats.connections,
        stats.requests,
        stats.requests,
        stats.by_status[0],
        stats.by_status[1],
        stats.by_status[2],
        stats.by_status[3],
        stats.by_status[4],
        stats.chunked,
        stats.large,
        w.bytes as f64 / 1e6,
        secs
    );
    Ok(())
}
