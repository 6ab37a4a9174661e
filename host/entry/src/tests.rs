use super::*;
use remora_core::{Endpoint, Timestamp, Transport};

fn http_schema() -> PluginSchema {
    let f = |id, name: &str, ty, top_level| FieldSchema {
        id,
        name: name.into(),
        ty,
        top_level,
        doc: String::new(),
    };
    PluginSchema::new(
        "http1".into(),
        "0.1.0".into(),
        vec![ProtocolSchema {
            name: "HTTP".into(),
            flag: "http".into(),
            transport: Transport::Tcp,
            ports: vec![80],
            request_summary: "{method} {url}".into(),
            response_summary: "{status_code}".into(),
        }],
        vec![
            f(0, "method", FieldType::Str, true),
            f(1, "url", FieldType::Str, true),
            f(2, "headers", FieldType::StrMap, false),
            f(3, "status_code", FieldType::Int, true),
            f(4, "tags", FieldType::StrList, true),
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
            ],
            body: None,
        }),
        response: Some(Message {
            ts: Timestamp(1_795_626_776_607_428),
            fields: vec![Field {
                id: 3,
                value: Value::Int(404),
            }],
            body: Some(Body {
                data: b"nope".to_vec(),
                original_len: 4,
                truncated: false,
                decoded_from: None,
            }),
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
