//! The human-readable table of `remora read`.

use std::io::{self, Write};

use crate::{Catalog, Entry, Message, PluginSchema, ValueRef};

/// Fill a summary template like `"{method} {url}"` from a message's fields.
/// A placeholder whose field is absent renders as nothing.
pub fn render_summary(template: &str, schema: &PluginSchema, m: Option<&Message>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out.trim().to_owned();
        };
        let name = &rest[open + 1..open + close];
        if let Some(v) = m.and_then(|m| {
            let decl = schema.field_by_name(name)?;
            m.get(decl.id)
        }) {
            match v {
                ValueRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                ValueRef::Int(i) => out.push_str(&i.to_string()),
                ValueRef::Float(f) => out.push_str(&f.to_string()),
                ValueRef::Str(s) => out.push_str(s),
                ValueRef::Bytes(b) => out.push_str(&format!("<{} bytes>", b.len())),
                ValueRef::Pair(k, v) => out.push_str(&format!("{k}={v}")),
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// `s` with control characters (escape sequences a terminal would obey,
/// line breaks, ...) shown as spaces: what a table row prints comes from
/// captured traffic or from plugins, and must not drive the terminal.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

fn clip(s: &str, width: usize) -> String {
    let s = printable(s);
    if s.chars().count() <= width {
        s.into_owned()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Writes entries as aligned rows under a header printed once.
pub struct TableWriter<W: Write> {
    out: W,
    header_done: bool,
    summary_width: usize,
}

impl<W: Write> TableWriter<W> {
    pub fn new(out: W, terminal_width: usize) -> Self {
        // id 7, time 15, proto 6, endpoints 45, status 10, elapsed 10, spaces
        let fixed = 7 + 1 + 15 + 1 + 6 + 1 + 45 + 1 + 10 + 1 + 10 + 1;
        TableWriter {
            out,
            header_done: false,
            summary_width: terminal_width.saturating_sub(fixed).max(24),
        }
    }

    pub fn write(&mut self, catalog: &Catalog, e: &Entry) -> io::Result<()> {
        if !self.header_done {
            writeln!(
                self.out,
                "{:>7} {:<15} {:<6} {:<45} {:<w$} {:<10} {:>10}",
                "ID",
                "TIME",
                "PROTO",
                "SOURCE → DESTINATION",
                "REQUEST",
                "RESPONSE",
                "ELAPSED",
                w = self.summary_width
            )?;
            self.header_done = true;
        }
        let schema = catalog.plugin(e.plugin);
        let proto = &schema.protocols[e.protocol as usize];
        let ts = crate::rfc3339_micros(e.timestamp());
        let time = ts.get(11..26).unwrap_or(&ts);
        let req = render_summary(&proto.request_summary, schema, e.request.as_ref());
        let resp = match &e.response {
            Some(m) => render_summary(&proto.response_summary, schema, Some(m)),
            None if e.standalone => String::new(),
            None => "—".to_owned(),
        };
        let elapsed = if e.request.is_some() && e.response.is_some() {
            format!("{:.3} ms", e.elapsed_us() as f64 / 1000.0)
        } else {
            String::new()
        };
        writeln!(
            self.out,
            "{:>7} {:<15} {:<6} {:<45} {:<w$} {:<10} {:>10}",
            e.id,
            time,
            clip(&proto.name, 6),
            clip(&format!("{} → {}", e.client, e.server), 45),
            clip(&req, self.summary_width),
            clip(&resp, 10),
            elapsed,
            w = self.summary_width
        )
    }

    /// The underlying writer, for output that shares it.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
