//! One way to print alerts, whether they come from a running server
//! (`remora alerts`) or from a plugin run over a capture (`remora plugin test`).

use std::io::{self, Write};

use clap::ValueEnum;
use remora_entry::printable;
use serde_json::{json, Value as Json};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AlertFormat {
    /// Aligned columns.
    Table,
    /// One JSON object per alert: id, at, rule, source, severity, summary,
    /// entry_ids, labels.
    Jsonl,
}

/// An alert as printed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AlertRow {
    pub id: u64,
    /// RFC 3339, UTC.
    pub at: String,
    pub rule: String,
    pub source: String,
    pub severity: String,
    pub summary: String,
    pub entry_ids: Vec<u64>,
    pub labels: Vec<(String, String)>,
}

impl AlertRow {
    pub(crate) fn from_alert(a: &remora_alert::Alert) -> AlertRow {
        AlertRow {
            id: a.id,
            at: remora_entry::rfc3339_micros(a.at),
            rule: a.rule.clone(),
            source: a.source.clone(),
            severity: format!("{:?}", a.severity).to_lowercase(),
            summary: a.summary.clone(),
            entry_ids: a.entry_ids.clone(),
            labels: a.labels.clone(),
        }
    }

    /// From the GraphQL `Alert` object (ids are strings there).
    pub(crate) fn from_api(v: &Json) -> AlertRow {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let id = |x: &Json| x.as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        AlertRow {
            id: id(&v["id"]),
            at: s("at"),
            rule: s("rule"),
            source: s("source"),
            severity: s("severity"),
            summary: s("summary"),
            entry_ids: v["entryIds"]
                .as_array()
                .map(|a| a.iter().map(id).collect())
                .unwrap_or_default(),
            labels: v["labels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|l| {
                            let k = l["key"].as_str().unwrap_or_default().to_owned();
                            (k, l["value"].as_str().unwrap_or_default().to_owned())
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub(crate) fn severity_rank(&self) -> u8 {
        severity_rank(&self.severity)
    }

    /// The alert as a table row. Summaries and labels carry what traffic
    /// and plugins put there: their control characters are blanked.
    fn table_row(&self) -> String {
        let ids: Vec<String> = self.entry_ids.iter().map(u64::to_string).collect();
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let row = format!(
            "{:>4} {:<20} {:<9} {:<24} {:<10} {} [{}]",
            self.id,
            self.at.get(..19).unwrap_or(&self.at),
            self.severity,
            self.rule,
            ids.join(","),
            self.summary,
            labels.join(" ")
        );
        // Blanked one for one, so the columns keep their widths.
        printable(&row).into_owned()
    }

    fn json(&self) -> Json {
        let labels: serde_json::Map<String, Json> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        json!({
            "id": self.id, "at": self.at, "rule": self.rule, "source": self.source,
            "severity": self.severity, "summary": self.summary,
            "entry_ids": self.entry_ids, "labels": labels,
        })
    }
}

/// info < warning < critical; anything else sorts first.
pub(crate) fn severity_rank(s: &str) -> u8 {
    match s {
        "info" => 1,
        "warning" => 2,
        "critical" => 3,
        _ => 0,
    }
}

pub(crate) struct AlertPrinter<W: Write> {
    format: AlertFormat,
    out: W,
    header: bool,
}

impl<W: Write> AlertPrinter<W> {
    pub(crate) fn new(format: AlertFormat, out: W) -> Self {
        AlertPrinter {
            format,
            out,
            header: false,
        }
    }

    pub(crate) fn print(&mut self, a: &AlertRow) -> io::Result<()> {
        match self.format {
            AlertFormat::Jsonl => writeln!(self.out, "{}", a.json()),
            AlertFormat::Table => {
                if !self.header {
                    self.header = true;
                    writeln!(
                        self.out,
                        "{:>4} {:<20} {:<9} {:<24} {:<10} SUMMARY",
                        "ID", "TIME", "SEVERITY", "RULE", "ENTRIES"
                    )?;
                }
                writeln!(self.out, "{}", a.table_row())
            }
        }
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_blank_control_characters_from_rules_plugins_and_traffic() {
        let a = AlertRow {
            id: 3,
            at: "2026-11-29T23:59:59.123456Z".into(),
            rule: "5xx\u{1b}[8m".into(),
            source: "rule".into(),
            severity: "warning".into(),
            summary: "path /\u{1b}]52;c;cGF5bG9hZA==\u{7} failed\r\nfake".into(),
            entry_ids: vec![1, 2],
            labels: vec![("path".into(), "/x\u{9b}2J".into())],
        };
        let row = a.table_row();
        assert!(!row.chars().any(char::is_control), "{row:?}");
        assert!(row.contains("failed  fake"), "{row}");
        assert!(row.contains("path=/x 2J"), "{row}");
    }
}
