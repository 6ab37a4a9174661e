//! DNS wire-format parsing (RFC 1035): header, questions, answer records,
//! name compression. Pure functions over a byte slice; never panics, and the
//! work is bounded by the message length and the caps below.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;
/// Compression pointers followed while reading one name.
pub const MAX_JUMPS: usize = 128;
/// Longest name on the wire (RFC 1035 2.3.4).
pub const MAX_NAME: usize = 255;
/// Questions kept per message.
pub const MAX_QUESTIONS: usize = 64;
/// Answers rendered per message.
pub const MAX_ANSWERS: usize = 256;

/// Header of a DNS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub qr: bool,
    pub opcode: u8,
    pub rcode: u8,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

/// A parsed message: what the dissector reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub header: Header,
    /// (name, qtype)
    pub questions: Vec<(String, u16)>,
    /// Rendered answer records: "name TYPE data ttl=N".
    pub answers: Vec<String>,
}

pub fn header(msg: &[u8]) -> Option<Header> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let u16_at = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let flags = u16_at(2);
    Some(Header {
        id: u16_at(0),
        qr: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0f) as u8,
        rcode: (flags & 0x000f) as u8,
        qdcount: u16_at(4),
        ancount: u16_at(6),
        nscount: u16_at(8),
        arcount: u16_at(10),
    })
}

fn be16(msg: &[u8], pos: usize) -> Option<u16> {
    let b = msg.get(pos..pos.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(msg: &[u8], pos: usize) -> Option<u32> {
    let b = msg.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Read the (possibly compressed) name at `pos`. Returns the dotted name
/// ("." for the root) and the position just after the name's bytes at `pos`.
pub fn read_name(msg: &[u8], pos: usize) -> Result<(String, usize), &'static str> {
    let mut name = String::new();
    let mut wire_len = 0usize; // label bytes incl. length octets
    let mut cur = pos;
    let mut end: Option<usize> = None;
    let mut jumps = 0usize;
    loop {
        let len = *msg.get(cur).ok_or("name runs past the message")? as usize;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    let after = end.unwrap_or(cur + 1);
                    if name.is_empty() {
                        name.push('.');
                    }
                    return Ok((name, after));
                }
                wire_len += len + 1;
                if wire_len + 1 > MAX_NAME {
                    return Err("name longer than 255 bytes");
                }
                let label = msg
                    .get(cur + 1..cur + 1 + len)
                    .ok_or("label runs past the message")?;
                if !name.is_empty() {
                    name.push('.');
                }
                push_label(&mut name, label);
                cur += 1 + len;
            }
            0xc0 => {
                let lo = *msg.get(cur + 1).ok_or("pointer runs past the message")? as usize;
                let target = ((len & 0x3f) << 8) | lo;
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err("too many compression pointers");
                }
                if end.is_none() {
                    end = Some(cur + 2);
                }
                if target >= msg.len() {
                    return Err("pointer outside the message");
                }
                cur = target;
            }
            _ => return Err("bad label type"),
        }
    }
}

fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x21..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{:03}", b);
            }
        }
    }
}

pub fn type_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    s.to_owned()
}

pub fn rcode_name(r: u8) -> String {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return format!("RCODE{r}"),
    };
    s.to_owned()
}

/// Header and first question, strictly: what `probe` accepts.
pub fn plausible(msg: &[u8]) -> bool {
    check_start(msg) == Some(true)
}

/// Header and first question, strictly: `Some(true)` plausible DNS,
/// `Some(false)` not DNS, `None` ran out of bytes before deciding.
pub fn check_start(msg: &[u8]) -> Option<bool> {
    let h = header(msg)?;
    if !(1..=16).contains(&h.qdcount) || !matches!(h.opcode, 0 | 1 | 2 | 4 | 5 | 6) {
        return Some(false);
    }
    if !h.qr && h.opcode != 5 && (h.ancount > 16 || h.nscount > 16) {
        return Some(false);
    }
    // First question: plain labels of 1..=63 printable bytes, a sane class.
    let mut pos = HEADER_LEN;
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos)?;
        if len == 0 {
            pos += 1;
            break;
        }
        if len > 63 {
            return Some(false);
        }
        total += len as usize + 1;
        if total > MAX_NAME {
            return Some(false);
        }
        for i in 0..len as usize {
            let b = *msg.get(pos + 1 + i)?;
            if !(0x20..0x7f).contains(&b) {
                return Some(false);
            }
        }
        pos += 1 + len as usize;
    }
    let qtype = be16(msg, pos)?;
    let qclass = be16(msg, pos + 2)?;
    Some(qtype != 0 && matches!(qclass & 0x7fff, 1 | 3 | 4 | 254 | 255))
}

/// Parse a whole message. Header and questions must be well formed; answer
/// records that do not parse end the answer list (what came before is kept).
pub fn parse(msg: &[u8]) -> Result<Parsed, &'static str> {
    let h = header(msg).ok_or("shorter than a DNS header")?;
    let mut pos = HEADER_LEN;
    let mut questions = Vec::new();
    for i in 0..h.qdcount {
        let (name, p) = read_name(msg, pos)?;
        let qtype = be16(msg, p).ok_or("question runs past the message")?;
        be16(msg, p + 2).ok_or("question runs past the message")?;
        pos = p + 4;
        if (i as usize) < MAX_QUESTIONS {
            questions.push((name, qtype));
        }
    }
    let mut answers = Vec::new();
    for _ in 0..h.ancount.min(MAX_ANSWERS as u16) {
        match record(msg, pos) {
            Some((text, p)) => {
                answers.push(text);
                pos = p;
            }
            None => break,
        }
    }
    Ok(Parsed {
        header: h,
        questions,
        answers,
    })
}

/// One resource record at `pos`: its rendering and the position after it.
fn record(msg: &[u8], pos: usize) -> Option<(String, usize)> {
    let (name, p) = read_name(msg, pos).ok()?;
    let rtype = be16(msg, p)?;
    let ttl = be32(msg, p + 4)?;
    let rdlen = be16(msg, p + 8)? as usize;
    let start = p + 10;
    let end = start + rdlen;
    let rdata = msg.get(start..end)?;
    let data = rdata_text(msg, rtype, start, rdata).unwrap_or_else(|| format!("<{rdlen} bytes>"));
    Some((format!("{name} {} {data} ttl={ttl}", type_name(rtype)), end))
}

fn rdata_text(msg: &[u8], rtype: u16, start: usize, rd: &[u8]) -> Option<String> {
    let name_at = |p: usize| read_name(msg, p).ok().map(|(n, _)| n);
    match rtype {
        1 => {
            let b: [u8; 4] = rd.try_into().ok()?;
            Some(Ipv4Addr::from(b).to_string())
        }
        28 => {
            let b: [u8; 16] = rd.try_into().ok()?;
            Some(Ipv6Addr::from(b).to_string())
        }
        2 | 5 | 12 | 39 => name_at(start),
        15 => {
            let pref = be16(rd, 0)?;
            Some(format!("{pref} {}", name_at(start + 2)?))
        }
        33 => {
            let (prio, weight, port) = (be16(rd, 0)?, be16(rd, 2)?, be16(rd, 4)?);
            Some(format!("{prio} {weight} {port} {}", name_at(start + 6)?))
        }
        6 => {
            let (mname, p) = read_name(msg, start).ok()?;
            let (rname, p) = read_name(msg, p).ok()?;
            let v: Vec<u32> = (0..5)
                .map(|i| be32(msg, p + 4 * i))
                .collect::<Option<_>>()?;
            Some(format!(
                "{mname} {rname} {} {} {} {} {}",
                v[0], v[1], v[2], v[3], v[4]
            ))
        }
        16 => {
            let mut out = String::new();
            let mut i = 0usize;
            while i < rd.len() {
                let n = rd[i] as usize;
                let s = rd.get(i + 1..i + 1 + n)?;
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push('"');
                for &b in s {
                    match b {
                        b'"' | b'\\' => {
                            out.push('\\');
                            out.push(b as char);
                        }
                        0x20..=0x7e => out.push(b as char),
                        _ => {
                            let _ = write!(out, "\\{:03}", b);
                        }
                    }
                }
                out.push('"');
                i += 1 + n;
            }
            Some(out)
        }
        _ => None,
    }
}
