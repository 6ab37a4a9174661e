//! Alert plugins: implement [`AlertPlugin`] and invoke
//! [`export_alert_plugin!`](crate::export_alert_plugin) once. Needs the
//! `alert` feature with `default-features = false` when built for wasm32
//! (one component exports one world). The types are plain Rust and compile on
//! every target, so a plugin's logic is unit-testable natively.

/// A field value of an entry (WIT `entry-value`). A map field arrives as one
/// `Pair` per member, a list field as one scalar per element.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryValue {
    Boolean(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Pair(String, String),
}

/// One field; `name` indexes [`EntryBatch::names`].
#[derive(Clone, Debug, PartialEq)]
pub struct EntryField {
    pub name: u32,
    pub value: EntryValue,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
    /// Best name: service, else pod, else the IP.
    pub name: String,
}

/// One entry: a request with its response, or a message on its own.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEntry {
    pub id: u64,
    /// Microseconds since the Unix epoch, UTC.
    pub timestamp_us: i64,
    pub elapsed_us: u64,
    /// The protocol's filter flag, as an index into [`EntryBatch::names`].
    pub protocol: u32,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub request: Option<Vec<EntryField>>,
    pub response: Option<Vec<EntryField>>,
}

/// Entries with the names table their fields index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntryBatch {
    pub names: Vec<String>,
    pub entries: Vec<AlertEntry>,
}

impl EntryBatch {
    /// The name `idx` stands for ("" when out of range).
    pub fn name(&self, idx: u32) -> &str {
        self.names.get(idx as usize).map_or("", String::as_str)
    }

    /// The entry's protocol flag ("http", "dns", ...).
    pub fn protocol(&self, e: &AlertEntry) -> &str {
        self.name(e.protocol)
    }

    /// The first value of field `name` in `fields` (a request or response).
    pub fn get<'a>(&self, fields: Option<&'a [EntryField]>, name: &str) -> Option<&'a EntryValue> {
        fields?
            .iter()
            .find(|f| self.name(f.name) == name)
            .map(|f| &f.value)
    }

    /// `get` for a string field.
    pub fn str<'a>(&self, fields: Option<&'a [EntryField]>, name: &str) -> Option<&'a str> {
        match self.get(fields, name)? {
            EntryValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// `get` for an integer field.
    pub fn int(&self, fields: Option<&[EntryField]>, name: &str) -> Option<i64> {
        match self.get(fields, name)? {
            EntryValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One alert a plugin raises.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The rule that fired, e.g. "failed-secret-read".
    pub rule: String,
    pub severity: Severity,
    pub summary: String,
    pub entry_ids: Vec<u64>,
    pub labels: Vec<(String, String)>,
}

/// What an alert plugin says about itself (WIT `alert-plugin-info`).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertPluginInfo {
    pub name: String,
    pub version: String,
    /// A filter-language expression: the host sends only matching entries.
    pub prefilter: Option<String>,
    /// Period of `on_tick`, milliseconds (0: never).
    pub tick_ms: u32,
}

/// An alert plugin. The host creates one value with [`AlertPlugin::new`]
/// and keeps it for the instance's life; a fault drops the instance, and the
/// next call starts from `new` again.
pub trait AlertPlugin: 'static {
    fn info() -> AlertPluginInfo;
    fn new() -> Self;
    /// Entries matching the prefilter, in id order.
    fn on_entries(&mut self, batch: &EntryBatch) -> Vec<Alert>;
    /// Periodic; `now_us` is the host's clock (capture time when reading a file).
    fn on_tick(&mut self, now_us: i64) -> Vec<Alert> {
        let _ = now_us;
        Vec::new()
    }
}

/// Export `$ty: AlertPlugin` as the component's `remora:plugin/alerter`.
/// Invoke once, at the crate root of a `cdylib`; expands to nothing unless
/// built for wasm32 with the `alert` feature.
#[macro_export]
macro_rules! export_alert_plugin {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __RemoraExport = $crate::__alert_private::Adapter<$ty>;
            $crate::bindings::__export_remora_alert_plugin!(__RemoraExport with_types_in $crate::bindings);
        };
    };
}
