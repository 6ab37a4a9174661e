use remora_core::Timestamp;
use remora_entry::{entry_vars, Catalog, Entry, Value};

use crate::testdata::{catalog, pair, s, EntryBuilder};
use crate::{Filter, FilterError, Variables};

fn compile(cat: &Catalog, src: &str) -> Filter {
    Filter::compile(src, &Variables::new(&[cat])).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn compile_err(src: &str) -> FilterError {
    let cat = catalog();
    match Filter::compile(src, &Variables::new(&[&cat])) {
        Ok(_) => panic!("{src} compiled"),
        Err(e) => e,
    }
}

fn check(cat: &Catalog, src: &str, e: &Entry, want: bool) {
    let f = compile(cat, src);
    assert_eq!(f.matches(cat, e), want, "{src} on {}", entry_vars(cat, e));
}

fn http<'c>(cat: &'c Catalog, method: &str, path: &str, status: i64) -> EntryBuilder<'c> {
    EntryBuilder::new(cat, "http1")
        .req("method", s(method))
        .req("url", s(path))
        .req("path", s(path))
        .resp("status_code", Value::Int(status))
}

fn dns(cat: &Catalog, names: &[&str], rcode: Option<i64>) -> Entry {
    let mut b = EntryBuilder::new(cat, "dns").req("dns_request", Value::Bool(true));
    for n in names {
        b = b.req("dns_questions", s(n));
    }
    if let Some(r) = rcode {
        b = b
            .resp("dns_response", Value::Bool(true))
            .resp("dns_rcode", Value::Int(r))
            .resp("status_code", Value::Int(r));
    }
    let mut e = b.build();
    e.server.port = 53;
    e
}

#[test]
fn example_status_and_namespace_needs_kubernetes() {
    let cat = catalog();
    let f = r#"http && status_code >= 500 && dst.pod.namespace == "production""#;
    // Without Kubernetes no entry has a pod namespace: never a match.
    check(&cat, f, &http(&cat, "GET", "/", 503).build(), false);
    check(
        &cat,
        "http && status_code >= 500",
        &http(&cat, "GET", "/", 503).build(),
        true,
    );
    check(
        &cat,
        "http && status_code >= 500",
        &http(&cat, "GET", "/", 404).build(),
        false,
    );
}

#[test]
fn example_post_api_elapsed() {
    let cat = catalog();
    let f = r#"http && method == "POST" && path.contains("/api") && elapsed_time > 250000"#;
    let mut slow = http(&cat, "POST", "/v1/api/x", 200).build();
    slow.response.as_mut().unwrap().ts = Timestamp(slow.timestamp().micros() + 300_000);
    check(&cat, f, &slow, true);
    // Builder responses come 1 ms after the request.
    check(
        &cat,
        f,
        &http(&cat, "POST", "/v1/api/x", 200).build(),
        false,
    );
    let mut get = slow.clone();
    let req = get.request.as_mut().unwrap();
    let mut fields = req.fields.to_vec();
    fields[0].value = s("GET");
    req.fields = fields.into();
    check(&cat, f, &get, false);
}

#[test]
fn example_header_map_lower_cased() {
    let cat = catalog();
    let f = r#"http && request.headers["content-type"].startsWith("application/json")"#;
    let e = http(&cat, "POST", "/", 200)
        .req(
            "headers",
            pair("Content-Type", "application/json; charset=utf-8"),
        )
        .build();
    check(&cat, f, &e, true);
    let xml = http(&cat, "POST", "/", 200)
        .req("headers", pair("content-type", "text/xml"))
        .build();
    check(&cat, f, &xml, false);
    // No such header: indexing fails, so no match.
    check(&cat, f, &http(&cat, "POST", "/", 200).build(), false);
    // Repeated headers join with ", " as in entry_vars.
    let two = http(&cat, "GET", "/", 200)
        .req("headers", pair("Accept", "a"))
        .req("headers", pair("accept", "b"))
        .build();
    check(&cat, r#"request.headers["accept"] == "a, b""#, &two, true);
    check(&cat, r#""accept" in request.headers"#, &two, true);
    check(
        &cat,
        r#"map_get(request.headers, "x-missing", "none") == "none""#,
        &two,
        true,
    );
    check(
        &cat,
        r#"map_get(request.headers, "accept", "none") == "a, b""#,
        &two,
        true,
    );
    check(&cat, r#"size(request.headers) == 1"#, &two, true);
}

#[test]
fn example_secrets_regex() {
    let cat = catalog();
    let f = r#"http && path.matches("^/api/v1/namespaces/[^/]+/secrets") && status_code >= 400"#;
    check(
        &cat,
        f,
        &http(&cat, "GET", "/api/v1/namespaces/kube/secrets/x", 403).build(),
        true,
    );
    check(
        &cat,
        f,
        &http(&cat, "GET", "/api/v1/namespaces/kube/secrets", 200).build(),
        false,
    );
    check(
        &cat,
        f,
        &http(&cat, "GET", "/api/v1/namespaces/kube/pods", 403).build(),
        false,
    );
}

#[test]
fn example_metadata_ip() {
    let cat = catalog();
    let f = r#"http && dst.ip == "169.254.169.254" && path.startsWith("/latest/meta-data")"#;
    let mut e = http(&cat, "GET", "/latest/meta-data/iam", 200).build();
    check(&cat, f, &e, false);
    e.server.ip = "169.254.169.254".parse().unwrap();
    check(&cat, f, &e, true);
    check(
        &cat,
        "dst.port == 80 && src.port == 40000 && src.name == \"10.0.0.1\"",
        &e,
        true,
    );
}

#[test]
fn example_dns_list_membership() {
    let cat = catalog();
    let f = r#"dns && "example.com" in dns_questions"#;
    check(&cat, f, &dns(&cat, &["a.org", "example.com"], None), true);
    check(&cat, f, &dns(&cat, &["example.org"], None), false);
    check(&cat, f, &http(&cat, "GET", "/", 200).build(), false);
    // Declared but absent lists are empty, not missing.
    check(
        &cat,
        r#"dns && size(dns_answers) == 0"#,
        &dns(&cat, &["a"], None),
        true,
    );
    check(
        &cat,
        r#"dns_questions.exists(q, q.endsWith(".com"))"#,
        &dns(&cat, &["x.com"], None),
        true,
    );
}

#[test]
fn example_dns_response_rcode() {
    let cat = catalog();
    let f = "dns && dns_response && status_code != 0";
    check(&cat, f, &dns(&cat, &["a"], Some(3)), true);
    check(&cat, f, &dns(&cat, &["a"], Some(0)), false);
    // A query alone has no dns_response: no match.
    check(&cat, f, &dns(&cat, &["a"], None), false);
    check(
        &cat,
        "udp && !tcp && dns_rcode == 3",
        &dns(&cat, &["a"], Some(3)),
        true,
    );
}

#[test]
fn example_redis() {
    let cat = catalog();
    let f = r#"redis && redis_type == "GET" && redis_key.startsWith("session:")"#;
    let e = |verb: &str, key: &str| {
        EntryBuilder::new(&cat, "redis")
            .req("redis_type", s(verb))
            .req("redis_key", s(key))
            .build()
    };
    check(&cat, f, &e("GET", "session:42"), true);
    check(&cat, f, &e("SET", "session:42"), false);
    check(&cat, f, &e("GET", "user:42"), false);
}

#[test]
fn example_kafka() {
    let cat = catalog();
    let e = |name: &str| {
        EntryBuilder::new(&cat, "kafka")
            .req("kafka_api_key_name", s(name))
            .req("kafka_topics", s("orders"))
            .build()
    };
    check(
        &cat,
        r#"kafka && kafka_api_key_name == "PRODUCE""#,
        &e("PRODUCE"),
        true,
    );
    check(
        &cat,
        r#"kafka && kafka_api_key_name == "PRODUCE""#,
        &e("FETCH"),
        false,
    );
    check(
        &cat,
        r#"kafka && "orders" in kafka_topics"#,
        &e("FETCH"),
        true,
    );
}

#[test]
fn example_grpc_status() {
    let cat = catalog();
    let e = |status: Option<i64>| {
        let mut b = EntryBuilder::new(&cat, "http2")
            .req("method", s("POST"))
            .req("path", s("/pkg.Svc/Do"))
            .req("grpc", Value::Bool(true))
            .resp("status_code", Value::Int(200));
        if let Some(st) = status {
            b = b
                .resp("grpc", Value::Bool(true))
                .resp("grpc_status", Value::Int(st));
        }
        b.build()
    };
    check(&cat, "grpc && grpc_status != 0", &e(Some(14)), true);
    check(&cat, "grpc && grpc_status != 0", &e(Some(0)), false);
    // HTTP/2 without gRPC: `grpc` is false, `http` true.
    let plain = EntryBuilder::new(&cat, "http2")
        .req("method", s("GET"))
        .resp("status_code", Value::Int(200))
        .build();
    check(&cat, "grpc", &plain, false);
    check(&cat, "http && !grpc && status_code == 200", &plain, true);
    check(&cat, "grpc", &http(&cat, "GET", "/", 200).build(), false);
}

#[test]
fn example_recent_timestamp() {
    let cat = catalog();
    let f = r#"timestamp > now() - duration("5m")"#;
    let mut recent = http(&cat, "GET", "/", 200).build();
    let now = chrono::Utc::now().timestamp_micros();
    recent.request.as_mut().unwrap().ts = Timestamp(now - 60_000_000);
    check(&cat, f, &recent, true);
    recent.request.as_mut().unwrap().ts = Timestamp(now - 600_000_000);
    check(&cat, f, &recent, false);
    check(
        &cat,
        r#"timestamp > timestamp("2020-01-01T00:00:00Z") && timestamp < timestamp("2020-01-01T00:00:01Z")"#,
        &{
            let mut e = recent.clone();
            e.request.as_mut().unwrap().ts = Timestamp(1_577_836_800_500_000);
            e
        },
        true,
    );
}

#[test]
fn example_not_dns_by_name() {
    let cat = catalog();
    let f = r#"!dns && (src.name == "frontend" || dst.name == "frontend")"#;
    // Without Kubernetes the name is the IP.
    let e = http(&cat, "GET", "/", 200).build();
    check(&cat, f, &e, false);
    check(
        &cat,
        r#"!dns && (src.name == "10.0.0.9" || dst.name == "10.0.0.2")"#,
        &e,
        true,
    );
    check(
        &cat,
        r#"!dns && (src.name == "10.0.0.9" || dst.name == "10.0.0.2")"#,
        &dns(&cat, &["a"], None),
        false,
    );
}

#[test]
fn other_protocols_fields() {
    let cat = catalog();
    let pg = EntryBuilder::new(&cat, "postgres")
        .req("sql_query", s("select 1"))
        .req("sql_command", s("SELECT"))
        .resp("sql_error_code", s("42P01"))
        .build();
    check(
        &cat,
        r#"postgresql && sql_command == "SELECT" && sql_error_code == "42P01""#,
        &pg,
        true,
    );
    check(&cat, "mysql", &pg, false);
    let my = EntryBuilder::new(&cat, "mysql")
        .req("sql_command", s("INSERT"))
        .resp("sql_error_code", Value::Int(1062))
        .build();
    // `sql_error_code` is a string in PostgreSQL and an int in MySQL: dyn.
    check(&cat, "mysql && sql_error_code == 1062", &my, true);
    let amqp = EntryBuilder::new(&cat, "amqp")
        .req("amqp_method", s("basic.publish"))
        .req("amqp_exchange", s("ex"))
        .build();
    check(
        &cat,
        r#"amqp && amqp_method == "basic.publish" && amqp_exchange == "ex""#,
        &amqp,
        true,
    );
    let mqtt = EntryBuilder::new(&cat, "mqtt")
        .req("mqtt_type", s("PUBLISH"))
        .req("mqtt_qos", Value::Int(1))
        .req("mqtt_topic", s("a/b"))
        .build();
    check(
        &cat,
        r#"mqtt && mqtt_type == "PUBLISH" && mqtt_qos == 1 && mqtt_topic.startsWith("a/")"#,
        &mqtt,
        true,
    );
    check(
        &cat,
        "ldap || mongodb || ws || gql || tls || icmp",
        &mqtt,
        false,
    );
    check(
        &cat,
        r#"protocol == "MQTT" && id == 1 && flow_id == 9 && conn_id == 9 && !has_pcap"#,
        &mqtt,
        true,
    );
    // A plugin's non-top-level field is reachable as request.<name>.
    let h = http(&cat, "GET", "/", 200)
        .req("host", s("example.com"))
        .build();
    check(
        &cat,
        r#"request.host == "example.com" && response.status_code == 200"#,
        &h,
        true,
    );
    check(&cat, r#"request.status_code == 200"#, &h, false);
}

#[test]
fn missing_field_makes_its_comparison_false() {
    let cat = catalog();
    let d = dns(&cat, &["a"], Some(0));
    check(&cat, r#"method == "GET""#, &d, false);
    check(&cat, r#"method != "GET""#, &d, false);
    check(&cat, r#"method == "GET" || dns"#, &d, true);
    check(&cat, r#"dns || method == "GET""#, &d, true);
    // The comparison is false, so its negation is true.
    check(&cat, r#"!(method == "GET")"#, &d, true);
    check(&cat, r#"!(method != "GET")"#, &d, true);
    check(&cat, r#"!(method == "GET") && dns"#, &d, true);
    check(&cat, r#"!http || method != "GET""#, &d, true);
    // Anywhere inside a leaf: the whole leaf is false.
    check(&cat, r#"size(method) > 3"#, &d, false);
    check(&cat, r#"!(size(method) > 3)"#, &d, true);
    check(&cat, r#"!path.startsWith("/api")"#, &d, true);
    check(&cat, r#"!path.matches("^/api")"#, &d, true);
    // A missing bool variable is false too.
    check(&cat, "!dns_response", &dns(&cat, &["a"], None), true);
    check(&cat, "dns_response", &dns(&cat, &["a"], None), false);
    // Ternary: a missing condition picks the else branch.
    check(&cat, r#"method == "GET" ? false : true"#, &d, true);
    check(&cat, r#"has(request.method)"#, &d, false);
    check(
        &cat,
        r#"has(request.method)"#,
        &http(&cat, "GET", "/", 200).build(),
        true,
    );
    // Kubernetes identity is always missing today.
    check(&cat, r#"dst.pod.name == "x" || true"#, &d, true);
    check(&cat, r#"!(dst.pod.name == "x")"#, &d, true);
    check(&cat, r#"!("a" in namespaces)"#, &d, true);
    check(&cat, r#"!(local_labels["app"] == "x")"#, &d, true);
}

#[test]
fn missing_map_key_makes_its_comparison_false() {
    let cat = catalog();
    let e = http(&cat, "GET", "/", 200)
        .req("headers", pair("Content-Type", "text/plain"))
        .build();
    check(&cat, r#"request.headers["x-absent"] == "a""#, &e, false);
    check(&cat, r#"request.headers["x-absent"] != "a""#, &e, false);
    check(&cat, r#"!(request.headers["x-absent"] == "a")"#, &e, true);
    check(
        &cat,
        r#"!request.headers["x-absent"].startsWith("a")"#,
        &e,
        true,
    );
    // Keys are stored lower-cased: an upper-case key is never present.
    check(
        &cat,
        r#"request.headers["Content-Type"] == "text/plain""#,
        &e,
        false,
    );
    check(
        &cat,
        r#"request.headers["content-type"] == "text/plain""#,
        &e,
        true,
    );
    // No headers at all, and a DNS entry without the map variable.
    let bare = http(&cat, "GET", "/", 200).build();
    check(
        &cat,
        r#"!(request.headers["content-type"] == "a")"#,
        &bare,
        true,
    );
    let d = dns(&cat, &["a"], None);
    check(
        &cat,
        r#"!(request.headers["content-type"] == "a")"#,
        &d,
        true,
    );
    check(&cat, r#"!(query_string["q"] == "a")"#, &d, true);
}

#[test]
fn real_errors_are_not_read_as_missing() {
    let cat = catalog();
    let e = http(&cat, "GET", "/", 200).build();
    // A type error is an error: `!` keeps it, and it does not match.
    check(&cat, r#"method < 3"#, &e, false);
    check(&cat, r#"!(method < 3)"#, &e, false);
    // `&&`/`||` absorb it where the other side decides, as in CEL.
    check(&cat, r#"method < 3 || http"#, &e, true);
    check(&cat, r#"!(method < 3 && dns)"#, &e, true);
    // A bad pattern the filter computes is an error, not a non-match to
    // negate (a bad literal one is refused when the filter compiles).
    check(&cat, r#"!path.matches(method + "(")"#, &e, false);
    // An unknown function is an error too, though CEL names it like a
    // missing variable.
    check(&cat, r#"!nosuchfn(method)"#, &e, false);
}

#[test]
fn native_checks_cover_common_leaves() {
    let cat = catalog();
    let e = http(&cat, "GET", "/api/v1/x", 200)
        .req("headers", pair("Accept", "a"))
        .req("headers", pair("accept", "b"))
        .build();
    for (src, want) in [
        (r#"path.startsWith("/api") && path.endsWith("/x")"#, true),
        (r#"path.contains("v1") && !path.contains("v2")"#, true),
        (
            r#"path.matches("^/api/v[0-9]+/") && path.matches("x$")"#,
            true,
        ),
        (r#"path.matches("^/v1")"#, false),
        (r#"request.headers["accept"] == "a, b""#, true),
        (r#"request.headers["accept"].startsWith("a, ")"#, true),
        (
            r#"src.ip.startsWith("10.0.") || dst.name.endsWith(".9")"#,
            true,
        ),
        (
            r#"!dns && (src.name == "x" || dst.name == "10.0.0.2")"#,
            true,
        ),
        (r#""x" in dns_questions"#, false),
    ] {
        let f = compile(&cat, src);
        assert!(f.has_native(), "{src}");
        assert_eq!(f.matches(&cat, &e), want, "{src}");
        assert_eq!(f.matches_without_native(&cat, &e), want, "{src} via CEL");
    }
    let d = dns(&cat, &["a.com", "b.com"], None);
    check(&cat, r#""b.com" in dns_questions"#, &d, true);
    check(&cat, r#"!("c.com" in dns_questions)"#, &d, true);
}

#[test]
fn filter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Filter>();
    let cat = catalog();
    let f = compile(&cat, "http && status_code >= 500");
    let e = http(&cat, "GET", "/", 503).build();
    std::thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| assert!(f.matches(&cat, &e)));
        }
    });
}

#[test]
fn empty_filter_matches_all() {
    let cat = catalog();
    for src in ["", "   \n"] {
        assert!(compile(&cat, src).matches(&cat, &dns(&cat, &[], None)));
    }
    assert_eq!(compile(&cat, "http").source(), "http");
}

#[test]
fn unknown_variables_rejected_with_span() {
    let e = compile_err("http && stauts_code >= 500");
    assert_eq!((e.start, e.end), (8, 19), "{e}");
    assert!(e.message.contains("stauts_code"), "{e}");
    assert!(e.message.contains("status_code"), "suggestion: {e}");
    let e = compile_err(r#"http && src.ipp == "1.2.3.4""#);
    assert_eq!((e.start, e.end), (8, 15), "{e}");
    assert!(e.message.contains("src.ipp"), "{e}");
    let e = compile_err("src == 1");
    assert!(e.message.contains("not a variable by itself"), "{e}");
    let e = compile_err("src.ip.x == 1");
    assert_eq!((e.start, e.end), (0, 8), "{e}");
    let e = compile_err("dns_questions.exists(q, q == nope)");
    assert!(e.message.contains("nope"), "{e}");
    // Display: message, the filter, carets under the span.
    let shown = compile_err("http && stauts_code >= 500").to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[1], "  http && stauts_code >= 500");
    assert_eq!(lines[2], "          ^^^^^^^^^^^");
}

/// A `matches` pattern written in the filter is compiled with it: an
/// invalid one made every entry a non-match, a filter nothing passed.
#[test]
fn invalid_literal_patterns_are_refused_with_span() {
    let e = compile_err(r#"http && path.matches("[")"#);
    assert_eq!((e.start, e.end), (21, 24), "{e}");
    assert!(
        e.message.contains(r#""[" is not a regular expression"#),
        "{e}"
    );
    assert!(e.message.contains("unclosed character class"), "{e}");
    let e = compile_err(r#"matches(path, "(a")"#);
    assert_eq!(e.start, 14, "{e}");
    assert!(e.message.contains("unclosed group"), "{e}");
    // A pattern too big to compile is refused too, not left to each entry.
    let e = compile_err(r#"url.matches("a{99999999}")"#);
    assert!(e.message.contains("size limit"), "{e}");
    // Valid patterns, and patterns that are not literals, still compile.
    let cat = catalog();
    let e = http(&cat, "GET", "/api/v1", 200).build();
    check(&cat, r#"path.matches("^/api/v[0-9]+$")"#, &e, true);
    check(&cat, r#"path.matches(method)"#, &e, false);
}

#[test]
fn error_offsets_count_characters() {
    let e = compile_err(r#""é€" == stauts_code"#);
    assert_eq!((e.start, e.end), (8, 19), "{e}");
    let e = compile_err("http &&\n stauts_code");
    assert_eq!((e.start, e.end), (9, 20), "{e}");
    let e = compile_err(r#""é€" == && http"#);
    assert_eq!(e.start, 8, "{e}");
}

#[test]
fn entry_outside_catalog_does_not_match() {
    let cat = catalog();
    let mut e = http(&cat, "GET", "/", 200).build();
    e.plugin = 99;
    assert!(!compile(&cat, "http || true").matches(&cat, &e));
}

#[test]
fn syntax_errors_rejected_with_position() {
    let e = compile_err("http && (status_code >");
    assert_eq!(e.start, 22, "{e}");
    let e = compile_err("http && && dns");
    assert_eq!(e.start, 8, "{e}");
    let e = compile_err(r#"method == "GET"#);
    assert!(e.start <= 10, "{e}");
    assert!(!e.message.is_empty());
}

#[test]
fn filters_longer_than_the_limit_are_rejected_before_parsing() {
    let cat = catalog();
    // At the limit: a long but real filter (a string literal) compiles.
    let pad = crate::MAX_FILTER_BYTES - r#"method == """#.len();
    let at_limit = format!(r#"method == "{}""#, "a".repeat(pad));
    assert_eq!(at_limit.len(), crate::MAX_FILTER_BYTES);
    compile(&cat, &at_limit);
    // Over it: two megabytes (seconds of parsing) are refused by their
    // length, not by the parser; the error names the size and shows only
    // the start.
    let huge = "x".repeat(2 << 20);
    let e = compile_err(&huge);
    assert!(e.message.contains("2097152 bytes"), "{e}");
    assert!(e.message.contains("16384"), "{e}");
    assert!(
        e.to_string().len() < 300,
        "{} bytes of error",
        e.to_string().len()
    );
    let over = format!("{at_limit} ");
    assert!(compile_err(&over).message.contains("16385 bytes"));
}

/// Deep filters are refused before the parser sees them: a chain of 8,000
/// `+` (16 KiB) overflowed a 2 MiB API thread inside the CEL parser and
/// aborted the process. Operators and brackets inside strings do not count;
/// `&&` and `||` chains (iterative in the grammar) do not either.
#[test]
fn filters_too_deep_for_the_parser_are_rejected_before_parsing() {
    let cat = catalog();
    // `n` operators: n - 1 `+` and one `==`.
    let chain = |n: usize| format!("{} == {n}", vec!["1"; n].join("+"));
    for (src, what) in [
        (
            chain(crate::MAX_FILTER_OPERATORS + 1),
            "comparison, arithmetic",
        ),
        (chain(8000), "comparison, arithmetic"),
        (
            format!("method{}", ".size()".repeat(300)),
            "comparison, arithmetic",
        ),
        (
            format!("{}true{}", "(".repeat(33), ")".repeat(33)),
            "more than 32 brackets deep",
        ),
        (
            format!("{}]{} == []", "[".repeat(40), "]".repeat(39)),
            "more than 32 brackets deep",
        ),
    ] {
        let e = compile_err(&src);
        assert!(e.message.contains(what), "{}…: {e}", &src[..20]);
    }
    // Within the limits. The parser's debug build takes ~30 KiB of stack
    // per level, so the largest filters run on a thread with room for it.
    let big_stack = |src: String| {
        let cat = cat.clone();
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || {
                let e = http(&cat, "GET", "/", 200).build();
                compile(&cat, &src).matches(&cat, &e)
            })
            .unwrap()
            .join()
            .unwrap()
    };
    assert!(big_stack(chain(crate::MAX_FILTER_OPERATORS)));
    assert!(big_stack(format!(
        "{}true{}",
        "(".repeat(crate::MAX_FILTER_NESTING),
        ")".repeat(crate::MAX_FILTER_NESTING)
    )));
    // Inside strings nothing counts; `||` chains are not counted.
    compile(&cat, &format!(r#"path == "{}""#, "((([[+.".repeat(500)));
    let alternatives: Vec<String> = (0..300).map(|i| format!("status_code == {i}")).collect();
    compile(&cat, &alternatives[..100].join(" || "));
    let e = compile_err(&alternatives.join(" || "));
    assert!(e.message.contains("x in [a, b, ...]"), "{e}");
    compile(
        &cat,
        &format!(
            "status_code in [{}]",
            (0..1000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}

#[test]
fn variables_listing() {
    let cat = catalog();
    let v = Variables::new(&[&cat]);
    let get = |n: &str| v.get(n).unwrap_or_else(|| panic!("{n} missing"));
    assert_eq!(get("ldap").protocol.as_deref(), Some("ldap"));
    assert_eq!(get("timestamp").ty, "timestamp");
    assert_eq!(get("dns_questions").ty, "list(string)");
    assert_eq!(get("request.headers").ty, "map(string,string)");
    assert_eq!(get("status_code").ty, "int");
    assert_eq!(get("sql_error_code").ty, "dyn");
    assert!(v.get("headers").is_none(), "headers is not top-level");
    assert!(v.list().len() > 100);
}

/// Every bare and dotted variable `entry_vars` produces evaluates in CEL to
/// the same value.
#[test]
fn agrees_with_entry_vars() {
    let cat = catalog();
    let entries = [
        http(&cat, "GET", "/a", 200)
            .req("headers", pair("X-A", "1"))
            .req("http_version", s("1.1"))
            .build(),
        dns(&cat, &["a.com", "b.com"], Some(2)),
        EntryBuilder::new(&cat, "kafka")
            .req("kafka_api_key", Value::Int(0))
            .req("kafka_topics", s("t"))
            .build(),
    ];
    for e in &entries {
        let vars = entry_vars(&cat, e);
        for (name, v) in vars.as_object().unwrap() {
            let lit = match v {
                serde_json::Value::String(x) if name == "timestamp" => {
                    format!("timestamp(\"{x}\")")
                }
                serde_json::Value::Object(m) => format!(
                    "{{{}}}",
                    m.iter()
                        .map(|(k, v)| format!("{:?}: {v}", k))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => other.to_string(),
            };
            check(&cat, &format!("{name} == {lit}"), e, true);
        }
    }
}

/// The native fast path gives exactly the CEL answer, over random entries.
mod native_equivalence {
    use super::*;
    use proptest::prelude::*;

    const FILTERS: &[&str] = &[
        "http && status_code >= 500",
        "status_code >= 500",
        "500 <= status_code && http",
        r#"http && method == "POST" && elapsed_time > 250000"#,
        r#"http && dst.ip == "10.0.0.2" && dst.port == 80"#,
        r#"src.ip != "10.0.0.1" && tcp"#,
        r#"!dns && method != "GET""#,
        "dns && dns_response && status_code != 0",
        "grpc && grpc_status != 0",
        r#"redis && redis_type == "GET""#,
        r#"protocol == "HTTP" && !udp"#,
        "request.status_code == 200 && response.status_code < 300",
        "has_pcap && http",
        r#"!(method == "POST")"#,
        r#"!(status_code >= 500) && !dns"#,
        r#"!dns && (src.name == "10.0.0.2" || dst.name == "10.0.0.2")"#,
        r#"!(dst.ip == "10.0.0.3") || grpc_status == 1"#,
        r#"http && request.headers["content-type"].startsWith("application/json")"#,
        r#"!(request.headers["content-type"] == "text/xml")"#,
        r#"request.headers["Content-Type"] == "text/xml""#,
        r#"path.startsWith("/api") || path.endsWith("/x") || !path.contains("v1")"#,
        r#"!path.matches("^/api/v[0-9]+/items$")"#,
        r#"dns && "a" in dns_questions"#,
        r#"!("b" in dns_questions) && !("b" in dns_answers)"#,
        r#"method == "POST" ? status_code < 300 : !redis"#,
        r#"!(method < 3) || http"#,
        r#"!has_pcap && !(grpc_status != 0)"#,
    ];

    fn entry(cat: &Catalog, kind: u8, status: i64, method: bool, ip: u8) -> Entry {
        let mut e = match kind % 4 {
            0 => {
                let mut b = EntryBuilder::new(cat, "http1");
                if method {
                    b = b.req("method", s("POST"));
                }
                let path = ["/api/v1/items", "/x", "/v1/api/x"][status as usize % 3];
                b = b.req("path", s(path));
                match status % 4 {
                    0 => {}
                    1 => b = b.req("headers", pair("Content-Type", "application/json")),
                    2 => b = b.req("headers", pair("content-type", "text/xml")),
                    _ => {
                        b = b
                            .req("headers", pair("Content-Type", "text/xml"))
                            .req("headers", pair("content-type", "application/json"))
                    }
                }
                b.resp("status_code", Value::Int(status)).build()
            }
            1 => dns(
                cat,
                [["a"].as_slice(), &["b", "a"], &[]][status as usize % 3],
                (status % 2 == 0).then_some(status % 6),
            ),
            2 => EntryBuilder::new(cat, "http2")
                .req("grpc", Value::Bool(method))
                .resp("grpc_status", Value::Int(status % 3))
                .build(),
            _ => EntryBuilder::new(cat, "redis")
                .req("redis_type", s(if method { "GET" } else { "SET" }))
                .build(),
        };
        e.server.ip = format!("10.0.0.{ip}").parse().unwrap();
        e
    }

    #[test]
    fn filters_use_native_path() {
        let cat = catalog();
        for f in FILTERS {
            assert!(compile(&cat, f).has_native(), "{f}");
        }
        assert!(!compile(&cat, r#"size(path) > 1 && http"#).has_native());
    }

    proptest! {
        #[test]
        fn native_equals_cel(kind in 0u8..4, status in 0i64..600, method: bool, ip in 1u8..4, elapsed in 0i64..500_000) {
            let cat = catalog();
            let mut e = entry(&cat, kind, status, method, ip);
            let t0 = e.timestamp().micros();
            if let Some(r) = e.response.as_mut() {
                r.ts = Timestamp(t0 + elapsed);
            }
            for f in FILTERS {
                let f = compile(&cat, f);
                prop_assert_eq!(f.matches(&cat, &e), f.matches_without_native(&cat, &e), "{}", f.source());
            }
        }
    }
}

#[test]
fn filters_whose_comprehensions_multiply_past_the_cost_limit_are_refused() {
    let cat = catalog();
    let l = "[0,1,2,3,4,5,6,7,8,9]";
    // Four nested comprehensions over ten elements: 10,000 visits per
    // entry, and 10^n for n levels; refused before any entry is read.
    let deep = format!("{l}.all(a, {l}.all(b, {l}.all(c, {l}.all(d, a+b+c+d >= 0)))) && http");
    let e = compile_err(&deep);
    assert!(e.message.contains("steps per entry"), "{e}");
    assert!(
        e.message.contains(&crate::MAX_FILTER_COST.to_string()),
        "{e}"
    );
    assert_eq!((e.start, e.end), (0, deep.chars().count()));
    // Nested over entry lists: refused too.
    compile_err("request.headers.exists(k, response.headers.exists(j, k == j))");
    // One level over an entry's list, or two over short literals: fine, and
    // they still decide entries.
    let f = compile(&cat, r#"dns_questions.exists(q, q.endsWith(".internal"))"#);
    assert!(f.matches(&cat, &dns(&cat, &["db.internal"], Some(0))));
    assert!(!f.matches(&cat, &dns(&cat, &["example.com"], Some(0))));
    compile(
        &cat,
        &format!("{l}.all(a, {l}.exists(b, a + b == 9)) && http"),
    );
}
