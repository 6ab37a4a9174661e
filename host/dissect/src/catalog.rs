//! The entry catalog mirrors the runtime's loaded plugins, index for index.

use remora_core::Transport;
use remora_entry::{Catalog, FieldSchema, FieldType, PluginSchema, ProtocolSchema};
use remora_runtime::{wit, Runtime};

fn field_type(t: wit::FieldType) -> FieldType {
    match t {
        wit::FieldType::Boolean => FieldType::Bool,
        wit::FieldType::Int => FieldType::Int,
        wit::FieldType::Float => FieldType::Float,
        wit::FieldType::Str => FieldType::Str,
        wit::FieldType::Bytes => FieldType::Bytes,
        wit::FieldType::StrList => FieldType::StrList,
        wit::FieldType::IntList => FieldType::IntList,
        wit::FieldType::StrMap => FieldType::StrMap,
    }
}

pub fn schema_from_info(info: &wit::PluginInfo) -> PluginSchema {
    PluginSchema::new(
        info.name.clone(),
        info.version.clone(),
        info.protocols
            .iter()
            .map(|p| ProtocolSchema {
                name: p.name.clone(),
                flag: p.flag.clone(),
                transport: match p.transport {
                    wit::Transport::Tcp => Transport::Tcp,
                    wit::Transport::Udp => Transport::Udp,
                },
                ports: p.ports.clone(),
                request_summary: p.request_summary.clone(),
                response_summary: p.response_summary.clone(),
            })
            .collect(),
        info.fields
            .iter()
            .map(|f| FieldSchema {
                id: f.id,
                name: f.name.clone(),
                ty: field_type(f.type_),
                top_level: f.top_level,
                doc: f.doc.clone(),
            })
            .collect(),
    )
}

pub fn catalog_from_runtime(rt: &Runtime) -> Catalog {
    Catalog {
        plugins: rt
            .plugins()
            .iter()
            .map(|p| schema_from_info(&p.info))
            .collect(),
    }
}
