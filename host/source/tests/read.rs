use std::io::{Cursor, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use remora_core::Timestamp;
use remora_source::{CaptureReader, LinkType, SourceError};

// ---------- hand-written capture writers ----------

fn u16b(v: u16, be: bool) -> [u8; 2] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}
fn u32b(v: u32, be: bool) -> [u8; 4] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

/// (seconds, fraction, data, wire_len)
type Rec<'a> = (u32, u32, &'a [u8], u32);

fn pcap(be: bool, nanos: bool, dlt: u32, recs: &[Rec]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }, be));
    v.extend(u16b(2, be));
    v.extend(u16b(4, be));
    v.extend(u32b(0, be));
    v.extend(u32b(0, be));
    v.extend(u32b(65535, be));
    v.extend(u32b(dlt, be));
    for &(s, f, d, w) in recs {
        v.extend(u32b(s, be));
        v.extend(u32b(f, be));
        v.extend(u32b(d.len() as u32, be));
        v.extend(u32b(w, be));
        v.extend(d);
    }
    v
}

fn block(btype: u32, body: &[u8], be: bool) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = body.len() as u32 + 12;
    let mut v = Vec::new();
    v.extend(u32b(btype, be));
    v.extend(u32b(len, be));
    v.extend(body);
    v.extend(u32b(len, be));
    v
}

fn shb(be: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(u32b(0x1a2b_3c4d, be));
    b.extend(u16b(1, be));
    b.extend(u16b(0, be));
    b.extend(u64::MAX.to_le_bytes());
    block(0x0a0d_0d0a, &b, be)
}

fn idb(dlt: u16, tsresol: Option<u8>, tsoffset: Option<i64>, be: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(u16b(dlt, be));
    b.extend(u16b(0, be));
    b.extend(u32b(0, be));
    if let Some(r) = tsresol {
        b.extend(u16b(9, be));
        b.extend(u16b(1, be));
        b.extend([r, 0, 0, 0]);
    }
    if let Some(o) = tsoffset {
        b.extend(u16b(14, be));
        b.extend(u16b(8, be));
        b.extend(if be { o.to_be_bytes() } else { o.to_le_bytes() });
    }
    b.extend(u16b(0, be));
    b.extend(u16b(0, be));
    block(1, &b, be)
}

fn epb(iface: u32, ts_units: u64, data: &[u8], wire: u32, be: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(u32b(iface, be));
    b.extend(u32b((ts_units >> 32) as u32, be));
    b.extend(u32b(ts_units as u32, be));
    b.extend(u32b(data.len() as u32, be));
    b.extend(u32b(wire, be));
    b.extend(data);
    block(6, &b, be)
}

fn spb(data: &[u8], be: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(u32b(data.len() as u32, be));
    b.extend(data);
    block(3, &b, be)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn reader(bytes: Vec<u8>) -> Result<CaptureReader, SourceError> {
    CaptureReader::open_reader(Cursor::new(bytes), Path::new("test.pcap"), None)
}

#[derive(Debug, PartialEq)]
struct Owned {
    ts: i64,
    link: LinkType,
    data: Vec<u8>,
    wire_len: u32,
    offset: u64,
}

/// Every frame, then the error if one ended the stream.
fn read_all(r: &mut CaptureReader) -> (Vec<Owned>, Option<SourceError>) {
    let mut out = Vec::new();
    while let Some(f) = r.next_frame() {
        match f {
            Ok(f) => out.push(Owned {
                ts: f.ts.micros(),
                link: f.link,
                data: f.data.to_vec(),
                wire_len: f.wire_len,
                offset: f.file_offset,
            }),
            Err(e) => {
                assert!(r.next_frame().is_none(), "nothing after an error");
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

fn sample_recs() -> Vec<(u32, u32, Vec<u8>, u32)> {
    vec![
        (1_700_000_000, 123_456, vec![1, 2, 3, 4], 60),
        (1_700_000_001, 0, vec![0xaa; 100], 100),
        (1_700_000_002, 999_999, vec![], 0),
    ]
}

fn as_recs(v: &[(u32, u32, Vec<u8>, u32)]) -> Vec<Rec<'_>> {
    v.iter()
        .map(|(s, f, d, w)| (*s, *f, d.as_slice(), *w))
        .collect()
}

// ---------- pcap ----------

#[test]
fn pcap_both_byte_orders() {
    let recs = sample_recs();
    for be in [false, true] {
        let mut r = reader(pcap(be, false, 1, &as_recs(&recs))).unwrap();
        let (frames, err) = read_all(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(frames.len(), 3);
        assert_eq!(r.frames(), 3);
        assert_eq!(frames[0].ts, 1_700_000_000_123_456);
        assert_eq!(frames[0].link, LinkType::Ethernet);
        assert_eq!(frames[0].data, vec![1, 2, 3, 4]);
        assert_eq!(frames[0].wire_len, 60);
        assert_eq!(frames[0].offset, 24);
        assert_eq!(frames[1].offset, 24 + 16 + 4);
        assert_eq!(frames[1].data.len(), 100);
        assert!(frames[2].data.is_empty());
    }
}

#[test]
fn pcap_nanosecond_resolution() {
    for be in [false, true] {
        let bytes = pcap(be, true, 113, &[(10, 123_456_789, &[9, 9], 2)]);
        let (frames, err) = read_all(&mut reader(bytes).unwrap());
        assert!(err.is_none());
        assert_eq!(frames[0].ts, 10_123_456);
        assert_eq!(frames[0].link, LinkType::LinuxSll);
    }
}

#[test]
fn link_types_from_dlt() {
    for (dlt, lt) in [
        (0, LinkType::Null),
        (1, LinkType::Ethernet),
        (12, LinkType::RawIp),
        (14, LinkType::RawIp),
        (101, LinkType::RawIp),
        (108, LinkType::Loop),
        (113, LinkType::LinuxSll),
        (228, LinkType::Ipv4),
        (229, LinkType::Ipv6),
        (276, LinkType::LinuxSll2),
        (147, LinkType::Other(147)),
    ] {
        assert_eq!(LinkType::from_dlt(dlt), lt);
    }
}

#[test]
fn large_frames_grow_the_buffer() {
    let big = vec![0x5a; 3 << 20];
    let bytes = pcap(
        false,
        false,
        1,
        &[(1, 0, &big, big.len() as u32), (2, 0, &[1], 1)],
    );
    let (frames, err) = read_all(&mut reader(bytes).unwrap());
    assert!(err.is_none());
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].data.len(), 3 << 20);
}

#[test]
fn truncated_mid_record_returns_earlier_frames_then_one_error() {
    let recs = sample_recs();
    let full = pcap(false, false, 1, &as_recs(&recs));
    // Cut inside the second record's data.
    let second = 24 + 16 + 4;
    for cut in [second + 3, second + 16 + 50] {
        let (frames, err) = read_all(&mut reader(full[..cut].to_vec()).unwrap());
        assert_eq!(frames.len(), 1);
        match err {
            Some(SourceError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, second as u64);
                assert!(reason.contains("truncated"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn absurd_caplen_is_corrupt_without_allocating() {
    let mut bytes = pcap(false, false, 1, &[(1, 0, &[1, 2], 2)]);
    bytes.extend(1u32.to_le_bytes());
    bytes.extend(0u32.to_le_bytes());
    bytes.extend(0xffff_fff0u32.to_le_bytes());
    bytes.extend(0xffff_fff0u32.to_le_bytes());
    let (frames, err) = read_all(&mut reader(bytes).unwrap());
    assert_eq!(frames.len(), 1);
    assert!(
        matches!(err, Some(SourceError::Corrupt { offset: 42, .. })),
        "{err:?}"
    );
}

#[test]
fn truncated_file_header_is_corrupt() {
    let bytes = pcap(false, false, 1, &[])[..10].to_vec();
    assert!(matches!(
        reader(bytes),
        Err(SourceError::Corrupt { offset: 0, .. })
    ));
}

// ---------- pcapng ----------

#[test]
fn pcapng_two_interfaces_with_own_link_and_resolution() {
    for be in [false, true] {
        let mut f = shb(be);
        f.extend(idb(1, None, None, be)); // ethernet, microseconds
        f.extend(idb(276, Some(9), Some(100), be)); // sll2, nanoseconds, +100 s
        f.extend(idb(101, Some(0x80 | 10), None, be)); // raw, 2^-10 s
        f.extend(epb(0, 5_000_001, &[1, 2, 3], 3, be));
        f.extend(block(0x0000_0bad, &[7; 13], be)); // unknown: skipped
        f.extend(epb(1, 2_000_000_500, &[4; 5], 1500, be));
        f.extend(epb(2, 1024 * 3 + 512, &[5], 1, be));
        f.extend(spb(&[6, 6], be));
        let (frames, err) = read_all(&mut reader(f).unwrap());
        assert!(err.is_none(), "{err:?}");
        assert_eq!(frames.len(), 4);
        assert_eq!(
            (frames[0].ts, frames[0].link, frames[0].data.clone()),
            (5_000_001, LinkType::Ethernet, vec![1, 2, 3])
        );
        assert_eq!(frames[1].ts, 102_000_000);
        assert_eq!(frames[1].link, LinkType::LinuxSll2);
        assert_eq!(frames[1].wire_len, 1500);
        assert_eq!(frames[1].data, vec![4; 5]);
        assert_eq!(frames[2].ts, 3_500_000);
        assert_eq!(frames[2].link, LinkType::RawIp);
        // SPB: interface 0, no timestamp of its own.
        assert_eq!(frames[3].link, LinkType::Ethernet);
        assert_eq!(frames[3].data, vec![6, 6]);
        assert_eq!(frames[3].ts, frames[2].ts);
    }
}

#[test]
fn pcapng_multiple_sections_reset_interfaces_and_byte_order() {
    let mut f = shb(false);
    f.extend(idb(1, None, None, false));
    f.extend(epb(0, 1, &[1], 1, false));
    f.extend(shb(true));
    f.extend(idb(229, Some(3), None, true)); // milliseconds
    f.extend(epb(0, 7, &[2], 1, true));
    let (frames, err) = read_all(&mut reader(f).unwrap());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].link, LinkType::Ipv6);
    assert_eq!(frames[1].ts, 7_000);
}

#[test]
fn pcapng_caplen_beyond_block_is_corrupt() {
    let mut f = shb(false);
    f.extend(idb(1, None, None, false));
    let ok = f.len();
    f.extend(epb(0, 1, &[1], 1, false));
    let bad_at = f.len();
    let mut bad = epb(0, 1, &[1, 2, 3, 4], 4, false);
    bad[8 + 12..8 + 16].copy_from_slice(&100u32.to_le_bytes());
    f.extend(bad);
    let (frames, err) = read_all(&mut reader(f).unwrap());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].offset, ok as u64);
    match err {
        Some(SourceError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, bad_at as u64);
            assert!(reason.contains("exceeds"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pcapng_undeclared_interface_is_corrupt() {
    let mut f = shb(false);
    f.extend(epb(0, 1, &[1], 1, false));
    let (frames, err) = read_all(&mut reader(f).unwrap());
    assert!(frames.is_empty());
    assert!(
        matches!(err, Some(SourceError::Corrupt { offset: 28, .. })),
        "{err:?}"
    );
}

#[test]
fn pcapng_truncated_block() {
    let mut f = shb(false);
    f.extend(idb(1, None, None, false));
    f.extend(epb(0, 1, &[1; 10], 10, false));
    let second = f.len();
    f.extend(epb(0, 2, &[2; 10], 10, false));
    f.truncate(f.len() - 5);
    let (frames, err) = read_all(&mut reader(f).unwrap());
    assert_eq!(frames.len(), 1);
    assert!(
        matches!(err, Some(SourceError::Corrupt { offset, .. }) if offset == second as u64),
        "{err:?}"
    );
}

// ---------- gzip ----------

#[test]
fn gzip_is_detected_and_streamed() {
    let recs = sample_recs();
    let plain = pcap(false, false, 1, &as_recs(&recs));
    let gz = gzip(&plain);
    let gz_len = gz.len() as u64;
    let mut r = reader(gz).unwrap();
    let (frames, err) = read_all(&mut r);
    assert!(err.is_none());
    assert_eq!(frames.len(), 3);
    assert_eq!(r.bytes_consumed(), gz_len);
}

#[test]
fn truncated_gzip_returns_frames_then_corrupt() {
    let big = vec![0x11u8; 20_000];
    let mut recs = Vec::new();
    for i in 0..50u32 {
        recs.push((i, 0, &big[..(i as usize * 397) % 20_000], 20_000));
    }
    let plain = pcap(false, false, 1, &recs);
    let gz = gzip(&plain);
    let cut = gz[..gz.len() / 2].to_vec();
    let (frames, err) = read_all(&mut reader(cut).unwrap());
    assert!(!frames.is_empty() && frames.len() < 50);
    assert!(matches!(err, Some(SourceError::Corrupt { .. })), "{err:?}");
}

#[test]
fn gzip_multi_member() {
    let plain = pcap(false, false, 1, &[(1, 0, &[1], 1), (2, 0, &[2], 1)]);
    let (a, b) = plain.split_at(30);
    let mut gz = gzip(a);
    gz.extend(gzip(b));
    let (frames, err) = read_all(&mut reader(gz).unwrap());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 2);
}

// ---------- not a capture ----------

fn not_a_capture(bytes: &[u8]) -> String {
    match reader(bytes.to_vec()) {
        Err(SourceError::NotACapture { found, .. }) => found,
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn not_a_capture_describes_what_it_found() {
    assert_eq!(not_a_capture(b""), "empty file");
    assert_eq!(
        not_a_capture(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "text starting with \"GET / HTTP\""
    );
    assert_eq!(
        not_a_capture(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0"),
        "bytes 7f 45 4c 46 (an ELF file)"
    );
    assert_eq!(not_a_capture(&[0, 1, 2, 3, 4, 5]), "bytes 00 01 02 03");
    assert!(not_a_capture(&gzip(b"hello world")).starts_with("gzip-compressed text"));
    let err = reader(b"hello there".to_vec()).err().unwrap().to_string();
    assert!(
        err.contains("test.pcap") && err.contains("not a pcap"),
        "{err}"
    );
}

#[test]
fn missing_file_names_path() {
    let err = CaptureReader::open(Path::new("/nonexistent/x.pcap"))
        .err()
        .unwrap();
    assert!(matches!(err, SourceError::Open { .. }));
    assert!(err.to_string().contains("/nonexistent/x.pcap"), "{err}");
}

#[test]
fn open_reports_total_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.pcap");
    let bytes = pcap(true, false, 1, &[(1, 0, &[1, 2], 2)]);
    std::fs::write(&p, &bytes).unwrap();
    let mut r = CaptureReader::open(&p).unwrap();
    assert_eq!(r.total_bytes(), Some(bytes.len() as u64));
    let (frames, _) = read_all(&mut r);
    assert_eq!(frames.len(), 1);
    assert_eq!(r.bytes_consumed(), bytes.len() as u64);
    assert_eq!(
        Timestamp::from_micros(frames[0].ts),
        Timestamp::from_secs_frac(1, 0)
    );
}

// ---------- real captures ----------

fn count(path: &str) -> (u64, Option<SourceError>) {
    let mut r = CaptureReader::open(Path::new(path)).unwrap();
    let (frames, err) = read_all(&mut r);
    (frames.len() as u64, err)
}

#[test]
fn real_http1_capture_has_607_frames() {
    let (n, err) = count("/work/shared/captures/generated/http1.pcap");
    assert!(err.is_none(), "{err:?}");
    assert_eq!(n, 607);
}

#[test]
fn real_kafka_pcapng_reads_fully() {
    let (n, err) = count("/work/shared/captures/public/kafka-ndpi.pcapng");
    assert!(err.is_none(), "{err:?}");
    assert!(n > 0);
}

/// Cross-check frame counts and bytes against pcap-parser on every shared capture.
#[test]
fn real_captures_match_pcap_parser() {
    use pcap_parser::{create_reader, PcapBlockOwned, PcapError};
    for dir in [
        "/work/shared/captures/generated",
        "/work/shared/captures/public",
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let mut mine = Vec::new();
            let mut r = CaptureReader::open(&path).unwrap();
            let (frames, err) = read_all(&mut r);
            assert!(err.is_none(), "{}: {err:?}", path.display());
            mine.extend(frames.into_iter().map(|f| f.data));

            let mut theirs = Vec::new();
            let file = std::fs::File::open(&path).unwrap();
            let mut pr = create_reader(1 << 20, file).unwrap();
            loop {
                match pr.next() {
                    Ok((off, block)) => {
                        match block {
                            PcapBlockOwned::Legacy(b) => theirs.push(b.data.to_vec()),
                            PcapBlockOwned::NG(pcap_parser::Block::EnhancedPacket(b)) => {
                                theirs.push(b.data[..b.caplen as usize].to_vec())
                            }
                            PcapBlockOwned::NG(pcap_parser::Block::SimplePacket(b)) => {
                                theirs.push(b.data.to_vec())
                            }
                            _ => {}
                        }
                        pr.consume(off);
                    }
                    Err(PcapError::Eof) => break,
                    Err(PcapError::Incomplete(_)) => pr.refill().unwrap(),
                    Err(e) => panic!("{}: pcap-parser: {e:?}", path.display()),
                }
            }
            assert_eq!(mine.len(), theirs.len(), "{}", path.display());
            assert!(mine == theirs, "{}: frame bytes differ", path.display());
        }
    }
}

// ---------- robustness ----------

fn drain(bytes: Vec<u8>) {
    if let Ok(mut r) = reader(bytes) {
        let mut n = 0;
        while let Some(f) = r.next_frame() {
            n += 1;
            if f.is_err() {
                break;
            }
        }
        assert!(r.next_frame().is_none());
        let _ = n;
    }
}

/// Times beyond what RFC 3339 writes (years 0000 to 9999) are held at the
/// ends of that range: a huge `if_tsoffset` had saturated them at 2^63 µs,
/// which the entry writer could only print as "invalid-time(...)".
#[test]
fn pcapng_times_stay_within_rfc3339_years() {
    let mut f = shb(false);
    f.extend(idb(1, None, Some(i64::MAX / 1_000_000), false)); // year 292,277
    f.extend(idb(1, None, Some(i64::MIN / 1_000_000), false));
    f.extend(idb(1, Some(0), None, false)); // seconds
    f.extend(epb(0, 5, &[1], 1, false));
    f.extend(epb(1, 5, &[1], 1, false));
    f.extend(epb(2, u64::MAX, &[1], 1, false));
    f.extend(epb(2, 1_700_000_000, &[1], 1, false));
    let (frames, err) = read_all(&mut reader(f).unwrap());
    assert!(err.is_none(), "{err:?}");
    let ts: Vec<i64> = frames.iter().map(|f| f.ts).collect();
    let latest = 253_402_300_799_999_999;
    let earliest = -62_167_219_200_000_000;
    assert_eq!(ts, [latest, earliest, latest, 1_700_000_000_000_000]);
}

/// A section describing more interfaces than any capture has is damage:
/// reading stops there with its offset (each description was kept, so a
/// stream of them grew memory without bound), after every earlier packet.
#[test]
fn pcapng_interfaces_per_section_are_bounded() {
    let mut f = shb(false);
    f.extend(idb(1, None, None, false));
    f.extend(epb(0, 1, &[7; 20], 20, false));
    let one = idb(1, None, None, false);
    for _ in 1..remora_source::MAX_INTERFACES {
        f.extend_from_slice(&one);
    }
    let at = f.len() as u64;
    f.extend_from_slice(&one);
    f.extend(epb(0, 2, &[8; 20], 20, false));
    let (frames, err) = read_all(&mut reader(f).unwrap());
    assert_eq!(frames.len(), 1);
    match err {
        Some(SourceError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, at);
            assert!(reason.contains("more than 65536 interfaces"), "{reason}");
        }
        other => panic!("expected damage at {at}, got {other:?}"),
    }
}

fn valid_pcapng() -> Vec<u8> {
    let mut f = shb(false);
    f.extend(idb(1, Some(9), None, false));
    f.extend(idb(113, None, Some(-5), false));
    for i in 0..6u32 {
        f.extend(epb(
            i % 2,
            i as u64 * 1000,
            &vec![i as u8; i as usize * 7],
            100,
            false,
        ));
    }
    f.extend(spb(&[1, 2, 3], false));
    f
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        drain(bytes);
    }

    #[test]
    fn random_bytes_after_valid_headers_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..512),
        ng in any::<bool>(),
    ) {
        let mut bytes = if ng { shb(false) } else { pcap(false, false, 1, &[]) };
        bytes.extend(tail);
        drain(bytes);
    }

    #[test]
    fn truncation_and_corruption_never_panic(
        cut in 0usize..600,
        flip in proptest::collection::vec((0usize..600, any::<u8>()), 0..4),
        ng in any::<bool>(),
        gz in any::<bool>(),
    ) {
        let recs = sample_recs();
        let mut bytes = if ng { valid_pcapng() } else { pcap(true, true, 1, &as_recs(&recs)) };
        for (at, v) in flip {
            if let Some(b) = bytes.get_mut(at) { *b = v; }
        }
        bytes.truncate(cut.min(bytes.len()));
        if gz { bytes = gzip(&bytes); }
        drain(bytes);
    }

    #[test]
    fn truncation_yields_a_prefix_of_the_frames(cut in 0usize..400) {
        let full = valid_pcapng();
        let (all, _) = read_all(&mut reader(full.clone()).unwrap());
        if let Ok(mut r) = reader(full[..cut.min(full.len())].to_vec()) {
            let (some, _) = read_all(&mut r);
            prop_assert!(some.len() <= all.len());
            prop_assert_eq!(&all[..some.len()], &some[..]);
        }
    }
}

#[test]
fn directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = CaptureReader::open(dir.path()).err().unwrap();
    assert!(matches!(err, SourceError::Open { .. }), "{err}");
    assert!(err.to_string().contains("directory"), "{err}");
}

#[test]
fn reader_can_move_to_another_thread() {
    fn is_send<T: Send>() {}
    is_send::<CaptureReader>();
}
