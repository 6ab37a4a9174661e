//! Filter variables of an entry, named as in docs/filter-language.md.
//!
//! Network and identity variables come from the host; protocol variables come
//! from the plugin's declared fields: every field as `request.<name>` /
//! `response.<name>`, top-level fields also bare, the protocol's flag as `true`.

use serde_json::{Map, Value as Json};

use crate::grouping::{group, Grouped};
use crate::json::{rfc3339_micros, value_json};
use remora_core::Timestamp;

use crate::{Catalog, Entry, FieldSchema, FieldType, PluginSchema};

/// Map keys are lower-cased (filters write `request.headers["content-type"]`);
/// duplicates are joined with ", " as HTTP does for repeated headers.
fn map_json(members: &[(&str, &str)]) -> Json {
    let mut m = Map::new();
    for &(k, v) in members {
        let k = k.to_ascii_lowercase();
        match m.get_mut(&k) {
            Some(Json::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(v);
            }
            _ => {
                m.insert(k, Json::String(v.to_owned()));
            }
        }
    }
    Json::Object(m)
}

fn grouped_json(g: &Grouped<'_>) -> Json {
    match g {
        Grouped::Scalar(v) => value_json(*v),
        Grouped::List(l) => Json::Array(l.iter().copied().map(value_json).collect()),
        Grouped::Map(m) => map_json(m),
    }
}

/// A variable's value as [`settings`] gives it, borrowed from the entry.
pub(crate) enum VarValue<'a> {
    Bool(bool),
    Uint(u64),
    Str(&'a str),
    Time(Timestamp),
    Field(&'a Grouped<'a>),
    EmptyObject,
    EmptyArray,
}

impl VarValue<'_> {
    fn json(&self) -> Json {
        match self {
            VarValue::Bool(b) => Json::Bool(*b),
            VarValue::Uint(n) => Json::from(*n),
            VarValue::Str(s) => Json::String((*s).to_owned()),
            VarValue::Time(t) => Json::String(rfc3339_micros(*t)),
            VarValue::Field(g) => grouped_json(g),
            VarValue::EmptyObject => Json::Object(Map::new()),
            VarValue::EmptyArray => Json::Array(Vec::new()),
        }
    }
}

/// Texts of an entry's host variables, made once for [`settings`] to lend.
pub(crate) struct HostTexts {
    pub(crate) transport: String,
    pub(crate) src_ip: String,
    pub(crate) dst_ip: String,
}

impl HostTexts {
    pub(crate) fn of(e: &Entry) -> Self {
        HostTexts {
            transport: e.transport.to_string(),
            src_ip: e.client.ip.to_string(),
            dst_ip: e.server.ip.to_string(),
        }
    }
}

/// A message's fields, grouped by declaration ([`group`]).
pub(crate) type Groups<'a> = [(&'a FieldSchema, Grouped<'a>)];

/// Every setting of `e`'s variables, in order, as `set(prefix, name,
/// only_if_absent, value)` (the variable is `prefix.name`, or `name` when
/// `prefix` is empty). A later setting of a name replaces an earlier one
/// unless it is `only_if_absent`. `groups` are the request's and the
/// response's fields. [`entry_vars`] and the JSONL writer both render this
/// one list, so they cannot disagree on what the variables are.
pub(crate) fn settings<'a>(
    schema: &'a PluginSchema,
    e: &'a Entry,
    texts: &'a HostTexts,
    groups: [Option<&'a Groups<'a>>; 2],
    mut set: impl FnMut(&'static str, &'a str, bool, VarValue<'a>),
) {
    let proto = &schema.protocols[e.protocol as usize];
    set("", &proto.flag, false, VarValue::Bool(true));
    set("", &texts.transport, false, VarValue::Bool(true));
    set("", "protocol", false, VarValue::Str(&proto.name));
    set("", "id", false, VarValue::Uint(e.id));
    set("", "timestamp", false, VarValue::Time(e.timestamp()));
    set("", "elapsed_time", false, VarValue::Uint(e.elapsed_us()));
    set("", "flow_id", false, VarValue::Uint(e.flow_id));
    set("", "conn_id", false, VarValue::Uint(e.flow_id));
    for (side, ep, ip) in [
        ("src", &e.client, &texts.src_ip),
        ("dst", &e.server, &texts.dst_ip),
    ] {
        set(side, "ip", false, VarValue::Str(ip));
        set(side, "port", false, VarValue::Uint(ep.port.into()));
        // Best name: service, else pod, else IP; without Kubernetes, the IP.
        set(side, "name", false, VarValue::Str(ip));
    }
    set("", "has_pcap", false, VarValue::Bool(false));
    // The request's value of a top-level field wins over the response's (it
    // is set first), except that a response adds what the request lacked
    // (status_code).
    for (side, fields) in ["request", "response"].into_iter().zip(groups) {
        for (decl, g) in fields.into_iter().flatten() {
            if decl.top_level {
                set("", &decl.name, true, VarValue::Field(g));
            }
            set(side, &decl.name, false, VarValue::Field(g));
        }
    }
    // Declared collections that are absent still apply: empty, so filters
    // like `"x" in dns_answers` are false instead of an unknown variable.
    for decl in schema
        .fields
        .iter()
        .filter(|d| d.top_level && d.ty.is_collection())
    {
        let empty = match decl.ty {
            FieldType::StrMap => VarValue::EmptyObject,
            _ => VarValue::EmptyArray,
        };
        set("", &decl.name, true, empty);
    }
}

/// One variable of `e` by its dotted name, as [`entry_vars`] gives it.
/// Endpoint, protocol and id variables are read directly (an alert rule
/// grouping by `dst.name` asks once per entry, and building every variable
/// costs more than the filter); anything else goes through [`entry_vars`].
pub fn entry_var(catalog: &Catalog, e: &Entry, name: &str) -> Option<Json> {
    let endpoint = |side: &str| match side {
        "src" => Some(&e.client),
        "dst" => Some(&e.server),
        _ => None,
    };
    if let Some((side, what)) = name.split_once('.') {
        if let Some(ep) = endpoint(side) {
            // `name` is the IP until names are resolved (see entry_vars).
            match what {
                "ip" | "name" => return Some(Json::String(ep.ip.to_string())),
                "port" => return Some(Json::from(ep.port)),
                _ => {}
            }
        }
    }
    match name {
        "protocol" => {
            let proto = &catalog.plugin(e.plugin).protocols[e.protocol as usize];
            Some(Json::String(proto.name.clone()))
        }
        "id" => Some(Json::from(e.id)),
        "flow_id" | "conn_id" => Some(Json::from(e.flow_id)),
        _ => entry_vars(catalog, e).get(name).cloned(),
    }
}

/// Every variable that applies to `e`, as a flat JSON object keyed by the
/// variable's dotted name.
pub fn entry_vars(catalog: &Catalog, e: &Entry) -> Json {
    let schema = catalog.plugin(e.plugin);
    let texts = HostTexts::of(e);
    let request = e.request.as_ref().map(|m| group(schema, m));
    let response = e.response.as_ref().map(|m| group(schema, m));
    let mut v = Map::new();
    settings(
        schema,
        e,
        &texts,
        [request.as_deref(), response.as_deref()],
        |prefix, name, only_if_absent, value| {
            let key = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            if only_if_absent {
                v.entry(key).or_insert_with(|| value.json());
            } else {
                v.insert(key, value.json());
            }
        },
    );
    Json::Object(v)
}
