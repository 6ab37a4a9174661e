//! The variables a filter may name: the host's, the flags of the filter
//! language, and every field the loaded plugins declared.

use std::collections::BTreeMap;

use remora_entry::{Catalog, FieldType};

/// Protocol flags of docs/filter-language.md. A flag no loaded plugin sets
/// (`ldap` today) is known and simply false.
pub const FLAGS: &[&str] = &[
    "http",
    "grpc",
    "ws",
    "gql",
    "dns",
    "redis",
    "kafka",
    "amqp",
    "mysql",
    "postgresql",
    "mongodb",
    "mqtt",
    "ldap",
    "tls",
    "tcp",
    "udp",
    "icmp",
];

/// Host variables: (name, type, meaning). Those Remora cannot fill yet
/// (Kubernetes identity, node, worker) are known names that are always
/// missing, so a comparison on them is false.
const HOST: &[(&str, &str, &str)] = &[
    ("src.ip", "string", "client address"),
    ("dst.ip", "string", "server address"),
    ("src.port", "int", "client port"),
    ("dst.port", "int", "server port"),
    (
        "src.name",
        "string",
        "best client name: service, else pod, else IP",
    ),
    (
        "dst.name",
        "string",
        "best server name: service, else pod, else IP",
    ),
    ("src.pod.name", "string", "client pod"),
    ("src.pod.namespace", "string", "client pod namespace"),
    ("dst.pod.name", "string", "server pod"),
    ("dst.pod.namespace", "string", "server pod namespace"),
    ("src.service.name", "string", "client service"),
    (
        "src.service.namespace",
        "string",
        "client service namespace",
    ),
    ("dst.service.name", "string", "server service"),
    (
        "dst.service.namespace",
        "string",
        "server service namespace",
    ),
    ("node", "string", "node where it was captured"),
    ("node.name", "string", "node where it was captured"),
    ("namespaces", "list(string)", "all namespaces involved"),
    ("local_labels", "map(string,string)", "local pod labels"),
    ("remote_labels", "map(string,string)", "remote pod labels"),
    ("protocol", "string", "protocol name, e.g. \"HTTP\""),
    ("id", "int", "entry id"),
    ("timestamp", "timestamp", "request time (UTC)"),
    (
        "elapsed_time",
        "int",
        "response minus request time, microseconds",
    ),
    ("conn_id", "int", "the L4 flow the entry belongs to"),
    ("flow_id", "int", "the L4 flow the entry belongs to"),
    ("has_pcap", "bool", "raw packets still stored"),
    ("worker", "string", "capturing worker"),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarInfo {
    /// Dotted name as written in a filter.
    pub name: String,
    /// "bool", "int", "float", "string", "bytes", "timestamp",
    /// "list(string)", "list(int)", "map(string,string)", or "dyn" when
    /// plugins declare the same name with different types.
    pub ty: String,
    /// Set on protocol flags: the flag itself.
    pub protocol: Option<String>,
    pub doc: String,
}

/// Every variable name a filter may use, for checking filters and for
/// completion in a UI.
#[derive(Clone, Debug)]
pub struct Variables {
    list: Vec<VarInfo>,
    by_name: BTreeMap<String, usize>,
}

pub(crate) fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Bool => "bool",
        FieldType::Int => "int",
        FieldType::Float => "float",
        FieldType::Str => "string",
        FieldType::Bytes => "bytes",
        FieldType::StrList => "list(string)",
        FieldType::IntList => "list(int)",
        FieldType::StrMap => "map(string,string)",
    }
}

impl Variables {
    pub fn new(catalogs: &[&Catalog]) -> Self {
        let mut v = Variables {
            list: Vec::new(),
            by_name: BTreeMap::new(),
        };
        for f in FLAGS {
            v.add(f, "bool", Some(f), "protocol flag");
        }
        for (name, ty, doc) in HOST {
            v.add(name, ty, None, doc);
        }
        for cat in catalogs {
            for p in &cat.plugins {
                for proto in &p.protocols {
                    v.add(&proto.flag, "bool", Some(&proto.flag), "protocol flag");
                }
                for f in &p.fields {
                    let ty = type_name(f.ty);
                    let doc = format!("{} ({}): {}", f.name, p.name, f.doc);
                    if f.top_level {
                        v.add(&f.name, ty, None, &doc);
                    }
                    v.add(&format!("request.{}", f.name), ty, None, &doc);
                    v.add(&format!("response.{}", f.name), ty, None, &doc);
                }
            }
        }
        v
    }

    fn add(&mut self, name: &str, ty: &str, protocol: Option<&str>, doc: &str) {
        if let Some(&i) = self.by_name.get(name) {
            let known = &mut self.list[i];
            // A plugin field named like a flag (http2's `grpc`) stays a flag:
            // both are bool. Conflicting declarations make the type dynamic.
            if known.ty != ty {
                known.ty = "dyn".into();
            }
            return;
        }
        self.by_name.insert(name.to_owned(), self.list.len());
        self.list.push(VarInfo {
            name: name.to_owned(),
            ty: ty.to_owned(),
            protocol: protocol.map(str::to_owned),
            doc: doc.to_owned(),
        });
    }

    pub fn list(&self) -> &[VarInfo] {
        &self.list
    }

    pub fn get(&self, name: &str) -> Option<&VarInfo> {
        self.by_name.get(name).map(|&i| &self.list[i])
    }

    /// Whether `prefix.` starts some variable's name (`src` for `src.ip`).
    pub(crate) fn is_namespace(&self, prefix: &str) -> bool {
        let dotted = format!("{prefix}.");
        self.by_name
            .range(dotted.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&dotted))
    }

    /// Known names close to `name`, for "did you mean".
    pub(crate) fn suggest(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .map(|v| (edit_distance(name, &v.name), v.name.as_str()))
            .filter(|(d, _)| *d <= 2)
            .min()
            .map(|(_, n)| n)
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
