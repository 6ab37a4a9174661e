use super::*;
use crate::jsonl::write_jsonl;
use remora_core::{Endpoint, Timestamp, Transport};

fn field(id: u16, name: &str, ty: FieldType, top_level: bool) -> FieldSchema {
    FieldSchema {
        id,
        name: name.into(),
        ty,
        top_level,
        doc: String::new(),
    }
}

fn protocol(name: &str, flag: &str, transport: Transport, summaries: [&str; 2]) -> ProtocolSchema {
    ProtocolSchema {
        name: name.into(),
        flag: flag.into(),
        transport,
        ports: vec![],
        request_summary: summaries[0].into(),
        response_summary: summaries[1].into(),
    }
}

fn http_schema() -> PluginSchema {
    let mut http = protocol(
        "HTTP",
        "http",
        Transport::Tcp,
        ["{method} {url}", "{status_code}"],
    );
    http.ports = vec![80];
    PluginSchema::new(
        "http1".into(),
        "0.1.0".into(),
        vec![http],
        vec![
            field(0, "method", FieldType::Str, true),
            field(1, "url", FieldType::Str, true),
            field(2, "headers", FieldType::StrMap, false),
            field(3, "status_code", FieldType::Int, true),
            field(4, "tags", FieldType::StrList, true),
        ],
    )
}

fn entry() -> Entry {
    let ep = |s: &str, p| Endpoint::new(s.parse().unwrap(), p);
    Entry {
        id: 7,
        flow_id: 3,
        plugin: 0,
        protocol: 0,
        transport: Transport::Tcp,
        client: ep("10.0.0.1", 40000),
        server: ep("10.0.0.2", 80),
        request: Some(Message {
            ts: Timestamp(1_795_626_776_607_116),
            fields: vec![
                Field {
                    id: 0,
                    value: Value::Str("GET".into()),
                },
                Field {
                    id: 1,
                    value: Value::Str("/a?b=1".into()),
                },
                Field {
                    id: 2,
                    value: Value::Pair("Content-Type".into(), "application/json".into()),
                },
                Field {
                    id: 2,
                    value: Value::Pair("Accept".into(), "a".into()),
                },
                Field {
                    id: 2,
                    value: Value::Pair("accept".into(), "b".into()),
                },
            ]
            .into(),
            body: None,
        }),
        response: Some(Message {
            ts: Timestamp(1_795_626_776_607_428),
            fields: vec![Field {
                id: 3,
                value: Value::Int(404),
            }]
            .into(),
            body: Some(Box::new(Body {
                data: b"nope".to_vec(),
                original_len: 4,
                truncated: false,
                decoded_from: None,
            })),
        }),
        standalone: false,
    }
}

fn catalog() -> Catalog {
    Catalog {
        plugins: vec![http_schema()],
    }
}

#[test]
fn timestamps_render_as_rfc3339_utc_micros() {
    assert_eq!(
        rfc3339_micros(Timestamp(1_795_626_776_607_116)),
        "2026-11-25T17:12:56.607116Z"
    );
    assert_eq!(rfc3339_micros(Timestamp(0)), "1970-01-01T00:00:00.000000Z");
}

#[test]
fn jsonl_record_has_the_documented_keys() {
    let j = entry_to_json(&catalog(), &entry());
    assert_eq!(j["id"], 7);
    assert_eq!(j["protocol"], "HTTP");
    assert_eq!(j["elapsed_time"], 312);
    assert_eq!(j["complete"], true);
    assert_eq!(j["src"]["ip"], "10.0.0.1");
    assert_eq!(j["dst"]["port"], 80);
    assert_eq!(j["request"]["fields"]["method"], "GET");
    // headers keep order, case and duplicates in the record
    assert_eq!(j["request"]["fields"]["headers"][1][0], "Accept");
    assert_eq!(
        j["request"]["fields"]["headers"].as_array().unwrap().len(),
        3
    );
    assert_eq!(j["response"]["body"]["text"], "nope");
}

#[test]
fn vars_use_filter_language_names() {
    let v = entry_vars(&catalog(), &entry());
    assert_eq!(v["http"], true);
    assert_eq!(v["tcp"], true);
    assert_eq!(v["method"], "GET");
    assert_eq!(v["status_code"], 404);
    assert_eq!(v["request.method"], "GET");
    assert_eq!(v["response.status_code"], 404);
    assert_eq!(v["request.headers"]["content-type"], "application/json");
    assert_eq!(v["request.headers"]["accept"], "a, b");
    assert_eq!(v["src.port"], 40000);
    assert_eq!(v["dst.name"], "10.0.0.2");
    // declared but absent top-level list still applies, empty
    assert_eq!(v["tags"], serde_json::json!([]));
    // headers is not top-level
    assert!(v.get("headers").is_none());
}

#[test]
fn incomplete_entry_has_null_response_and_no_elapsed() {
    let mut e = entry();
    e.response = None;
    let j = entry_to_json(&catalog(), &e);
    assert_eq!(j["complete"], false);
    assert!(j["response"].is_null());
    assert_eq!(j["elapsed_time"], 0);
}

#[test]
fn summary_templates_fill_from_fields() {
    let s = http_schema();
    let e = entry();
    assert_eq!(
        render_summary("{method} {url}", &s, e.request.as_ref()),
        "GET /a?b=1"
    );
    assert_eq!(
        render_summary("{status_code}", &s, e.response.as_ref()),
        "404"
    );
    assert_eq!(render_summary("{status_code}", &s, None), "");
    assert_eq!(render_summary("x {nope", &s, None), "x {nope");
}

#[test]
fn table_row_contains_summary_and_endpoints() {
    let mut t = TableWriter::new(Vec::new(), 120);
    t.write(&catalog(), &entry()).unwrap();
    let s = String::from_utf8(t.into_inner()).unwrap();
    assert!(s.contains("GET /a?b=1"), "{s}");
    assert!(s.contains("10.0.0.1:40000 → 10.0.0.2:80"), "{s}");
    assert!(s.contains("404"), "{s}");
}

#[test]
fn one_variable_is_what_all_variables_say() {
    let (c, e) = (catalog(), entry());
    let all = entry_vars(&c, &e);
    let all = all.as_object().unwrap();
    // Every variable, the direct ones included, agrees with entry_vars.
    for (name, v) in all {
        assert_eq!(entry_var(&c, &e, name).as_ref(), Some(v), "{name}");
    }
    for direct in [
        "src.ip", "src.name", "src.port", "dst.ip", "dst.name", "dst.port", "protocol", "id",
        "flow_id", "conn_id",
    ] {
        assert!(all.contains_key(direct), "{direct} is no longer a variable");
    }
    assert_eq!(entry_var(&c, &e, "no_such_variable"), None);
    assert_eq!(entry_var(&c, &e, "dst.nope"), None);
}

/// A small deterministic generator (xorshift) for the JSONL equivalence test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "Content-Type",
            "x",
            " ",
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "\u{1}",
            "\u{8}",
            "\u{c}",
            "\u{1f}",
            "\u{7f}",
            "é",
            "中",
            "😀",
            "/",
            ", ",
            "ACCEPT",
            "accept",
        ];
        (0..self.below(6)).map(|_| *self.pick(PIECES)).collect()
    }
}

/// Field names that collide with host variables, with each other and with
/// dotted names, to exercise which setting of a variable wins.
fn tangled_schema() -> PluginSchema {
    PluginSchema::new(
        "tangle".into(),
        "0.1.0".into(),
        vec![
            protocol("Tangle", "tangle", Transport::Tcp, ["", ""]),
            protocol("Udp\"ish", "udp", Transport::Udp, ["", ""]),
        ],
        vec![
            field(0, "method", FieldType::Str, true),
            field(1, "headers", FieldType::StrMap, false),
            field(2, "status_code", FieldType::Int, true),
            field(3, "tags", FieldType::StrList, true),
            field(4, "ids", FieldType::IntList, true),
            field(5, "ratio", FieldType::Float, true),
            field(6, "blob", FieldType::Bytes, false),
            field(7, "ok", FieldType::Bool, true),
            field(8, "protocol", FieldType::Str, true),
            field(9, "dup", FieldType::Str, true),
            field(10, "dup", FieldType::Int, true),
            field(11, "request.method", FieldType::Str, true),
            field(12, "params", FieldType::StrMap, true),
            field(13, "id", FieldType::Int, true),
            field(14, "tcp", FieldType::Bool, true),
            field(15, "", FieldType::Str, true),
        ],
    )
}

fn random_value(r: &mut Rng) -> Value {
    const FLOATS: &[f64] = &[
        0.0,
        -0.0,
        0.1,
        1.0,
        -2.5e-300,
        1e300,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        123456.789,
    ];
    match r.below(7) {
        0 => Value::Bool(r.below(2) == 1),
        1 => Value::Int(*r.pick(&[0, -1, 42, i64::MIN, i64::MAX]) ^ r.below(3) as i64),
        2 => Value::Float(*r.pick(FLOATS)),
        3 => Value::Bytes((0..r.below(9)).map(|_| r.next() as u8).collect()),
        4 => Value::Pair(r.text(), r.text()),
        _ => Value::Str(r.text()),
    }
}

fn random_message(r: &mut Rng) -> Message {
    let fields = (0..r.below(12))
        .map(|_| {
            // Mostly well-typed, sometimes not (the grouping skips those),
            // and now and then an id the schema does not know.
            let id = r.below(17) as u16;
            let value = match id {
                1 | 12 if r.below(4) > 0 => Value::Pair(r.text(), r.text()),
                3 | 0 | 9 | 11 if r.below(4) > 0 => Value::Str(r.text()),
                _ => random_value(r),
            };
            Field { id, value }
        })
        .collect();
    let body = match r.below(4) {
        0 => None,
        1 => Some(Box::new(Body {
            data: (0..r.below(12)).map(|_| r.next() as u8).collect(),
            original_len: r.next() >> r.below(64),
            truncated: r.below(2) == 0,
            decoded_from: None,
        })),
        _ => Some(Box::new(Body {
            data: r.text().into_bytes(),
            original_len: r.below(1000),
            truncated: r.below(2) == 0,
            decoded_from: (r.below(2) == 0).then(|| r.text()),
        })),
    };
    // Microseconds reaching years before 0 and past 9999 (not representable).
    let span = 400_000_000_000_000_000i64;
    let ts = (r.next() as i64 % span).wrapping_add(if r.below(8) == 0 { i64::MAX } else { 0 });
    Message {
        ts: Timestamp(ts),
        fields,
        body,
    }
}

fn random_entry(r: &mut Rng) -> Entry {
    let ip = |r: &mut Rng| -> std::net::IpAddr {
        if r.below(2) == 0 {
            std::net::Ipv4Addr::from(r.next() as u32).into()
        } else {
            std::net::Ipv6Addr::from(((r.next() as u128) << 64) | r.next() as u128).into()
        }
    };
    let (request, response) = (
        (r.below(4) > 0).then(|| random_message(r)),
        (r.below(4) > 0).then(|| random_message(r)),
    );
    Entry {
        id: r.next() >> r.below(64),
        flow_id: r.next() >> r.below(64),
        plugin: r.below(2) as u16,
        protocol: 0,
        transport: *r.pick(&[Transport::Tcp, Transport::Udp]),
        client: Endpoint::new(ip(r), r.next() as u16),
        server: Endpoint::new(ip(r), r.next() as u16),
        request,
        response,
        standalone: r.below(3) == 0,
    }
}

#[test]
fn written_jsonl_is_byte_for_byte_the_json_value_form() {
    let catalog = Catalog {
        plugins: vec![http_schema(), tangled_schema()],
    };
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for i in 0..20_000 {
        let mut e = random_entry(&mut r);
        if e.plugin == 1 {
            e.protocol = r.below(2) as u16;
        }
        out.clear();
        write_jsonl(&catalog, &e, &mut out);
        let mut want = serde_json::to_vec(&entry_to_json(&catalog, &e)).unwrap();
        want.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want),
            "entry {i}: {e:?}"
        );
    }
    // The fixed example too, with its duplicate header names.
    out.clear();
    write_jsonl(&catalog, &entry(), &mut out);
    let mut want = serde_json::to_vec(&entry_to_json(&catalog, &entry())).unwrap();
    want.push(b'\n');
    assert_eq!(out, want);
}

#[test]
fn timestamps_match_the_formatted_form_everywhere() {
    let formatted = |us: i64| {
        let (secs, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
        match time::OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                frac
            ),
            Err(_) => format!("invalid-time({us})"),
        }
    };
    let mut r = Rng(7);
    let samples = [0, -1, 1, i64::MIN, i64::MAX, -62_135_596_800_000_000 - 1];
    for us in samples
        .into_iter()
        .chain((0..20_000).map(|_| r.next() as i64 % 400_000_000_000_000_000))
    {
        assert_eq!(rfc3339_micros(Timestamp(us)), formatted(us), "{us}");
    }
}
