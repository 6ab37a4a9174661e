//! Shared by the alert integration tests: a one-plugin, one-protocol TCP
//! catalog with top-level fields.

use std::sync::Arc;

use remora_core::Transport;
use remora_entry::{Catalog, FieldSchema, FieldType, PluginSchema, ProtocolSchema};

/// Plugin `plugin` (version "1") with protocol `name`/`flag` on `port`, and
/// the given `(id, name, type)` fields.
pub fn tcp_catalog(
    plugin: &str,
    (name, flag, port): (&str, &str, u16),
    fields: &[(u16, &str, FieldType)],
) -> Arc<Catalog> {
    Arc::new(Catalog {
        plugins: vec![PluginSchema::new(
            plugin.into(),
            "1".into(),
            vec![ProtocolSchema {
                name: name.into(),
                flag: flag.into(),
                transport: Transport::Tcp,
                ports: vec![port],
                request_summary: String::new(),
                response_summary: String::new(),
            }],
            fields
                .iter()
                .map(|&(id, name, ty)| FieldSchema {
                    id,
                    name: name.into(),
                    ty,
                    top_level: true,
                    doc: String::new(),
                })
                .collect(),
        )],
    })
}
