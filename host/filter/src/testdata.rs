//! Hand-built catalogs with the built-in plugins' real field declarations,
//! and entry builders, shared by the unit tests and the benchmark.

use remora_core::{Endpoint, Timestamp, Transport};
use remora_entry::{
    Catalog, Entry, Field, FieldSchema, FieldType, Message, PluginSchema, ProtocolSchema, Value,
};

// Field declarations copied from plugins/*/src/lib.rs `info()`: (plugin, [(proto, flag, transport)], [(name, type, top_level)]).
type Protocols = &'static [(&'static str, &'static str, Transport)];
type Fields = &'static [(&'static str, FieldType, bool)];

pub(crate) const PLUGINS: &[(&str, Protocols, Fields)] = &[
    (
        "http1",
        &[("HTTP", "http", Transport::Tcp)],
        &[
            ("method", FieldType::Str, true),
            ("url", FieldType::Str, true),
            ("path", FieldType::Str, true),
            ("query_string", FieldType::StrMap, true),
            ("http_version", FieldType::Str, true),
            ("headers", FieldType::StrMap, false),
            ("cookies", FieldType::StrMap, false),
            ("host", FieldType::Str, false),
            ("request_headers_size", FieldType::Int, true),
            ("request_body_size", FieldType::Int, true),
            ("status_code", FieldType::Int, true),
            ("status_text", FieldType::Str, false),
            ("response_headers_size", FieldType::Int, true),
            ("response_body_size", FieldType::Int, true),
            ("upgrade", FieldType::Str, false),
            ("interim_status", FieldType::IntList, false),
            ("trailers", FieldType::StrMap, false),
        ],
    ),
    (
        "http2",
        &[("HTTP/2", "http", Transport::Tcp)],
        &[
            ("method", FieldType::Str, true),
            ("url", FieldType::Str, true),
            ("path", FieldType::Str, true),
            ("authority", FieldType::Str, true),
            ("http_version", FieldType::Str, true),
            ("headers", FieldType::StrMap, false),
            ("status_code", FieldType::Int, true),
            ("request_body_size", FieldType::Int, true),
            ("response_body_size", FieldType::Int, true),
            ("trailers", FieldType::StrMap, false),
            ("h2_stream_id", FieldType::Int, false),
            ("grpc", FieldType::Bool, true),
            ("grpc_service", FieldType::Str, true),
            ("grpc_method", FieldType::Str, true),
            ("grpc_status", FieldType::Int, true),
            ("grpc_message", FieldType::Str, true),
            ("grpc_request_messages", FieldType::Int, true),
            ("grpc_response_messages", FieldType::Int, true),
            ("grpc_request_message_bytes", FieldType::Int, false),
            ("grpc_response_message_bytes", FieldType::Int, false),
            ("grpc_compressed", FieldType::Bool, false),
            ("h2_rst_error", FieldType::Int, false),
            ("h2_hpack_unknown", FieldType::Bool, false),
        ],
    ),
    (
        "dns",
        &[
            ("DNS", "dns", Transport::Udp),
            ("DNS", "dns", Transport::Tcp),
        ],
        &[
            ("dns_id", FieldType::Int, true),
            ("dns_questions", FieldType::StrList, true),
            ("dns_question_types", FieldType::StrList, true),
            ("dns_answers", FieldType::StrList, true),
            ("dns_rcode", FieldType::Int, true),
            ("status_code", FieldType::Int, true),
            ("dns_rcode_name", FieldType::Str, true),
            ("dns_request", FieldType::Bool, true),
            ("dns_response", FieldType::Bool, true),
            ("dns_request_length", FieldType::Int, true),
            ("dns_response_length", FieldType::Int, true),
            ("dns_query", FieldType::Str, false),
        ],
    ),
    (
        "redis",
        &[("Redis", "redis", Transport::Tcp)],
        &[
            ("redis_type", FieldType::Str, true),
            ("redis_command", FieldType::Str, true),
            ("redis_key", FieldType::Str, true),
            ("redis_args", FieldType::StrList, false),
            ("redis_argc", FieldType::Int, false),
            ("redis_request_size", FieldType::Int, true),
            ("redis_response_size", FieldType::Int, true),
            ("redis_reply", FieldType::Str, true),
            ("redis_reply_type", FieldType::Str, true),
            ("redis_error", FieldType::Bool, true),
            ("redis_push_kind", FieldType::Str, false),
        ],
    ),
    (
        "kafka",
        &[("Kafka", "kafka", Transport::Tcp)],
        &[
            ("kafka_api_key", FieldType::Int, true),
            ("kafka_api_key_name", FieldType::Str, true),
            ("kafka_api_version", FieldType::Int, true),
            ("kafka_correlation_id", FieldType::Int, false),
            ("kafka_client_id", FieldType::Str, true),
            ("kafka_topics", FieldType::StrList, true),
            ("kafka_partitions", FieldType::IntList, false),
            ("kafka_request_summary", FieldType::Str, true),
            ("kafka_error_code", FieldType::Int, true),
            ("kafka_request_size", FieldType::Int, true),
            ("kafka_response_size", FieldType::Int, true),
        ],
    ),
    (
        "postgres",
        &[("PostgreSQL", "postgresql", Transport::Tcp)],
        &[
            ("sql_query", FieldType::Str, true),
            ("sql_command", FieldType::Str, true),
            ("pg_kind", FieldType::Str, false),
            ("pg_statement", FieldType::Str, false),
            ("pg_portal", FieldType::Str, false),
            ("sql_tags", FieldType::StrList, true),
            ("sql_rows", FieldType::Int, true),
            ("sql_error", FieldType::Str, true),
            ("sql_error_code", FieldType::Str, true),
            ("pg_user", FieldType::Str, true),
            ("pg_database", FieldType::Str, true),
        ],
    ),
    (
        "mysql",
        &[("MySQL", "mysql", Transport::Tcp)],
        &[
            ("sql_query", FieldType::Str, true),
            ("sql_command", FieldType::Str, true),
            ("mysql_command", FieldType::Str, false),
            ("sql_rows", FieldType::Int, true),
            ("sql_error_code", FieldType::Int, true),
            ("sql_error", FieldType::Str, true),
            ("mysql_server_version", FieldType::Str, true),
            ("mysql_user", FieldType::Str, true),
            ("mysql_database", FieldType::Str, true),
            ("mysql_response", FieldType::Str, false),
        ],
    ),
    (
        "amqp",
        &[("AMQP", "amqp", Transport::Tcp)],
        &[
            ("amqp_method", FieldType::Str, true),
            ("amqp_class", FieldType::Str, true),
            ("amqp_channel", FieldType::Int, true),
            ("amqp_exchange", FieldType::Str, true),
            ("amqp_routing_key", FieldType::Str, true),
            ("amqp_queue", FieldType::Str, true),
            ("amqp_consumer_tag", FieldType::Str, true),
            ("amqp_delivery_tag", FieldType::Int, true),
            ("amqp_body_size", FieldType::Int, true),
            ("amqp_summary", FieldType::Str, true),
            ("amqp_direction", FieldType::Str, false),
            ("amqp_reply_code", FieldType::Int, false),
            ("amqp_reply_text", FieldType::Str, false),
        ],
    ),
    (
        "mqtt",
        &[("MQTT", "mqtt", Transport::Tcp)],
        &[
            ("mqtt_type", FieldType::Str, true),
            ("mqtt_topic", FieldType::Str, true),
            ("mqtt_qos", FieldType::Int, true),
            ("mqtt_client_id", FieldType::Str, true),
            ("mqtt_packet_id", FieldType::Int, true),
            ("mqtt_payload_size", FieldType::Int, true),
            ("mqtt_reason_codes", FieldType::IntList, true),
            ("mqtt_version", FieldType::Int, false),
            ("mqtt_retain", FieldType::Bool, true),
            ("mqtt_dup", FieldType::Bool, false),
            ("mqtt_direction", FieldType::Str, false),
        ],
    ),
];

/// Every built-in plugin, in `PLUGINS` order; field ids are declaration order.
pub fn catalog() -> Catalog {
    let plugins = PLUGINS
        .iter()
        .map(|(name, protos, fields)| {
            PluginSchema::new(
                name.to_string(),
                "0.1.0".into(),
                protos
                    .iter()
                    .map(|(p, flag, t)| ProtocolSchema {
                        name: p.to_string(),
                        flag: flag.to_string(),
                        transport: *t,
                        ports: vec![],
                        request_summary: String::new(),
                        response_summary: String::new(),
                    })
                    .collect(),
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, (n, ty, top))| FieldSchema {
                        id: i as u16,
                        name: n.to_string(),
                        ty: *ty,
                        top_level: *top,
                        doc: String::new(),
                    })
                    .collect(),
            )
        })
        .collect();
    Catalog { plugins }
}

/// Builds an entry of plugin `plugin` with request/response fields given by
/// name; `Value::Pair` members go to map fields.
pub struct EntryBuilder<'c> {
    catalog: &'c Catalog,
    pub entry: Entry,
}

impl<'c> EntryBuilder<'c> {
    pub fn new(catalog: &'c Catalog, plugin: &str) -> Self {
        let idx = catalog
            .plugins
            .iter()
            .position(|p| p.name == plugin)
            .expect("plugin in catalog");
        let transport = catalog.plugins[idx].protocols[0].transport;
        let ep = |s: &str, p| Endpoint::new(s.parse().expect("ip"), p);
        EntryBuilder {
            catalog,
            entry: Entry {
                id: 1,
                flow_id: 9,
                plugin: idx as u16,
                protocol: 0,
                transport,
                client: ep("10.0.0.1", 40000),
                server: ep("10.0.0.2", 80),
                request: None,
                response: None,
                standalone: false,
            },
        }
    }

    fn push(mut self, response: bool, name: &str, value: Value) -> Self {
        let schema = self.catalog.plugin(self.entry.plugin);
        let id = schema.field_by_name(name).expect("declared field").id;
        let ts = Timestamp(1_795_626_776_000_000 + if response { 1000 } else { 0 });
        let slot = if response {
            &mut self.entry.response
        } else {
            &mut self.entry.request
        };
        slot.get_or_insert_with(|| Message {
            ts,
            fields: remora_entry::Fields::new(),
            body: None,
        })
        .fields
        .push_field(&Field { id, value });
        self
    }

    pub fn req(self, name: &str, value: Value) -> Self {
        self.push(false, name, value)
    }

    pub fn resp(self, name: &str, value: Value) -> Self {
        self.push(true, name, value)
    }

    pub fn build(self) -> Entry {
        self.entry
    }
}

pub fn s(v: &str) -> Value {
    Value::Str(v.into())
}

pub fn pair(k: &str, v: &str) -> Value {
    Value::Pair(k.into(), v.into())
}
