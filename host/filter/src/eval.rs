//! Values of the referenced variables for one entry, computed on demand when
//! the CEL interpreter asks for a root identifier.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::value::CowVal;
use cel::objects::{Key, Map};
use cel::Value;
use chrono::{DateTime, FixedOffset};
use remora_core::{Endpoint, Transport};
use remora_entry::{Catalog, Entry, FieldType, Message, PluginSchema, ValueRef as FieldValue};

use crate::check::Reference;
use crate::vars::FLAGS;

/// Where a variable's value comes from, independent of the catalog.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    Protocol,
    Id,
    Timestamp,
    Elapsed,
    FlowId,
    HasPcap,
    Ip(Side),
    Port(Side),
    /// Without Kubernetes the best name is the IP.
    Name(Side),
    /// A flag: true for the entry's protocol and transport; else a top-level
    /// bool field of that name (http2's `grpc`); else false.
    Flag(String),
    /// A top-level field, request's value first.
    Bare(String),
    /// `request.<name>` / `response.<name>`.
    Field(Side, String),
    /// Known but never filled yet (Kubernetes identity, node, worker).
    Missing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

impl Source {
    pub fn of(name: &str, catalog_flags: &[String]) -> Source {
        let side = |s: &str| match s {
            "src" => Some(Side::Request),
            "dst" => Some(Side::Response),
            _ => None,
        };
        match name {
            "protocol" => return Source::Protocol,
            "id" => return Source::Id,
            "timestamp" => return Source::Timestamp,
            "elapsed_time" => return Source::Elapsed,
            "flow_id" | "conn_id" => return Source::FlowId,
            "has_pcap" => return Source::HasPcap,
            _ => {}
        }
        if FLAGS.contains(&name) || catalog_flags.iter().any(|f| f == name) {
            return Source::Flag(name.to_owned());
        }
        if let Some((root, rest)) = name.split_once('.') {
            if let Some(s) = side(root) {
                return match rest {
                    "ip" => Source::Ip(s),
                    "port" => Source::Port(s),
                    "name" => Source::Name(s),
                    _ => Source::Missing,
                };
            }
            match root {
                "request" => return Source::Field(Side::Request, rest.to_owned()),
                "response" => return Source::Field(Side::Response, rest.to_owned()),
                _ => return Source::Missing,
            }
        }
        match name {
            "node" | "namespaces" | "local_labels" | "remote_labels" | "worker" => Source::Missing,
            _ => Source::Bare(name.to_owned()),
        }
    }

    fn field_name(&self) -> Option<(&str, bool)> {
        match self {
            Source::Flag(n) | Source::Bare(n) => Some((n, true)),
            Source::Field(_, n) => Some((n, false)),
            _ => None,
        }
    }
}

/// A referenced variable, resolved against one catalog: per plugin, the
/// declared field it reads.
pub(crate) struct Bound {
    pub source: Source,
    /// Per plugin: field id and type.
    pub fields: Vec<Option<(u16, FieldType)>>,
}

/// The program's referenced variables resolved against one catalog.
pub(crate) struct Plan {
    pub vars: Vec<Bound>,
}

impl Plan {
    pub fn new(sources: &[Source], catalog: &Catalog) -> Plan {
        let vars = sources
            .iter()
            .map(|s| Bound {
                source: s.clone(),
                fields: catalog.plugins.iter().map(|p| lookup(p, s)).collect(),
            })
            .collect();
        Plan { vars }
    }
}

fn lookup(p: &PluginSchema, s: &Source) -> Option<(u16, FieldType)> {
    let (name, top_level_only) = s.field_name()?;
    p.fields
        .iter()
        .find(|f| f.name == name && (f.top_level || !top_level_only))
        .map(|f| (f.id, f.ty))
}

/// Fingerprint of a catalog, so a cached [`Plan`] is not reused for a
/// different catalog that happens to live at the same address.
pub(crate) type CatalogKey = (usize, usize, usize);

pub(crate) fn catalog_key(c: &Catalog) -> CatalogKey {
    (
        c as *const Catalog as usize,
        c.plugins.len(),
        c.plugins.iter().map(|p| p.fields.len()).sum(),
    )
}

pub(crate) fn timestamp_value(micros: i64) -> Value {
    let t = DateTime::from_timestamp_micros(micros).unwrap_or_default();
    Value::Timestamp(t.with_timezone(&FixedOffset::east_opt(0).expect("UTC offset")))
}

fn endpoint(e: &Entry, s: Side) -> &Endpoint {
    match s {
        Side::Request => &e.client,
        Side::Response => &e.server,
    }
}

fn message(e: &Entry, s: Side) -> Option<&Message> {
    match s {
        Side::Request => e.request.as_ref(),
        Side::Response => e.response.as_ref(),
    }
}

/// The value of field `id` in `m` as the filter sees it: the last of a
/// repeated scalar, all elements of a list, a map with lower-cased keys and
/// duplicates joined by ", " (as `remora_entry::entry_vars`).
fn field_value(m: &Message, id: u16, ty: FieldType) -> Option<Value> {
    match ty {
        FieldType::StrList | FieldType::IntList => {
            let l: Vec<Value> = m
                .fields
                .iter()
                .filter(|f| f.id == id)
                .map(|f| scalar(f.value))
                .collect();
            (!l.is_empty()).then(|| Value::List(Arc::new(l)))
        }
        FieldType::StrMap => {
            let mut map: HashMap<Key, Value> = HashMap::new();
            let mut any = false;
            for f in m.fields.iter().filter(|f| f.id == id) {
                let FieldValue::Pair(k, v) = f.value else {
                    continue;
                };
                any = true;
                let key = Key::String(Arc::new(k.to_ascii_lowercase().to_string()));
                match map.get_mut(&key) {
                    Some(Value::String(prev)) => {
                        let joined = format!("{prev}, {v}");
                        *prev = Arc::new(joined);
                    }
                    _ => {
                        map.insert(key, Value::String(Arc::new(v.to_string())));
                    }
                }
            }
            any.then(|| Value::Map(Map { map: Arc::new(map) }))
        }
        _ => m.fields.last(id).map(scalar),
    }
}

fn scalar(v: FieldValue<'_>) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(b),
        FieldValue::Int(i) => Value::Int(i),
        FieldValue::Float(f) => Value::Float(f),
        FieldValue::Str(s) => Value::String(Arc::new(s.to_owned())),
        FieldValue::Bytes(b) => Value::Bytes(Arc::new(b.to_vec())),
        FieldValue::Pair(k, v) => Value::List(Arc::new(vec![
            Value::String(Arc::new(k.to_string())),
            Value::String(Arc::new(v.to_string())),
        ])),
    }
}

fn empty_collection(ty: FieldType) -> Option<Value> {
    match ty {
        FieldType::StrList | FieldType::IntList => Some(Value::List(Arc::new(Vec::new()))),
        FieldType::StrMap => Some(Value::Map(Map {
            map: Arc::new(HashMap::new()),
        })),
        _ => None,
    }
}

/// The value of `var` for `e`; None when the entry lacks it.
pub(crate) fn value(catalog: &Catalog, var: &Bound, e: &Entry) -> Option<Value> {
    let field = var.fields.get(e.plugin as usize).copied().flatten();
    let s = |v: String| Value::String(Arc::new(v));
    Some(match &var.source {
        Source::Protocol => s(catalog.protocol(e.plugin, e.protocol).name.clone()),
        Source::Id => Value::Int(e.id as i64),
        Source::Timestamp => timestamp_value(e.timestamp().micros()),
        Source::Elapsed => Value::Int(e.elapsed_us() as i64),
        Source::FlowId => Value::Int(e.flow_id as i64),
        Source::HasPcap => Value::Bool(false),
        Source::Ip(side) | Source::Name(side) => s(endpoint(e, *side).ip.to_string()),
        Source::Port(side) => Value::Int(endpoint(e, *side).port.into()),
        Source::Flag(name) => {
            let proto = &catalog.protocol(e.plugin, e.protocol).flag;
            let transport = match e.transport {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
            };
            if proto == name || transport == name {
                Value::Bool(true)
            } else if let Some(v) = field.and_then(|(id, ty)| bare(e, id, ty)) {
                v
            } else {
                Value::Bool(false)
            }
        }
        Source::Bare(_) => {
            let (id, ty) = field?;
            bare(e, id, ty).or_else(|| empty_collection(ty))?
        }
        Source::Field(side, _) => {
            let (id, ty) = field?;
            field_value(message(e, *side)?, id, ty)?
        }
        Source::Missing => return None,
    })
}

fn bare(e: &Entry, id: u16, ty: FieldType) -> Option<Value> {
    e.request
        .as_ref()
        .and_then(|m| field_value(m, id, ty))
        .or_else(|| e.response.as_ref().and_then(|m| field_value(m, id, ty)))
}

/// How the interpreter's root identifiers map to referenced variables.
pub(crate) enum Root {
    /// `status_code`: variable index.
    Leaf(usize),
    /// `src` for `src.ip`, `dst.pod.name`: (path below the root, variable).
    Tree(Vec<(Vec<String>, usize)>),
}

pub(crate) fn roots(refs: &[Reference]) -> Vec<(String, Root)> {
    let mut out: Vec<(String, Root)> = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let root = &r.path[0];
        let below: Vec<String> = r.path[1..].to_vec();
        let slot = out.iter().position(|(n, _)| n == root);
        match (slot, below.is_empty()) {
            (None, true) => out.push((root.clone(), Root::Leaf(i))),
            (None, false) => out.push((root.clone(), Root::Tree(vec![(below, i)]))),
            (Some(j), false) => {
                if let Root::Tree(t) = &mut out[j].1 {
                    t.push((below, i));
                }
            }
            // `node` and `node.name` both named: the checker accepted both;
            // the bare one wins as CEL resolves the root first.
            (Some(j), true) => out[j].1 = Root::Leaf(i),
        }
    }
    out
}

/// Answers the interpreter's variable look-ups for one entry.
pub(crate) struct EntryResolver<'a> {
    pub catalog: &'a Catalog,
    pub plan: &'a Plan,
    pub roots: &'a [(String, Root)],
    pub entry: &'a Entry,
}

impl EntryResolver<'_> {
    fn root_value(&self, root: &Root) -> Option<Value> {
        match root {
            Root::Leaf(i) => value(self.catalog, &self.plan.vars[*i], self.entry),
            Root::Tree(paths) => {
                let mut tree = Tree::default();
                for (path, i) in paths {
                    if let Some(v) = value(self.catalog, &self.plan.vars[*i], self.entry) {
                        tree.insert(path, v);
                    }
                }
                Some(tree.into_value())
            }
        }
    }
}

impl cel::context::VariableResolver for EntryResolver<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let (_, root) = self.roots.iter().find(|(n, _)| n == variable)?;
        let v = self.root_value(root)?;
        v.try_into().ok().map(CowVal::Owned)
    }
}

/// Nested maps built from the present referenced paths under one root.
#[derive(Default)]
struct Tree {
    leaves: Vec<(String, Value)>,
    children: Vec<(String, Tree)>,
}

impl Tree {
    fn insert(&mut self, path: &[String], v: Value) {
        match path {
            [] => {}
            [last] => self.leaves.push((last.clone(), v)),
            [first, rest @ ..] => {
                let i = match self.children.iter().position(|(n, _)| n == first) {
                    Some(i) => i,
                    None => {
                        self.children.push((first.clone(), Tree::default()));
                        self.children.len() - 1
                    }
                };
                self.children[i].1.insert(rest, v);
            }
        }
    }

    fn into_value(self) -> Value {
        let mut m: HashMap<Key, Value> = HashMap::new();
        for (k, v) in self.leaves {
            m.insert(Key::String(Arc::new(k)), v);
        }
        for (k, t) in self.children {
            m.insert(Key::String(Arc::new(k)), t.into_value());
        }
        Value::Map(Map { map: Arc::new(m) })
    }
}
