//! Live capture on the loopback interface (needs CAP_NET_RAW; the tests run
//! as root). Each test filters on a port it bound itself, so concurrent
//! traffic on `lo` does not disturb it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use remora_source::{FrameSource, LinkType, LiveCapture, LiveConfig, Next, SourceError};

fn lo(bpf: &str) -> LiveConfig {
    LiveConfig {
        interface: "lo".into(),
        bpf: Some(bpf.into()),
        // Small enough not to exhaust memory when tests run in parallel.
        buffer_bytes: 4 << 20,
        ..LiveConfig::default()
    }
}

/// A listener that echoes one read back, and its port.
fn echo_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap();
        s.write_all(&buf[..n]).unwrap();
    });
    (port, handle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// TCP ports of an Ethernet/IPv4 frame (what `lo` delivers).
fn ports(data: &[u8]) -> Option<(u16, u16)> {
    let ip = data.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let tcp = ip.get(ihl..ihl + 4)?;
    Some((
        u16::from_be_bytes([tcp[0], tcp[1]]),
        u16::from_be_bytes([tcp[2], tcp[3]]),
    ))
}

#[test]
fn captures_a_tcp_exchange_on_loopback_through_the_filter() {
    let (port, server) = echo_server();
    let mut cap = LiveCapture::open(&lo(&format!("tcp port {port}"))).unwrap();
    assert_eq!(cap.link_type(), LinkType::Ethernet);
    assert_eq!(cap.name(), "lo");
    assert!(cap.is_live());

    let payload = format!("remora live test {port}");
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(payload.as_bytes()).unwrap();
    let mut echoed = vec![0u8; payload.len()];
    client.read_exact(&mut echoed).unwrap();
    drop(client);
    server.join().unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut frames, mut with_payload, mut idles) = (0u64, 0, 0);
    let mut last_ts = None;
    while Instant::now() < deadline && with_payload < 2 {
        match cap.next() {
            Next::Frame(f) => {
                frames += 1;
                let (sport, dport) = ports(f.data).expect("an IPv4 TCP frame");
                assert!(
                    sport == port || dport == port,
                    "filter let {sport}->{dport} through"
                );
                assert_eq!(f.wire_len as usize, f.data.len(), "no snaplen cut");
                if contains(f.data, payload.as_bytes()) {
                    with_payload += 1;
                }
                last_ts = Some(f.ts);
            }
            Next::Idle => idles += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // The request and its echo; the handshake around them too.
    assert_eq!(with_payload, 2, "saw {frames} frames, {idles} idle reads");
    assert!(frames >= 5, "handshake + data + acks, got {frames}");
    let age = remora_core::Timestamp::now().0 - last_ts.unwrap().0;
    assert!((0..10_000_000).contains(&age), "timestamp {age} µs old");
    let stats = cap.stats();
    assert_eq!(stats.frames, frames);
    assert!(stats.received >= frames, "{stats:?}");
    assert_eq!(stats.kernel_drops, 0, "{stats:?}");
    assert!(cap.bytes_consumed() > 0);
    assert_eq!(cap.total_bytes(), None);
}

#[test]
fn a_quiet_capture_returns_idle_after_the_timeout() {
    // A port nobody uses: bind it so nobody else can.
    let quiet = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = quiet.local_addr().unwrap().port();
    let mut cfg = lo(&format!("tcp port {port}"));
    cfg.timeout_ms = 50;
    let mut cap = LiveCapture::open(&cfg).unwrap();
    let started = Instant::now();
    let mut idles = 0;
    while idles < 3 {
        match cap.next() {
            Next::Idle => idles += 1,
            other => panic!("expected Idle, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "Idle never came"
        );
    }
    // Three timeouts of 50 ms: not immediate, not stuck.
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_any_interface_uses_linux_cooked_framing() {
    let quiet = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = quiet.local_addr().unwrap().port();
    let cap = LiveCapture::open(&LiveConfig {
        interface: "any".into(),
        ..lo(&format!("tcp port {port}"))
    })
    .unwrap();
    assert!(
        matches!(cap.link_type(), LinkType::LinuxSll | LinkType::LinuxSll2),
        "{:?}",
        cap.link_type()
    );
}

#[test]
fn a_missing_interface_is_named_with_the_available_ones() {
    let err = LiveCapture::open(&LiveConfig::new("remora-nope0"))
        .err()
        .expect("no such interface");
    let msg = err.to_string();
    assert!(
        matches!(err, SourceError::NoSuchInterface { .. }),
        "{err:?}"
    );
    assert!(msg.contains("\"remora-nope0\""), "{msg}");
    assert!(msg.contains("lo"), "lists the interfaces: {msg}");
}

#[test]
fn a_bad_filter_is_quoted_with_libpcaps_message() {
    let expr = "tcp port banana and (";
    let err = LiveCapture::open(&lo(expr)).err().expect("bad filter");
    let msg = err.to_string();
    let SourceError::BadFilter { message, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(msg.contains(&format!("{expr:?}")), "{msg}");
    assert!(!message.is_empty(), "libpcap's reason: {msg}");
}
