use proptest::prelude::*;
use remora_dns::{parse, Dns};
use remora_sdk::native::Harness;
use remora_sdk::{Direction, Dissector, FlowInfo, Transport};

fn udp_flow() -> FlowInfo {
    FlowInfo {
        transport: Transport::Udp,
        ..FlowInfo::tcp_test(1, 53)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse::parse(&data);
        let _ = Dns::probe(&udp_flow(), Direction::ToServer, &data);
        let _ = Dns::probe(&FlowInfo::tcp_test(1, 53), Direction::ToServer, &data);
        let mut h = Harness::<Dns>::new(&udp_flow());
        h.feed(Direction::ToServer, &data);
        h.feed(Direction::ToClient, &data);
        let mut h = Harness::<Dns>::tcp(53);
        h.feed(Direction::ToServer, &data);
        h.end(Direction::ToServer);
    }

    /// A valid header followed by random bytes (exercises names, pointers, records).
    #[test]
    fn random_body_never_panics(
        counts in proptest::collection::vec(any::<u8>(), 4),
        body in proptest::collection::vec(any::<u8>(), 0..400),
        qr in any::<bool>(),
    ) {
        let mut m = vec![0x12, 0x34, if qr { 0x81 } else { 0x01 }, 0x80];
        for c in &counts { m.extend_from_slice(&[0, *c % 20]); }
        m.extend_from_slice(&body);
        let _ = parse::parse(&m);
        let mut h = Harness::<Dns>::new(&udp_flow());
        h.feed(Direction::ToClient, &m);
        let mut framed = (m.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&m);
        let mut h = Harness::<Dns>::tcp(53);
        h.feed(Direction::ToClient, &framed);
    }
}
