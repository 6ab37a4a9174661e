//! Plugin schemas: which protocols and fields each loaded plugin declared.

use remora_core::Transport;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Bool,
    Int,
    Float,
    Str,
    Bytes,
    StrList,
    IntList,
    StrMap,
}

impl FieldType {
    /// Repeated values accumulate instead of replacing each other.
    pub fn is_collection(self) -> bool {
        matches!(
            self,
            FieldType::StrList | FieldType::IntList | FieldType::StrMap
        )
    }
}

#[derive(Clone, Debug)]
pub struct FieldSchema {
    pub id: u16,
    pub name: String,
    pub ty: FieldType,
    pub top_level: bool,
    pub doc: String,
}

#[derive(Clone, Debug)]
pub struct ProtocolSchema {
    pub name: String,
    pub flag: String,
    pub transport: Transport,
    pub ports: Vec<u16>,
    pub request_summary: String,
    pub response_summary: String,
}

#[derive(Clone, Debug)]
pub struct PluginSchema {
    pub name: String,
    pub version: String,
    pub protocols: Vec<ProtocolSchema>,
    pub fields: Vec<FieldSchema>,
    /// field id -> index into `fields`
    by_id: Vec<Option<u16>>,
}

impl PluginSchema {
    pub fn new(
        name: String,
        version: String,
        protocols: Vec<ProtocolSchema>,
        fields: Vec<FieldSchema>,
    ) -> Self {
        let max = fields.iter().map(|f| f.id as usize + 1).max().unwrap_or(0);
        let mut by_id = vec![None; max];
        for (i, f) in fields.iter().enumerate() {
            by_id[f.id as usize] = Some(i as u16);
        }
        PluginSchema {
            name,
            version,
            protocols,
            fields,
            by_id,
        }
    }

    pub fn field(&self, id: u16) -> Option<&FieldSchema> {
        let i = (*self.by_id.get(id as usize)?)?;
        self.fields.get(i as usize)
    }

    pub fn field_by_name(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Every loaded plugin's schema, indexed like the runtime's plugin ids.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub plugins: Vec<PluginSchema>,
}

impl Catalog {
    pub fn plugin(&self, idx: u16) -> &PluginSchema {
        &self.plugins[idx as usize]
    }

    pub fn protocol(&self, plugin: u16, protocol: u16) -> &ProtocolSchema {
        &self.plugin(plugin).protocols[protocol as usize]
    }
}
