//! The API over a real store, served on a loopback port: queries, paging,
//! filters, bodies, subscriptions over graphql-transport-ws, auth, metrics,
//! limits, and the committed SDL.
//!
//! The capture side is a fixed `Telemetry` here (the end-to-end tests in
//! tests/ run the API against a real capture).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use remora_api::{
    router, ApiConfig, ApiState, CaptureStats, Counter, FlowRecord, LiveFeed, PluginRecord,
    Telemetry,
};
use remora_core::fanout::Missed;
use remora_core::{Endpoint, Timestamp, Transport};
use remora_entry::{
    Body, Catalog, Entry, Field, FieldSchema, FieldType, Message, PluginSchema, ProtocolSchema,
    Value,
};
use remora_store::{Store, StoreConfig, StoredEntry};
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

fn catalog() -> Arc<Catalog> {
    let f = |id, name: &str, ty| FieldSchema {
        id,
        name: name.into(),
        ty,
        top_level: true,
        doc: String::new(),
    };
    let p = |name: &str, flag: &str, transport, req: &str, resp: &str| ProtocolSchema {
        name: name.into(),
        flag: flag.into(),
        transport,
        ports: vec![80],
        request_summary: req.into(),
        response_summary: resp.into(),
    };
    Arc::new(Catalog {
        plugins: vec![
            PluginSchema::new(
                "http1".into(),
                "0.1.0".into(),
                vec![p(
                    "HTTP",
                    "http",
                    Transport::Tcp,
                    "{method} {path}",
                    "{status_code}",
                )],
                vec![
                    f(0, "method", FieldType::Str),
                    f(1, "path", FieldType::Str),
                    f(2, "status_code", FieldType::Int),
                    f(3, "headers", FieldType::StrMap),
                ],
            ),
            PluginSchema::new(
                "dns".into(),
                "0.1.0".into(),
                vec![p("DNS", "dns", Transport::Udp, "{dns_questions}", "")],
                vec![
                    f(0, "dns_questions", FieldType::StrList),
                    f(1, "dns_rcode", FieldType::Int),
                ],
            ),
        ],
    })
}

/// Entry n: HTTP GET /item/n from 10.0.0.(n%3+1) to 10.0.1.1:80, status 500
/// every 10th; every 4th is a DNS query instead.
fn entry(n: u64) -> Entry {
    let ts = Timestamp(1_764_000_000_000_000 + n as i64 * 1000);
    let client = Endpoint::new([10, 0, 0, (n % 3 + 1) as u8].into(), 40000);
    if n % 4 == 3 {
        return Entry {
            id: 0,
            flow_id: n,
            plugin: 1,
            protocol: 0,
            transport: Transport::Udp,
            client,
            server: Endpoint::new([10, 0, 2, 53].into(), 53),
            request: Some(Message {
                ts,
                fields: vec![Field {
                    id: 0,
                    value: Value::Str(format!("host{n}.example.com")),
                }]
                .into(),
                body: None,
            }),
            response: Some(Message {
                ts: ts.add_micros(50),
                fields: vec![Field {
                    id: 1,
                    value: Value::Int(if n % 8 == 7 { 3 } else { 0 }),
                }]
                .into(),
                body: None,
            }),
            standalone: false,
        };
    }
    Entry {
        id: 0,
        flow_id: n,
        plugin: 0,
        protocol: 0,
        transport: Transport::Tcp,
        client,
        server: Endpoint::new([10, 0, 1, 1].into(), 80),
        request: Some(Message {
            ts,
            fields: vec![
                Field {
                    id: 0,
                    value: Value::Str("GET".into()),
                },
                Field {
                    id: 1,
                    value: Value::Str(format!("/item/{n}")),
                },
                Field {
                    id: 3,
                    value: Value::Pair("Content-Type".into(), "application/json".into()),
                },
            ]
            .into(),
            body: None,
        }),
        response: Some(Message {
            ts: ts.add_micros(100 + n as i64),
            fields: vec![Field {
                id: 2,
                value: Value::Int(if n.is_multiple_of(10) { 500 } else { 200 }),
            }]
            .into(),
            body: Some(Box::new(Body {
                data: format!("{{\"n\":{n}}}").into_bytes(),
                original_len: 7,
                truncated: false,
                decoded_from: None,
            })),
        }),
        standalone: false,
    }
}

struct FixedTelemetry;

impl Telemetry for FixedTelemetry {
    fn stats(&self) -> CaptureStats {
        CaptureStats {
            packets: 1234,
            bytes: 99_000,
            entries: 40,
            drops: vec![Counter::new("flow_table_full", 2)],
            ..CaptureStats::default()
        }
    }
    fn flows(&self, _limit: usize) -> Vec<FlowRecord> {
        Vec::new()
    }
    fn plugins(&self) -> Vec<PluginRecord> {
        Vec::new()
    }
}

struct Server {
    addr: SocketAddr,
    state: Arc<ApiState>,
    _dir: tempfile::TempDir,
}

/// A store with `n` entries behind a server on an ephemeral loopback port.
async fn server(n: u64, token: Option<&str>) -> Server {
    server_limited(
        n,
        token,
        remora_api::MAX_CONNECTIONS,
        remora_api::REQUEST_HEAD_TIMEOUT,
    )
    .await
}

/// The same, with at most `connections` HTTP connections open at once, each
/// given `head_timeout` to deliver a request's head.
async fn server_limited(
    n: u64,
    token: Option<&str>,
    connections: usize,
    head_timeout: std::time::Duration,
) -> Server {
    serve_entries((0..n).map(entry).collect(), token, |s| {
        s.with_connection_limit(connections, head_timeout)
    })
    .await
}

/// A store holding `entries` behind a server whose state `configure` sets up.
async fn serve_entries(
    mut entries: Vec<Entry>,
    token: Option<&str>,
    configure: impl FnOnce(ApiState) -> ApiState,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(StoreConfig::new(dir.path())).unwrap();
    let cat = catalog();
    if !entries.is_empty() {
        store.append(&cat, &mut entries).unwrap();
    }
    let state = Arc::new(configure(ApiState::new(
        Arc::new(store),
        cat,
        LiveFeed::new(),
        Arc::new(FixedTelemetry),
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = ApiConfig {
        bind: addr,
        token: token.map(str::to_owned),
        web_dir: None,
    };
    let app = router(state.clone(), &cfg);
    tokio::spawn(remora_api::serve(
        listener,
        app,
        &state,
        std::future::pending(),
    ));
    Server {
        addr,
        state,
        _dir: dir,
    }
}

/// One unlabelled sample of the metrics, read without a connection.
fn metrics_value(state: &ApiState, name: &str) -> u64 {
    let text = remora_api::render_metrics(state);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

async fn metrics_text(s: &Server) -> String {
    reqwest::get(format!("http://{}/metrics", s.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn gql(s: &Server, query: &str, vars: Json) -> Json {
    reqwest::Client::new()
        .post(format!("http://{}/graphql", s.addr))
        .json(&json!({"query": query, "variables": vars}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn committed_sdl_matches_the_code() {
    let s = server(0, None).await;
    let sdl = remora_api::build_schema(s.state.clone()).sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    if std::env::var_os("REMORA_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &sdl).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap();
    assert!(
        committed == sdl,
        "host/api/schema.graphql differs from the schema in the code; \
         rerun with REMORA_UPDATE_SCHEMA=1 and review the diff"
    );
}

#[tokio::test]
async fn filtered_pages_cover_every_match_once_newest_first() {
    let s = server(200, None).await;
    let q = "query($after: ID) { entries(filter: \"http && status_code >= 500\", limit: 7, after: $after) { next scanned entries { id status protocol summary src { ip port name } } } }";
    let mut ids = Vec::new();
    let mut after = Json::Null;
    for _ in 0..10 {
        let r = gql(&s, q, json!({ "after": after })).await;
        let page = &r["data"]["entries"];
        for e in page["entries"].as_array().unwrap() {
            assert_eq!(e["status"], 500);
            assert_eq!(e["protocol"], "HTTP");
            assert!(e["summary"].as_str().unwrap().starts_with("GET /item/"));
            ids.push(e["id"].as_str().unwrap().parse::<u64>().unwrap());
        }
        after = page["next"].clone();
        if after.is_null() {
            break;
        }
    }
    // Entries 0, 10, ... 190 get ids 1, 11, ..., 191; newest first.
    let expected: Vec<u64> = (0..200u64)
        .rev()
        .filter(|n| n % 10 == 0)
        .map(|n| n + 1)
        .collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn time_bounds_and_order() {
    let s = server(50, None).await;
    // Entry n is at base + n ms; [n=10, n=20) oldest first.
    let r = gql(
        &s,
        "{ entries(from: \"2025-11-24T16:00:00.010Z\", to: \"2025-11-24T16:00:00.020Z\", order: OLDEST_FIRST) { entries { id timestamp } } }",
        Json::Null,
    )
    .await;
    let ids: Vec<String> = r["data"]["entries"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, (11..=20).map(|i| i.to_string()).collect::<Vec<_>>());
    let bad = gql(
        &s,
        "{ entries(from: \"yesterday\") { scanned } }",
        Json::Null,
    )
    .await;
    let msg = bad["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("\"yesterday\""), "{msg}");
    // A window that ends before it starts is an error, not an empty page.
    for query in [
        "{ entries(from: \"2025-11-24T16:00:00.020Z\", to: \"2025-11-24T16:00:00.010Z\") { scanned } }",
        "{ serviceMap(from: \"2025-11-24T16:00:00.020Z\", to: \"2025-11-24T16:00:00.010Z\") { nodes { id } } }",
    ] {
        let r = gql(&s, query, Json::Null).await;
        let msg = r["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("`from` (2025-11-24T16:00:00.020Z) is after `to`"),
            "{query}: {r}"
        );
    }
}

#[tokio::test]
async fn bad_filters_are_errors_with_their_span() {
    let s = server(5, None).await;
    let r = gql(
        &s,
        "{ entries(filter: \"http && stauts_code > 1\") { scanned } }",
        Json::Null,
    )
    .await;
    let err = &r["errors"][0];
    assert_eq!(err["extensions"]["code"], "BAD_FILTER");
    assert_eq!(err["extensions"]["start"], 8);
    assert_eq!(err["extensions"]["end"], 19);
    let c = gql(
        &s,
        "{ checkFilter(filter: \"dns && (\") { ok error { message start end } } }",
        Json::Null,
    )
    .await;
    assert_eq!(c["data"]["checkFilter"]["ok"], false);
    assert!(
        c["data"]["checkFilter"]["error"]["message"]
            .as_str()
            .unwrap()
            .len()
            > 3
    );
    let ok = gql(
        &s,
        "{ checkFilter(filter: \"dns && dns_rcode != 0\") { ok error { message } } }",
        Json::Null,
    )
    .await;
    assert_eq!(
        ok["data"]["checkFilter"],
        json!({"ok": true, "error": null})
    );
    let lim = gql(&s, "{ entries(limit: 5000) { scanned } }", Json::Null).await;
    assert!(lim["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("5000"));
}

#[tokio::test]
async fn http_connections_are_capped_and_the_next_waits_for_one_to_close() {
    const LIMIT: usize = 4;
    let s = server_limited(3, None, LIMIT, remora_api::REQUEST_HEAD_TIMEOUT).await;
    // Idle connections (within the head timeout) hold their place.
    let mut idle = hold_every_connection(&s, LIMIT).await;
    // One more client: connected by the kernel, not served while all are held.
    let late = tokio::spawn(reqwest::get(format!("http://{}/healthz", s.addr)));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!late.is_finished(), "served past the connection limit");
    assert_eq!(
        metrics_value(&s.state, "remora_http_connections_waited_total"),
        1
    );
    // A connection closing lets it in.
    drop(idle.pop());
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), late)
        .await
        .expect("the waiting client was served once a connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "ok\n");
}

/// Opens `limit` connections that send nothing, once the server has
/// accepted them all.
async fn hold_every_connection(s: &Server, limit: usize) -> Vec<tokio::net::TcpStream> {
    let mut idle = Vec::new();
    for _ in 0..limit {
        idle.push(tokio::net::TcpStream::connect(s.addr).await.unwrap());
    }
    for _ in 0..100 {
        if metrics_value(&s.state, "remora_http_connections_open") == limit as u64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        metrics_value(&s.state, "remora_http_connections_open"),
        limit as u64
    );
    idle
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_head_timeout() {
    use tokio::io::AsyncReadExt;
    const LIMIT: usize = 2;
    let timeout = std::time::Duration::from_millis(500);
    let s = server_limited(3, None, LIMIT, timeout).await;
    let idle = hold_every_connection(&s, LIMIT).await;
    let started = std::time::Instant::now();
    // The idle clients do not keep a new one out for long: the server
    // closes them once the timeout passes, and serves it.
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reqwest::get(format!("http://{}/healthz", s.addr)),
    )
    .await
    .expect("served once the idle connections were closed")
    .unwrap();
    assert_eq!(r.text().await.unwrap(), "ok\n");
    assert!(started.elapsed() >= timeout / 2, "{:?}", started.elapsed());
    for mut c in idle {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut b))
            .await
            .expect("the server closed the idle connection");
        // Closed: end of stream, or a reset after hyper's 408 attempt.
        assert!(matches!(n, Ok(0) | Err(_)) || b[0] == b'H', "{n:?}");
    }
}

#[tokio::test]
async fn every_list_query_refuses_a_limit_out_of_range() {
    let s = server(3, None).await;
    for (query, bad) in [
        (
            "{ entries(limit: 0) { scanned } }",
            "limit 0 is out of range 1..=1000",
        ),
        (
            "{ entries(limit: -5) { scanned } }",
            "limit -5 is out of range 1..=1000",
        ),
        (
            "{ flows(limit: 0) { id } }",
            "limit 0 is out of range 1..=10000",
        ),
        (
            "{ flows(limit: 10001) { id } }",
            "limit 10001 is out of range 1..=10000",
        ),
        (
            "{ alerts(limit: 0) { id } }",
            "limit 0 is out of range 1..=1000",
        ),
        (
            "{ alerts(limit: 1001) { id } }",
            "limit 1001 is out of range 1..=1000",
        ),
    ] {
        let r = gql(&s, query, Json::Null).await;
        assert_eq!(r["errors"][0]["message"], bad, "{query}: {r}");
    }
    // The bounds themselves are answered.
    for query in [
        "{ entries(limit: 1000) { entries { id } } }",
        "{ flows(limit: 1) { id } }",
        "{ flows(limit: 10000) { id } }",
        "{ alerts(limit: 1000) { id } }",
    ] {
        let r = gql(&s, query, Json::Null).await;
        assert!(r.get("errors").is_none(), "{query}: {r}");
    }
}

#[tokio::test]
async fn entry_by_id_has_bodies_and_fields_lists_do_not() {
    let s = server(12, None).await;
    let one = gql(&s, "{ entry(id: \"11\") { id vars request { fields } response { summary body { text size captured truncated } } } }", Json::Null).await;
    let e = &one["data"]["entry"];
    assert_eq!(e["response"]["body"]["text"], "{\"n\":10}");
    assert_eq!(e["response"]["summary"], "500");
    assert_eq!(
        e["request"]["fields"]["headers"],
        json!([["Content-Type", "application/json"]])
    );
    assert_eq!(
        e["vars"]["request.headers"]["content-type"],
        "application/json"
    );
    let list = gql(
        &s,
        "{ entries(limit: 1) { entries { response { body { text } } } } }",
        Json::Null,
    )
    .await;
    assert_eq!(
        list["data"]["entries"]["entries"][0]["response"]["body"],
        Json::Null
    );
    let none = gql(&s, "{ entry(id: \"999\") { id } }", Json::Null).await;
    assert_eq!(none["data"]["entry"], Json::Null);
    let bad = gql(&s, "{ entry(id: \"x\") { id } }", Json::Null).await;
    assert!(bad["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("\"x\""));
}

#[tokio::test]
async fn service_map_counts_calls_errors_and_latency() {
    let s = server(40, None).await;
    let r = gql(&s, "{ serviceMap(filter: \"http\") { scanned nodes { id } edges { source target protocol flag count errors p50Us p95Us } } }", Json::Null).await;
    let m = &r["data"]["serviceMap"];
    assert_eq!(m["scanned"], 40);
    let edges = m["edges"].as_array().unwrap();
    // HTTP entries: n % 4 != 3 → 30, from three clients to one server.
    let total: i64 = edges.iter().map(|e| e["count"].as_i64().unwrap()).sum();
    assert_eq!(total, 30);
    assert_eq!(edges.len(), 3);
    assert_eq!(m["nodes"].as_array().unwrap().len(), 4);
    let errors: i64 = edges.iter().map(|e| e["errors"].as_i64().unwrap()).sum();
    assert_eq!(errors, 4, "n = 0, 10, 20, 30 are 500s");
    for e in edges {
        assert_eq!(e["flag"], "http");
        assert_eq!(e["target"], "10.0.1.1");
        assert!(e["p95Us"].as_i64().unwrap() >= e["p50Us"].as_i64().unwrap());
        assert!(e["p50Us"].as_i64().unwrap() >= 100);
    }
}

#[tokio::test]
async fn queries_deeper_than_the_limit_are_refused() {
    let s = server(0, None).await;
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } } } }";
    let r = gql(&s, deep, Json::Null).await;
    let msg = r["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("nested too deep"), "{r}");
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws WebSocket to `s`'s /graphql.
async fn ws_connect(s: &Server) -> Result<WsStream, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{}/graphql", s.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

/// A graphql-transport-ws connection to `s`, initialised and acknowledged.
async fn subscriber(s: &Server) -> WsStream {
    let mut ws = ws_connect(s).await.unwrap();
    ws.send(Ws::Text(
        json!({"type": "connection_init"}).to_string().into(),
    ))
    .await
    .unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    let ack: Json = serde_json::from_str(ack.to_text().unwrap()).unwrap();
    assert_eq!(ack["type"], "connection_ack");
    ws
}

#[tokio::test]
async fn subscription_connections_are_limited_and_counted() {
    let s = server(0, None).await;
    let connect = || ws_connect(&s);
    let mut open = Vec::new();
    for i in 0..remora_api::MAX_SUBSCRIBERS {
        let ws = connect()
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        open.push(ws);
    }
    match connect().await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default());
            let limit = format!("limit {}", remora_api::MAX_SUBSCRIBERS);
            assert!(body.contains(&limit), "{body}");
        }
        other => panic!("connection past the limit: {:?}", other.map(|_| ())),
    }
    let metrics = metrics_text(&s).await;
    let open_line = format!("remora_subscriptions_open {}", remora_api::MAX_SUBSCRIBERS);
    assert!(metrics.contains(&open_line), "{metrics}");
    assert!(
        metrics.contains("remora_subscriptions_refused_total 1"),
        "{metrics}"
    );
    // Closing one makes room again (once the server has seen the close).
    open.pop().unwrap().close(None).await.unwrap();
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(ws) = connect().await {
            reopened = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "no room after closing a connection");
}

#[tokio::test]
async fn an_oversized_websocket_message_closes_the_connection() {
    let s = server(1, None).await;
    let mut ws = subscriber(&s).await;
    // A subscribe message padded past the limit.
    let big = format!(
        r#"{{"id":"1","type":"subscribe","payload":{{"query":"subscription {{ stats(intervalMs: 1000) {{ packets }} }}"}}}}{}"#,
        " ".repeat(remora_api::MAX_REQUEST_BODY + 1)
    );
    let _ = ws.send(Ws::Text(big.into())).await;
    // The server drops the connection (a Close frame or the stream's end),
    // and sends no subscription data.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Ws::Close(_))) => return,
                Some(Ok(Ws::Text(t))) => panic!("answered an oversized message: {t}"),
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "connection still open after an oversized message"
    );
    let r = gql(&s, "{ entries(limit: 1) { entries { id } } }", json!({})).await;
    assert_eq!(r["data"]["entries"]["entries"].as_array().unwrap().len(), 1);
}

/// Starts operation `id` running `query` on `ws` (graphql-transport-ws).
async fn start(ws: &mut WsStream, id: &str, query: &str) {
    let m = json!({"id": id, "type": "subscribe", "payload": { "query": query }});
    ws.send(Ws::Text(m.to_string().into())).await.unwrap();
}

/// Stores `entries` (the ids 1, 2, ... in an empty store) and publishes
/// them to the live feed, as `remora tap` does.
fn store_and_publish(s: &Server, entries: Vec<Entry>) {
    let cat = s.state.catalog.clone();
    let mut batch = entries;
    s.state.store.append(&cat, &mut batch).unwrap();
    for e in batch {
        s.state.feed.publish(Arc::new(StoredEntry {
            catalog: cat.clone(),
            entry: e,
        }));
    }
}

/// The next message on `ws`, as JSON, within 5 s.
async fn next(ws: &mut WsStream) -> Json {
    let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a message within 5 s")
        .unwrap()
        .unwrap();
    serde_json::from_str(m.to_text().unwrap()).unwrap()
}

#[tokio::test]
async fn subscription_delivers_matching_entries_as_they_are_stored() {
    let s = server(0, None).await;
    let mut ws = subscriber(&s).await;
    start(
        &mut ws,
        "1",
        "subscription { entries(filter: \"dns\") { id protocol response { summary } } }",
    )
    .await;
    // Give the server a moment to register the subscription.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store_and_publish(&s, (0..8).map(entry).collect());
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = next(&mut ws).await;
        assert_eq!(m["type"], "next", "{m}");
        let e = &m["payload"]["data"]["entries"];
        assert_eq!(e["protocol"], "DNS");
        got.push(e["id"].as_str().unwrap().to_owned());
    }
    // Entries 3 and 7 are the DNS ones: ids 4 and 8.
    assert_eq!(got, ["4", "8"]);
    assert_eq!(s.state.feed.published(), 8);
}

#[tokio::test]
async fn each_subscription_event_has_a_budget_and_websocket_queries_one_each() {
    // 8 KiB of answer per request: 40 entries' variables are ~24 KB.
    let s = serve_entries(Vec::new(), None, |s| {
        s.with_query_limits(1, remora_api::MAX_SCAN, 8 << 10)
    })
    .await;
    let mut ws = subscriber(&s).await;
    start(&mut ws, "live", "subscription { entries { id vars } }").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    store_and_publish(&s, (0..40).map(entry).collect());
    for n in 1..=40 {
        let m = next(&mut ws).await;
        assert_eq!(m["type"], "next", "{m}");
        assert!(m["payload"]["errors"].is_null(), "event {n}: {m}");
        assert_eq!(m["payload"]["data"]["entries"]["id"], n.to_string());
    }
    // A query sent over the socket is one request, with its own budget.
    let lists: String = (0..10)
        .map(|i| format!(" l{i}: entries {{ id vars }}"))
        .collect();
    start(
        &mut ws,
        "q",
        &format!("{{ entries(limit: 40) {{ {lists} }} }}"),
    )
    .await;
    let m = next(&mut ws).await;
    assert_eq!(m["id"], "q", "{m}");
    let msg = m["payload"]["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("answer larger than 8192 bytes"), "{m}");
}

#[test]
fn a_lagging_subscriber_holds_at_most_the_feed_bytes_and_keeps_the_newest() {
    let feed = LiveFeed::new();
    let rx = feed.subscribe();
    let cat = catalog();
    for n in 1..=100u64 {
        let mut e = entry(n * 4);
        e.id = n;
        e.response.as_mut().unwrap().body = Some(Box::new(Body {
            data: vec![b'x'; 1 << 20],
            original_len: 1 << 20,
            truncated: false,
            decoded_from: None,
        }));
        feed.publish(Arc::new(StoredEntry {
            catalog: cat.clone(),
            entry: e,
        }));
    }
    // 100 entries of 3 MiB each as the feed counts them (a body is answered
    // as text and as base64): a queue of 64 MiB keeps the newest 21.
    assert!(rx.queued_bytes() <= remora_api::FEED_BYTES);
    let (mut got, mut skipped) = (Vec::new(), 0);
    loop {
        match rx.try_recv() {
            Ok(se) => got.push(se.entry.id),
            Err(Missed::Skipped(n)) => skipped += n,
            Err(_) => break,
        }
    }
    assert_eq!(got.len() as u64 + skipped, 100);
    assert_eq!(got.len(), 21, "{got:?}");
    assert_eq!(got.last(), Some(&100));
    // Reading again goes on with what is published next.
    feed.publish(Arc::new(StoredEntry {
        catalog: cat.clone(),
        entry: entry(4),
    }));
    assert!(rx.try_recv().is_ok());
}

#[tokio::test]
async fn a_websocket_connection_runs_a_bounded_number_of_operations() {
    let s = server(0, None).await;
    let mut ws = subscriber(&s).await;
    let max = remora_api::MAX_OPERATIONS;
    for i in 0..max + 5 {
        start(&mut ws, &i.to_string(), "subscription { entries { id } }").await;
    }
    // The five past the limit are refused, each by id; the others run.
    let mut refused = Vec::new();
    for _ in 0..5 {
        let m = next(&mut ws).await;
        assert_eq!(m["type"], "error", "{m}");
        assert!(
            m["payload"][0]["message"]
                .as_str()
                .unwrap()
                .contains("too many operations"),
            "{m}"
        );
        refused.push(m["id"].as_str().unwrap().parse::<usize>().unwrap());
    }
    assert_eq!(refused, (max..max + 5).collect::<Vec<_>>());
    assert_eq!(
        metrics_value(&s.state, "remora_websocket_operations_refused_total"),
        5
    );
    // Completing one makes room: a query over the socket then runs.
    ws.send(Ws::Text(
        json!({"id": "0", "type": "complete"}).to_string().into(),
    ))
    .await
    .unwrap();
    let m = next(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["id"].as_str()),
        (Some("complete"), Some("0")),
        "{m}"
    );
    start(&mut ws, "q", "{ stats { packets } }").await;
    let m = next(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["id"].as_str()),
        (Some("next"), Some("q")),
        "{m}"
    );
    assert_eq!(m["payload"]["data"]["stats"]["packets"], 1234);
    // Its completion frees its place again: another fits.
    let m = next(&mut ws).await;
    assert_eq!(m["type"], "complete", "{m}");
    start(&mut ws, "r", "{ stats { packets } }").await;
    assert_eq!(next(&mut ws).await["type"], "next");
}

/// An HTTP entry whose request carries one `size`-byte header.
fn large_entry(n: u64, size: usize) -> Entry {
    let mut e = entry(n * 4); // never a DNS one
    let req = e.request.as_mut().unwrap();
    req.fields.push_pair(3, "X-Large", &"y".repeat(size));
    e
}

#[tokio::test]
async fn aliased_fields_share_one_budget_of_scans_and_answer_bytes() {
    // Without the shared budget each alias below examined all 5,000
    // entries, and the aliased lists answered ~2 MB.
    let s = serve_entries((0..5000).map(entry).collect(), None, |s| {
        s.with_query_limits(8, 10_000, 256 << 10)
    })
    .await;
    let r = gql(
        &s,
        "{ a: entries(filter: \"false\") { next scanned } \
           b: entries(filter: \"false\") { next scanned } \
           c: entries(filter: \"false\") { next scanned } }",
        json!({}),
    )
    .await;
    let pages: Vec<&Json> = ["a", "b", "c"]
        .iter()
        .filter_map(|k| r["data"].get(*k).filter(|p| !p.is_null()))
        .collect();
    let scanned: u64 = pages.iter().map(|p| p["scanned"].as_u64().unwrap()).sum();
    assert!(scanned <= 10_000, "{scanned} entries examined: {r}");
    // Whoever ran short says so: a cursor, or an error naming the limit.
    let cut_short = pages.iter().any(|p| !p["next"].is_null())
        || r["errors"].as_array().is_some_and(|e| {
            e.iter().any(|e| {
                e["message"]
                    .as_str()
                    .unwrap()
                    .contains("examined the 10000 stored entries")
            })
        });
    assert!(cut_short, "{r}");
    // A request of its own gets a budget of its own.
    let r = gql(
        &s,
        "{ entries(filter: \"false\") { next scanned } }",
        json!({}),
    )
    .await;
    assert_eq!(r["data"]["entries"]["scanned"], 5000, "{r}");
    assert!(r["data"]["entries"]["next"].is_null());

    // Forty aliases of one page's list: cut at the answer's budget with an
    // error, the answer itself a fraction of what was asked for.
    let lists: String = (0..40)
        .map(|i| format!(" l{i}: entries {{ id vars }}"))
        .collect();
    let body = reqwest::Client::new()
        .post(format!("http://{}/graphql", s.addr))
        .json(&json!({ "query": format!("{{ entries(limit: 100) {{ {lists} }} }}") }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.len() < 512 << 10, "{} bytes answered", body.len());
    let r: Json = serde_json::from_str(&body).unwrap();
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let msg = errors[0]["message"].as_str().unwrap();
    assert!(msg.contains("answer larger than 262144 bytes"), "{msg}");
    assert_eq!(metrics_value(&s.state, "remora_query_answers_cut_total"), 1);
    // The same list once fits.
    let r = gql(
        &s,
        "{ entries(limit: 100) { entries { id vars } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        r["data"]["entries"]["entries"].as_array().unwrap().len(),
        100
    );
    assert_eq!(metrics_value(&s.state, "remora_query_answers_cut_total"), 1);
    // Batched requests share one budget too.
    let one = json!({ "query": format!("{{ entries(limit: 100) {{ {} }} }}", &lists[..lists.len() / 4]) });
    let r: Json = reqwest::Client::new()
        .post(format!("http://{}/graphql", s.addr))
        .json(&json!([one, one, one, one]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cut = r
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["errors"].is_array())
        .count();
    assert!(
        cut >= 1,
        "a batch of four 10-list requests answered in full"
    );

    // Fields that scan are dear to a query's complexity: twenty are refused
    // before anything runs.
    let many: String = (0..20)
        .map(|i| format!(" e{i}: entries {{ scanned }}"))
        .collect();
    let r = gql(&s, &format!("{{ {many} }}"), json!({})).await;
    let msg = r["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("too complex"), "{msg}");
}

/// A filter that visits 1,000 elements per entry (under the cost limit)
/// and matches none: it scans the whole store, slowly.
fn slow_filter() -> String {
    let l = "[0,1,2,3,4,5,6,7,8,9]";
    format!("{l}.all(a, {l}.all(b, {l}.all(c, a + b + c >= 0))) && method == \"nope\"")
}

#[tokio::test]
async fn a_request_scans_for_a_bounded_time_whatever_its_filter_costs() {
    let s = serve_entries((0..5000).map(entry).collect(), None, |s| {
        s.with_scan_time(Duration::from_millis(300))
    })
    .await;
    // All 5,000 entries took seconds before scanning had a deadline.
    let f = slow_filter();
    let r = gql(
        &s,
        "query($f: String) { entries(filter: $f) { next scanned } }",
        json!({ "f": f }),
    )
    .await;
    let page = &r["data"]["entries"];
    let scanned = page["scanned"].as_u64().unwrap_or_else(|| panic!("{r}"));
    assert!(scanned < 5000, "{r}");
    assert!(!page["next"].is_null(), "{r}");
}

#[tokio::test]
async fn a_page_that_examined_nothing_goes_on_where_it_started() {
    // No scanning time at all: every page stops before its first entry.
    let s = serve_entries((0..50).map(entry).collect(), None, |s| {
        s.with_scan_time(Duration::ZERO)
    })
    .await;
    let q = "query($a: ID) { entries(after: $a) { next scanned } }";
    let r = gql(&s, q, json!({ "a": "30" })).await;
    assert_eq!(r["data"]["entries"]["next"], "30", "{r}");
    assert_eq!(r["data"]["entries"]["scanned"], 0, "{r}");
    // The first page has no cursor to give back: an error, not `after: 0`
    // (which would read as "nothing older").
    let r = gql(&s, q, json!({})).await;
    let msg = r["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(msg.contains("scanned for the 0ns"), "{msg}");
}

#[tokio::test]
async fn a_page_of_large_entries_stops_early_and_the_pages_cover_them_all() {
    let s = serve_entries(
        (0..100).map(|n| large_entry(n, 64 << 10)).collect(),
        None,
        |s| s,
    )
    .await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let r = gql(
            &s,
            "query($a: ID) { entries(limit: 1000, after: $a) { next entries { id request { fields } } } }",
            json!({ "a": after }),
        )
        .await;
        let page = &r["data"]["entries"];
        let list = page["entries"].as_array().unwrap_or_else(|| panic!("{r}"));
        // 4 MiB of entries that each hold 2 x 64 KiB: about 31.
        assert!(
            !list.is_empty() && list.len() < 40,
            "{} entries in a page",
            list.len()
        );
        seen.extend(list.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert!(pages >= 3, "{pages} pages");
    let mut ids = seen.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        100,
        "{} distinct of {} seen",
        ids.len(),
        seen.len()
    );
    assert_eq!(seen.len(), 100);
}

#[tokio::test]
async fn queries_past_the_executing_limit_wait_and_are_all_answered() {
    let s = serve_entries((0..5000).map(entry).collect(), None, |s| {
        s.with_query_limits(1, remora_api::MAX_SCAN, remora_api::MAX_RESPONSE_BYTES)
            .with_scan_time(Duration::from_millis(800))
    })
    .await;
    let q = "{ entries(filter: \"dns\", limit: 1000) { entries { id } } }";
    let answers = futures_util::future::join_all((0..12).map(|_| gql(&s, q, json!({})))).await;
    for r in &answers {
        assert_eq!(
            r["data"]["entries"]["entries"].as_array().unwrap().len(),
            1000,
            "{r}"
        );
    }
    let waited = metrics_value(&s.state, "remora_queries_waited_total");
    assert!(waited >= 1);
    // A query that reads neither the store nor the flows does not wait for
    // one that does: it is answered while a slow scan holds the only place.
    let slow_filter = slow_filter();
    let post = |query: &'static str, vars: Json| {
        let url = format!("http://{}/graphql", s.addr);
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({ "query": query, "variables": vars }))
                .send()
                .await
                .unwrap()
                .json::<Json>()
                .await
                .unwrap()
        })
    };
    let slow_query = "query($f: String) { entries(filter: $f) { scanned } }";
    let slow = post(slow_query, json!({ "f": slow_filter }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = gql(&s, "{ stats { packets } }", json!({})).await;
    assert_eq!(r["data"]["stats"]["packets"], 1234);
    assert!(!slow.is_finished(), "the slow scan ended before the check");
    // Two more slow ones: the last waits for both before it, longer than a
    // request may scan; its scanning time counts from its own first scan.
    let slow2 = post(slow_query, json!({ "f": slow_filter }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let slow3 = post(slow_query, json!({ "f": slow_filter }));
    let scanned = |r: Json| {
        assert!(r["errors"].is_null(), "{r}");
        r["data"]["entries"]["scanned"].as_u64().unwrap()
    };
    let first = scanned(slow.await.unwrap());
    assert!(first < 5000, "{first}");
    slow2.await.unwrap();
    // Had its time counted from its arrival, little of it would be left.
    let third = scanned(slow3.await.unwrap());
    assert!(third * 2 > first, "{third} entries scanned against {first}");
    // The second and third slow scans waited; the stats query did not.
    assert_eq!(
        metrics_value(&s.state, "remora_queries_waited_total"),
        waited + 2
    );
}

#[tokio::test]
async fn request_bodies_and_filters_are_bounded() {
    let s = server(3, None).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/graphql", s.addr);
    let query = "{ entries(limit: 1) { entries { id } } }";
    // Just under the limit (whitespace after the query): answered.
    let post_padded = |n: usize| {
        http.post(&url)
            .header("content-type", "application/json")
            .body(format!("{{\"query\":\"{query}\"{}}}", " ".repeat(n)))
            .send()
    };
    let r = post_padded(remora_api::MAX_REQUEST_BODY - 200)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Over it, with a Content-Length: refused without reading it.
    let r = post_padded(remora_api::MAX_REQUEST_BODY + 1).await.unwrap();
    assert_eq!(r.status(), 413);
    // Over it in chunks (no length up front): refused once the limit is
    // passed, not buffered to the end.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n",
        s.addr
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, " ".repeat(64 << 10));
    let mut sent = 0;
    // 4 MiB at most; the server may answer and close before.
    while sent < 4 << 20 {
        if conn.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        sent += 64 << 10;
    }
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap_or(0);
    let status = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(
        status.starts_with("HTTP/1.1 4"),
        "chunked oversized body answered {status:?}"
    );
    // A filter over its own limit: a GraphQL error naming the size.
    let huge = "x".repeat(remora_filter::MAX_FILTER_BYTES + 1);
    let r = gql(
        &s,
        "query($f: String) { entries(filter: $f, limit: 1) { entries { id } } }",
        json!({ "f": huge }),
    )
    .await;
    let msg = r["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("16385 bytes"), "{msg}");
    assert!(msg.len() < 300, "{} bytes of error", msg.len());
    // Still serving.
    let r = gql(&s, query, json!({})).await;
    assert_eq!(r["data"]["entries"]["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn token_is_required_when_configured_and_for_non_loopback_binds() {
    let s = server(3, Some("s3cret")).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/graphql", s.addr);
    let body = json!({"query": "{ stats { packets } }"});
    let no = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(no.status(), 401);
    let wrong = http
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = http
        .post(&url)
        .bearer_auth("s3cret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let j: Json = ok.json().await.unwrap();
    assert_eq!(j["data"]["stats"]["packets"], 1234);
    let metrics = http
        .get(format!("http://{}/metrics", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 401);
    let health = http
        .get(format!("http://{}/healthz", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // In the query, as the dashboard sends it on a WebSocket upgrade: a
    // token with characters URLs reserve arrives percent-encoded.
    let s2 = server(1, Some("s+cr&t=1")).await;
    let q = |t: &str| {
        http.post(format!("http://{}/graphql?token={t}", s2.addr))
            .json(&body)
            .send()
    };
    assert_eq!(q("s%2Bcr%26t%3D1").await.unwrap().status(), 200);
    assert_eq!(q("s+cr").await.unwrap().status(), 401);

    let open = ApiConfig {
        bind: "0.0.0.0:8899".parse().unwrap(),
        token: None,
        web_dir: None,
    };
    let e = remora_api::check_bind(&open).unwrap_err().to_string();
    assert!(e.contains("0.0.0.0:8899") && e.contains("--token"), "{e}");
    assert!(remora_api::check_bind(&ApiConfig {
        token: Some("t".into()),
        ..open.clone()
    })
    .is_ok());
    assert!(remora_api::check_bind(&ApiConfig {
        bind: "[::1]:8899".parse().unwrap(),
        ..open
    })
    .is_ok());
}

#[tokio::test]
async fn metrics_and_stats_report_capture_and_store() {
    let s = server(10, None).await;
    let text = metrics_text(&s).await;
    assert!(text.contains("remora_packets_total 1234\n"), "{text}");
    assert!(text.contains("remora_drops_total{reason=\"flow_table_full\"} 2\n"));
    assert!(text.contains("remora_store_entries 10\n"));
    assert!(text.contains("# TYPE remora_plugin_call_seconds histogram"));
    let r = gql(
        &s,
        "{ stats { packets drops { name value } store { entries newestId limitBytes } } }",
        Json::Null,
    )
    .await;
    assert_eq!(r["data"]["stats"]["store"]["entries"], 10);
    assert_eq!(r["data"]["stats"]["store"]["newestId"], "10");
    assert_eq!(r["data"]["stats"]["drops"][0]["value"], 2);
}

#[tokio::test]
async fn variables_and_graphiql() {
    let s = server(0, None).await;
    let r = gql(&s, "{ variables { name type protocol } }", Json::Null).await;
    let names: Vec<&str> = r["data"]["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for n in ["status_code", "src.ip", "dns_questions", "http"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let page = reqwest::get(format!("http://{}/graphql", s.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("graphiql"), "GET /graphql serves GraphiQL");
}

#[tokio::test]
async fn dashboard_is_served_at_the_root_with_client_side_routes() {
    let s = server(0, None).await;
    let index = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../web/dist/index.html"
    ));
    let root = reqwest::get(format!("http://{}/", s.addr)).await.unwrap();
    assert_eq!(root.status(), 200);
    let body = root.text().await.unwrap();
    match index {
        // Built before this test was compiled: embedded byte for byte, and
        // app routes fall back to it.
        Ok(index) => {
            assert_eq!(body, index);
            let route = reqwest::get(format!("http://{}/map", s.addr))
                .await
                .unwrap();
            assert_eq!(route.text().await.unwrap(), index);
            let missing = reqwest::get(format!("http://{}/assets/nope.js", s.addr))
                .await
                .unwrap();
            assert_eq!(missing.status(), 404);
        }
        Err(_) => assert!(body.contains("scripts/build-web.sh"), "{body}"),
    }
}
