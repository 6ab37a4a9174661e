//! Stored entries as GraphQL objects, computed field by field on demand so a
//! list that asks for `id protocol` pays for nothing else.

use std::sync::Arc;

use async_graphql::{Json, Object, SimpleObject, ID};
use base64::Engine as _;
use remora_entry::{
    entry_vars, message_fields_json, render_summary, rfc3339_micros, Body, Message, PluginSchema,
    ProtocolSchema, ValueRef,
};
use remora_store::StoredEntry;

use crate::telemetry::EndpointRecord;
use crate::Int64;

pub struct EntryObject {
    pub stored: Arc<StoredEntry>,
    /// Bodies are shown only where they were loaded (`entry(id)`, live).
    pub bodies: bool,
}

impl EntryObject {
    pub fn new(stored: Arc<StoredEntry>, bodies: bool) -> Self {
        EntryObject { stored, bodies }
    }

    fn schema(&self) -> &PluginSchema {
        self.stored.catalog.plugin(self.stored.entry.plugin)
    }

    fn proto(&self) -> &ProtocolSchema {
        &self.schema().protocols[self.stored.entry.protocol as usize]
    }

    fn message(&self, request: bool) -> Option<MessageObject> {
        let e = &self.stored.entry;
        let present = if request { &e.request } else { &e.response }.is_some();
        present.then(|| MessageObject {
            stored: self.stored.clone(),
            request,
            bodies: self.bodies,
        })
    }
}

/// The value of the plugin's `status_code` field, response first.
pub fn status_of(schema: &PluginSchema, stored: &StoredEntry) -> Option<i64> {
    let decl = schema.field_by_name("status_code")?;
    let e = &stored.entry;
    [&e.response, &e.request]
        .into_iter()
        .flatten()
        .find_map(|m| match m.get(decl.id) {
            Some(ValueRef::Int(i)) => Some(i),
            _ => None,
        })
}

/// "GET /api/orders → 200"
pub fn summary_of(stored: &StoredEntry) -> String {
    let e = &stored.entry;
    let schema = stored.catalog.plugin(e.plugin);
    let proto = &schema.protocols[e.protocol as usize];
    let req = render_summary(&proto.request_summary, schema, e.request.as_ref());
    match &e.response {
        Some(m) => {
            let resp = render_summary(&proto.response_summary, schema, Some(m));
            if req.is_empty() {
                resp
            } else if resp.is_empty() {
                req
            } else {
                format!("{req} → {resp}")
            }
        }
        None => req,
    }
}

fn body_size(m: &Option<Message>) -> u64 {
    m.as_ref()
        .and_then(|m| m.body.as_ref())
        .map_or(0, |b| b.original_len)
}

#[Object(name = "Entry")]
impl EntryObject {
    async fn id(&self) -> ID {
        ID(self.stored.entry.id.to_string())
    }
    async fn timestamp(&self) -> String {
        rfc3339_micros(self.stored.entry.timestamp())
    }
    /// Microseconds from request to response; 0 when either is missing.
    async fn elapsed_time(&self) -> Int64 {
        self.stored.entry.elapsed_us().into()
    }
    /// "HTTP", "DNS", ...
    async fn protocol(&self) -> &str {
        &self.proto().name
    }
    /// The protocol's filter flag: "http", "dns", ...
    async fn flag(&self) -> &str {
        &self.proto().flag
    }
    async fn transport(&self) -> String {
        self.stored.entry.transport.to_string()
    }
    async fn flow_id(&self) -> Int64 {
        self.stored.entry.flow_id.into()
    }
    async fn src(&self) -> EndpointRecord {
        self.stored.entry.client.into()
    }
    async fn dst(&self) -> EndpointRecord {
        self.stored.entry.server.into()
    }
    /// Both halves seen, or a message that stands alone.
    async fn complete(&self) -> bool {
        self.stored.entry.complete()
    }
    /// Request and response summaries joined: "GET /api/orders → 200".
    async fn summary(&self) -> String {
        summary_of(&self.stored)
    }
    /// The entry's `status_code` (HTTP status, DNS rcode, ...) when it has one.
    async fn status(&self) -> Option<i64> {
        status_of(self.schema(), &self.stored)
    }
    /// Request body bytes on the wire (after transfer framing); 0 without a body.
    async fn request_size(&self) -> Int64 {
        body_size(&self.stored.entry.request).into()
    }
    /// Response body bytes on the wire (after transfer framing); 0 without a body.
    async fn response_size(&self) -> Int64 {
        body_size(&self.stored.entry.response).into()
    }
    async fn request(&self) -> Option<MessageObject> {
        self.message(true)
    }
    async fn response(&self) -> Option<MessageObject> {
        self.message(false)
    }
    /// Every filter variable of the entry, by its name in the filter language.
    async fn vars(&self) -> Json<serde_json::Value> {
        Json(entry_vars(&self.stored.catalog, &self.stored.entry))
    }
}

pub struct MessageObject {
    stored: Arc<StoredEntry>,
    request: bool,
    bodies: bool,
}

impl MessageObject {
    fn msg(&self) -> &Message {
        let e = &self.stored.entry;
        if self.request {
            e.request.as_ref()
        } else {
            e.response.as_ref()
        }
        .expect("a MessageObject exists only for a present message")
    }
    fn schema(&self) -> &PluginSchema {
        self.stored.catalog.plugin(self.stored.entry.plugin)
    }
}

#[Object(name = "Message")]
impl MessageObject {
    async fn timestamp(&self) -> String {
        rfc3339_micros(self.msg().ts)
    }
    /// The plugin's fields by name, as in the JSONL record: maps are lists of
    /// [name, value] pairs in wire order.
    async fn fields(&self) -> Json<serde_json::Value> {
        Json(message_fields_json(self.schema(), self.msg()))
    }
    /// One line from the protocol's summary template.
    async fn summary(&self) -> String {
        let e = &self.stored.entry;
        let proto = &self.schema().protocols[e.protocol as usize];
        let template = if self.request {
            &proto.request_summary
        } else {
            &proto.response_summary
        };
        render_summary(template, self.schema(), Some(self.msg()))
    }
    /// Null in lists; present in `entry(id)` and subscriptions.
    async fn body(&self) -> Option<BodyObject> {
        if !self.bodies {
            return None;
        }
        self.msg().body.as_deref().map(BodyObject::from)
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Body")]
pub struct BodyObject {
    /// Bytes on the wire after transfer framing.
    size: Int64,
    /// Bytes kept (at most the cap).
    captured: i32,
    truncated: bool,
    /// Content coding removed for display (gzip, deflate).
    decoded_from: Option<String>,
    /// The kept bytes when they are UTF-8 ...
    text: Option<String>,
    /// ... else base64.
    base64: Option<String>,
}

impl From<&Body> for BodyObject {
    fn from(b: &Body) -> Self {
        let (text, base64) = match std::str::from_utf8(&b.data) {
            Ok(s) => (Some(s.to_owned()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&b.data)),
            ),
        };
        BodyObject {
            size: b.original_len.into(),
            captured: i32::try_from(b.data.len()).unwrap_or(i32::MAX),
            truncated: b.truncated,
            decoded_from: b.decoded_from.clone(),
            text,
            base64,
        }
    }
}
