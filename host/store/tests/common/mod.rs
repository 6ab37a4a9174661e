//! Entries and catalogs for the store tests: deterministic by number, so a
//! test (or a crashed child process) can say what any id must hold.
#![allow(dead_code)]

use std::sync::Arc;

use remora_core::{Endpoint, Timestamp, Transport};
use remora_entry::{
    Body, Catalog, Entry, Field, FieldSchema, FieldType, Message, PluginSchema, ProtocolSchema,
    Value,
};

pub fn catalog(plugin_name: &str) -> Arc<Catalog> {
    let field = |id, name: &str, ty| FieldSchema {
        id,
        name: name.into(),
        ty,
        top_level: id < 3,
        doc: format!("doc of {name}"),
    };
    let proto = |name: &str, transport| ProtocolSchema {
        name: name.into(),
        flag: name.to_lowercase(),
        transport,
        ports: vec![80, 8080],
        request_summary: "{method} {path}".into(),
        response_summary: "{status}".into(),
    };
    Arc::new(Catalog {
        plugins: vec![PluginSchema::new(
            plugin_name.into(),
            "1.0.0".into(),
            vec![proto("HTTP", Transport::Tcp), proto("DNS", Transport::Udp)],
            vec![
                field(0, "method", FieldType::Str),
                field(1, "status", FieldType::Int),
                field(2, "ok", FieldType::Bool),
                field(3, "ratio", FieldType::Float),
                field(4, "raw", FieldType::Bytes),
                field(5, "headers", FieldType::StrMap),
            ],
        )],
    })
}

/// Request time of entry `n`: mostly increasing, but every 7th entry
/// finished late and carries an earlier request time.
pub fn ts_of(n: u64) -> i64 {
    let base = 1_700_000_000_000_000 + n as i64 * 1_000;
    if n.is_multiple_of(7) {
        base - 25_000
    } else {
        base
    }
}

/// Entry number `n` (id 0 until stored), covering every `Value` variant,
/// bodies with and without data, both address families and both transports.
pub fn entry(n: u64) -> Entry {
    let v4 = |a: u8, port| Endpoint::new([10, 0, 0, a].into(), port);
    let v6 = |port| Endpoint::new("fd00::1234".parse().unwrap(), port);
    let udp = n.is_multiple_of(5);
    let request = (n % 11 != 3).then(|| Message {
        ts: Timestamp(ts_of(n)),
        fields: vec![
            Field {
                id: 0,
                value: Value::Str(if n.is_multiple_of(2) { "GET" } else { "POST" }.into()),
            },
            Field {
                id: 5,
                value: Value::Pair("host".into(), format!("svc-{}.ns", n % 13)),
            },
            Field {
                id: 5,
                value: Value::Pair("user-agent".into(), "curl/8.5 ünïcode".into()),
            },
            Field {
                id: 4,
                value: Value::Bytes(vec![0, 255, n as u8]),
            },
        ]
        .into(),
        body: (n % 2 == 1).then(|| {
            Box::new(Body {
                data: format!("request body {n} ")
                    .repeat((n % 4) as usize)
                    .into_bytes(),
                original_len: 100 + n,
                truncated: n.is_multiple_of(3),
                decoded_from: (n % 4 == 1).then(|| "gzip".to_string()),
            })
        }),
    });
    let response = (n % 11 != 5).then(|| Message {
        ts: Timestamp(ts_of(n) + 300 + (n % 17) as i64),
        fields: vec![
            Field {
                id: 1,
                value: Value::Int(if n.is_multiple_of(9) {
                    -1
                } else {
                    200 + (n % 3) as i64
                }),
            },
            Field {
                id: 2,
                value: Value::Bool(n.is_multiple_of(2)),
            },
            Field {
                id: 3,
                value: Value::Float(n as f64 / 3.0),
            },
        ]
        .into(),
        body: Some(Box::new(Body {
            data: vec![b'x'; (n % 50) as usize],
            original_len: n % 50,
            truncated: false,
            decoded_from: None,
        })),
    });
    Entry {
        id: 0,
        flow_id: n / 3,
        plugin: 0,
        protocol: u16::from(udp),
        transport: if udp { Transport::Udp } else { Transport::Tcp },
        client: v4((n % 200) as u8, 40000 + (n % 1000) as u16),
        server: if n.is_multiple_of(4) {
            v6(443)
        } else {
            v4(1, 80)
        },
        standalone: request.is_none() || response.is_none(),
        request,
        response,
    }
}

/// Entries `first..first + count`.
pub fn batch(first: u64, count: u64) -> Vec<Entry> {
    (first..first + count).map(entry).collect()
}

/// `entry(id)` as the store returns it: with its id, bodies without data.
pub fn expected(id: u64, with_bodies: bool) -> Entry {
    let mut e = entry(id);
    e.id = id;
    if !with_bodies {
        for m in [&mut e.request, &mut e.response].into_iter().flatten() {
            if let Some(b) = &mut m.body {
                b.data.clear();
            }
        }
    }
    e
}
