//! Filter variables of an entry, named as in docs/filter-language.md.
//!
//! Network and identity variables come from the host; protocol variables come
//! from the plugin's declared fields: every field as `request.<name>` /
//! `response.<name>`, top-level fields also bare, the protocol's flag as `true`.

use serde_json::{Map, Value as Json};

use crate::grouping::{group, Grouped};
use crate::json::{rfc3339_micros, value_json};
use crate::{Catalog, Entry, FieldType, Message, PluginSchema};

/// Map keys are lower-cased (filters write `request.headers["content-type"]`);
/// duplicates are joined with ", " as HTTP does for repeated headers.
fn map_json(members: Vec<(&str, &str)>) -> Json {
    let mut m = Map::new();
    for (k, v) in members {
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

fn grouped_json(g: Grouped<'_>) -> Json {
    match g {
        Grouped::Scalar(v) => value_json(v),
        Grouped::List(l) => Json::Array(l.into_iter().map(value_json).collect()),
        Grouped::Map(m) => map_json(m),
    }
}

fn add_message(vars: &mut Map<String, Json>, schema: &PluginSchema, side: &str, m: &Message) {
    for (decl, g) in group(schema, m) {
        let v = grouped_json(g);
        // The request's value of a top-level field wins over the response's
        // (it is inserted first), except that a response adds what the
        // request lacked (status_code).
        if decl.top_level && !vars.contains_key(&decl.name) {
            vars.insert(decl.name.clone(), v.clone());
        }
        vars.insert(format!("{side}.{}", decl.name), v);
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
    let proto = &schema.protocols[e.protocol as usize];
    let mut v = Map::new();
    v.insert(proto.flag.clone(), Json::Bool(true));
    v.insert(e.transport.to_string(), Json::Bool(true));
    v.insert("protocol".into(), Json::String(proto.name.clone()));
    v.insert("id".into(), Json::from(e.id));
    v.insert(
        "timestamp".into(),
        Json::String(rfc3339_micros(e.timestamp())),
    );
    v.insert("elapsed_time".into(), Json::from(e.elapsed_us()));
    v.insert("flow_id".into(), Json::from(e.flow_id));
    v.insert("conn_id".into(), Json::from(e.flow_id));
    for (side, ep) in [("src", &e.client), ("dst", &e.server)] {
        let ip = ep.ip.to_string();
        v.insert(format!("{side}.ip"), Json::String(ip.clone()));
        v.insert(format!("{side}.port"), Json::from(ep.port));
        // Best name: service, else pod, else IP; without Kubernetes, the IP.
        v.insert(format!("{side}.name"), Json::String(ip));
    }
    v.insert("has_pcap".into(), Json::Bool(false));
    if let Some(m) = &e.request {
        add_message(&mut v, schema, "request", m);
    }
    if let Some(m) = &e.response {
        add_message(&mut v, schema, "response", m);
    }
    // Declared collections that are absent still apply: empty, so filters
    // like `"x" in dns_answers` are false instead of an unknown variable.
    for decl in schema
        .fields
        .iter()
        .filter(|d| d.top_level && d.ty.is_collection())
    {
        v.entry(decl.name.clone()).or_insert_with(|| match decl.ty {
            FieldType::StrMap => Json::Object(Map::new()),
            _ => Json::Array(Vec::new()),
        });
    }
    Json::Object(v)
}
