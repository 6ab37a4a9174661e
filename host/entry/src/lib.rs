//! Entries: what the pipeline produces and every consumer (output, store, API,
//! filters) reads.
//!
//! An entry is one request/response pair, or one unpaired message. Its fields
//! come from a dissector plugin, which declared them once (the [`Catalog`]); an
//! entry stores field ids and values, and names are resolved only when it is
//! rendered.
//!
//! Architecture invariant: nothing here knows a protocol. HTTP, DNS, ... exist
//! only as names and types a plugin declared.

mod catalog;
mod fields;
mod grouping;
mod json;
mod jsonl;
mod table;
mod vars;

pub use catalog::{Catalog, FieldSchema, FieldType, PluginSchema, ProtocolSchema};
pub use fields::{FieldRef, Fields, ValueRef};
pub use json::{body_json, entry_to_json, message_fields_json, rfc3339_micros};
pub use jsonl::write_jsonl;
pub use table::{printable, render_summary, TableWriter};
pub use vars::{entry_var, entry_vars};

use remora_core::{Endpoint, Timestamp, Transport};

/// An owned field's text.
pub type Text = String;

/// A field value as a plugin emitted it, owned: for building messages by
/// hand ([`Fields`] holds them encoded, and hands out [`ValueRef`]s). Map
/// members arrive as one `Pair` each, list elements as one scalar each;
/// [`FieldType`] says how to group them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text),
    Bytes(Vec<u8>),
    Pair(Text, Text),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub id: u16,
    pub value: Value,
}

/// What a plugin kept of a message body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Body {
    /// At most the plugin's cap; decoded when `decoded_from` is set.
    pub data: Vec<u8>,
    /// Length on the wire after transfer framing, before content decoding.
    pub original_len: u64,
    pub truncated: bool,
    pub decoded_from: Option<String>,
}

/// One dissected message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Capture time of the packet that carried the message's first byte.
    pub ts: Timestamp,
    pub fields: Fields,
    /// Boxed: most messages have none, and a message moves several times
    /// on its way out (in an entry of a few hundred bytes; a body inline
    /// made every message 56 bytes larger).
    pub body: Option<Box<Body>>,
}

impl Message {
    /// The first value of field `id`, if present.
    pub fn get(&self, id: u16) -> Option<ValueRef<'_>> {
        self.fields.get(id)
    }
}

/// One entry: a request with its response, or a message on its own.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Assigned in output order, starting at 1; 0 until then.
    pub id: u64,
    pub flow_id: u64,
    /// Index of the plugin in the [`Catalog`].
    pub plugin: u16,
    /// Index of the protocol within that plugin.
    pub protocol: u16,
    pub transport: Transport,
    pub client: Endpoint,
    pub server: Endpoint,
    pub request: Option<Message>,
    pub response: Option<Message>,
    /// A message that is an entry by itself (not waiting for a partner).
    pub standalone: bool,
}

impl Entry {
    /// Both halves seen, or a standalone message.
    pub fn complete(&self) -> bool {
        self.standalone || (self.request.is_some() && self.response.is_some())
    }

    /// Request time, or the response time when the request was not seen.
    pub fn timestamp(&self) -> Timestamp {
        self.request
            .as_ref()
            .or(self.response.as_ref())
            .map(|m| m.ts)
            .unwrap_or_default()
    }

    /// Response time minus request time in microseconds; 0 when either is missing.
    pub fn elapsed_us(&self) -> u64 {
        match (&self.request, &self.response) {
            (Some(q), Some(r)) => r.ts.since(q.ts),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests;
