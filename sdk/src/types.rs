//! Plain-Rust mirrors of the records in `wit/plugin.wit` (package
//! `remora:plugin@0.7.0`, interface `types`). They compile on every target, so a
//! dissector, its unit tests and a native benchmark need no Wasm at all; the
//! export adapter converts them to the generated binding types on wasm32.

pub use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which way bytes travel within a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the side that opened the flow (the client) to the server.
    ToServer,
    /// From the server back to the client.
    ToClient,
}

impl Direction {
    /// The other direction.
    pub fn reverse(self) -> Self {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }

    /// 0 for to-server, 1 for to-client: handy to index per-direction state.
    pub fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

/// L4 identity of a flow as the host sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    pub id: u64,
    pub transport: Transport,
    pub client_ip: IpAddr,
    pub client_port: u16,
    pub server_ip: IpAddr,
    pub server_port: u16,
}

impl FlowInfo {
    /// A TCP flow between two loopback ports; for tests and benchmarks.
    pub fn tcp_test(id: u64, server_port: u16) -> Self {
        FlowInfo {
            id,
            transport: Transport::Tcp,
            client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            client_port: 40000,
            server_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            server_port,
        }
    }
}

/// Answer of `probe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Definitely not; never ask again for this flow.
    No,
    /// Cannot tell yet; ask again when more bytes have arrived.
    NeedMore,
    /// Yes, with a confidence from 1 (a guess) to 100 (certain).
    Yes(u8),
}

/// A range of the `data` passed to the current `feed` call (offsets relative
/// to `data[0]`, not to the stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: u32,
    pub len: u32,
}

impl Span {
    pub fn range(self) -> core::ops::Range<usize> {
        self.offset as usize..self.offset as usize + self.len as usize
    }
}

/// Text located in the current input (`Span`, cheapest across the boundary) or owned.
#[derive(Clone, Debug, PartialEq)]
pub enum Text {
    Span(Span),
    Owned(String),
}

impl From<Span> for Text {
    fn from(s: Span) -> Self {
        Text::Span(s)
    }
}
impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::Owned(s)
    }
}
impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::Owned(s.to_owned())
    }
}

/// A field's value. Map-typed fields are one `Pair` per member, list-typed
/// fields one `Str`/`Int` per element.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Boolean(bool),
    Int(i64),
    Float(f64),
    Str(Text),
    Bytes(Vec<u8>),
    Pair(Text, Text),
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Int(v.into())
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<Span> for Value {
    fn from(v: Span) -> Self {
        Value::Str(Text::Span(v))
    }
}
impl From<Text> for Value {
    fn from(v: Text) -> Self {
        Value::Str(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(Text::Owned(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(Text::Owned(v.to_owned()))
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

/// The declared type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Boolean,
    Int,
    Float,
    Str,
    Bytes,
    /// Repeated `Str` values form a list of strings.
    StrList,
    /// Repeated `Int` values form a list of ints.
    IntList,
    /// Repeated `Pair` values form a map of strings; names keep their order.
    StrMap,
}

/// Declared once in `info()`; messages refer to fields by `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDecl {
    pub id: u16,
    pub name: String,
    pub ty: FieldType,
    pub top_level: bool,
    pub doc: String,
}

impl FieldDecl {
    /// A field exposed as `request.<name>` / `response.<name>` only.
    pub fn new(id: u16, name: &str, ty: FieldType) -> Self {
        FieldDecl {
            id,
            name: name.to_owned(),
            ty,
            top_level: false,
            doc: String::new(),
        }
    }
    /// Also expose it as a bare top-level filter variable.
    pub fn top_level(mut self) -> Self {
        self.top_level = true;
        self
    }
    pub fn doc(mut self, doc: &str) -> Self {
        self.doc = doc.to_owned();
        self
    }
    /// All of a declaration in one call, for tables of fields.
    pub fn declare(id: u16, name: &str, ty: FieldType, top_level: bool, doc: &str) -> Self {
        FieldDecl {
            top_level,
            ..FieldDecl::new(id, name, ty).doc(doc)
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub id: u16,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Response,
    Standalone,
}

/// What the dissector kept of a message body.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Body {
    /// At most the configured cap; decoded when `decoded_from` is set.
    pub data: Vec<u8>,
    /// Length on the wire after transfer framing, before content decoding.
    pub original_len: u64,
    /// `data` holds less than the whole body.
    pub truncated: bool,
    /// Content coding removed for display ("gzip", "deflate").
    pub decoded_from: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: MessageKind,
    pub txn: u64,
    /// Stream offset of the message's first byte (`Input::base` + index).
    pub start: u64,
    pub fields: Vec<Field>,
    pub body: Option<Body>,
}

impl Message {
    /// All values of field `id`, in order.
    pub fn values(&self, id: u16) -> impl Iterator<Item = &Value> {
        self.fields
            .iter()
            .filter(move |f| f.id == id)
            .map(|f| &f.value)
    }
    /// The first value of field `id`.
    pub fn value(&self, id: u16) -> Option<&Value> {
        self.values(id).next()
    }
    /// Replace every `Text::Span` by an owned string read from `data` (the
    /// input the spans point into). Needed when a message is kept past the
    /// `feed` call whose input its spans refer to.
    pub fn make_owned(&mut self, data: &[u8]) {
        for f in &mut self.fields {
            f.value.make_owned(data);
        }
    }
}

impl Text {
    /// Resolve against `data` (the input of the call that produced the span).
    pub fn resolve<'a>(&'a self, data: &'a [u8]) -> std::borrow::Cow<'a, str> {
        match self {
            Text::Owned(s) => std::borrow::Cow::Borrowed(s.as_str()),
            Text::Span(sp) => match data.get(sp.range()) {
                Some(b) => String::from_utf8_lossy(b),
                None => std::borrow::Cow::Borrowed(""),
            },
        }
    }
    pub fn make_owned(&mut self, data: &[u8]) {
        if let Text::Span(_) = self {
            *self = Text::Owned(self.resolve(data).into_owned());
        }
    }
}

impl Value {
    pub fn make_owned(&mut self, data: &[u8]) {
        match self {
            Value::Str(t) => t.make_owned(data),
            Value::Pair(a, b) => {
                a.make_owned(data);
                b.make_owned(data);
            }
            _ => {}
        }
    }
}

/// Hand the flow over to another protocol's plugin (the WIT `protocol-switch`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProtocolSwitch {
    /// A `ProtocolDecl::name` (exact), else `flag`, of the protocol that follows.
    pub protocol: String,
    /// Stream offset of the new protocol's first byte, per direction
    /// (indexed by `Direction::index`).
    pub offsets: [u64; 2],
    /// Given to the new session's `Session::takeover`.
    pub params: Vec<(String, String)>,
}

impl ProtocolSwitch {
    pub fn new(protocol: &str, to_server: u64, to_client: u64) -> Self {
        ProtocolSwitch {
            protocol: protocol.to_owned(),
            offsets: [to_server, to_client],
            params: Vec::new(),
        }
    }
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What a `feed`, `gap` or `end` call did (an answer of the WIT `run`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FeedResult {
    pub consumed: u32,
    pub skip: u64,
    pub need: u32,
    pub messages: Vec<Message>,
    pub error: Option<String>,
    pub switch: Option<ProtocolSwitch>,
}

/// A protocol a plugin dissects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolDecl {
    pub name: String,
    pub flag: String,
    pub transport: Transport,
    pub ports: Vec<u16>,
    pub request_summary: String,
    pub response_summary: String,
}

impl ProtocolDecl {
    /// A TCP protocol with no ports and empty summaries; fill in with the builders.
    pub fn tcp(name: &str, flag: &str) -> Self {
        ProtocolDecl {
            name: name.to_owned(),
            flag: flag.to_owned(),
            transport: Transport::Tcp,
            ports: Vec::new(),
            request_summary: String::new(),
            response_summary: String::new(),
        }
    }
    pub fn udp(name: &str, flag: &str) -> Self {
        ProtocolDecl {
            transport: Transport::Udp,
            ..Self::tcp(name, flag)
        }
    }
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.ports = ports.to_vec();
        self
    }
    /// Summary templates: `{field-name}` is replaced by the field's value.
    pub fn summaries(mut self, request: &str, response: &str) -> Self {
        self.request_summary = request.to_owned();
        self.response_summary = response.to_owned();
        self
    }
}

/// Static description of a plugin, returned by `Dissector::info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub protocols: Vec<ProtocolDecl>,
    pub fields: Vec<FieldDecl>,
}

impl PluginInfo {
    pub fn new(name: &str, version: &str) -> Self {
        PluginInfo {
            name: name.to_owned(),
            version: version.to_owned(),
            protocols: Vec::new(),
            fields: Vec::new(),
        }
    }
    pub fn protocol(mut self, p: ProtocolDecl) -> Self {
        self.protocols.push(p);
        self
    }
    /// Declare a field with an explicit id (use consts: `const F_METHOD: u16 = 1;`).
    pub fn field(mut self, decl: FieldDecl) -> Self {
        self.fields.push(decl);
        self
    }
    /// Declare a field with the next free id (one more than the largest so far)
    /// and return that id too. `FieldDecl::id` of `decl` is ignored.
    pub fn add_field(&mut self, mut decl: FieldDecl) -> u16 {
        let id = self.fields.iter().map(|f| f.id + 1).max().unwrap_or(0);
        decl.id = id;
        self.fields.push(decl);
        id
    }
    /// The declaration with this filter name.
    pub fn field_named(&self, name: &str) -> Option<&FieldDecl> {
        self.fields.iter().find(|f| f.name == name)
    }
}
