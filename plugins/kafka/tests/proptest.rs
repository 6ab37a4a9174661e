use proptest::prelude::*;
use remora_kafka::{parse_request, Kafka};
use remora_sdk::native::Harness;
use remora_sdk::{Direction, Dissector, FlowInfo};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_request(&data);
        let f = FlowInfo::tcp_test(1, 9092);
        let _ = Kafka::probe(&f, Direction::ToServer, &data);
        let _ = Kafka::probe(&f, Direction::ToClient, &data);
        let mut h = Harness::<Kafka>::tcp(9092);
        h.feed(Direction::ToServer, &data);
        h.feed(Direction::ToClient, &data);
        h.end(Direction::ToServer);
        h.end(Direction::ToClient);
    }

    /// A valid-looking frame and request header followed by random body bytes.
    #[test]
    fn random_bodies_never_panic(
        key in 0i16..75,
        ver in 0i16..16,
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut p = Vec::new();
        p.extend(key.to_be_bytes());
        p.extend(ver.to_be_bytes());
        p.extend(1i32.to_be_bytes());
        p.extend((-1i16).to_be_bytes());
        p.extend(&body);
        let _ = parse_request(&p);
        let mut f = (p.len() as i32).to_be_bytes().to_vec();
        f.extend(&p);
        let mut h = Harness::<Kafka>::tcp(9092);
        h.feed(Direction::ToServer, &f);
        let mut r = (body.len() as i32 + 4).to_be_bytes().to_vec();
        r.extend(1i32.to_be_bytes());
        r.extend(&body);
        h.feed(Direction::ToClient, &r);
    }
}
