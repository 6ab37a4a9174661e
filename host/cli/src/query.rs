//! `remora query`: entries from a running Remora over its GraphQL API.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use remora_core::Timestamp;
use remora_entry::printable;
use serde_json::{json, Map, Value as Json};

use crate::client::{run_until_interrupted, Client, GqlError, ServerArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns (default when stdout is a terminal).
    Table,
    /// One JSON object per entry, the schema of `remora read --format jsonl`
    /// without bodies (default otherwise).
    Jsonl,
}

#[derive(Args)]
pub(crate) struct QueryArgs {
    /// CEL filter (see the filter language), e.g. 'http && status_code >= 500'.
    /// Empty: every entry.
    #[arg(value_name = "FILTER", default_value = "")]
    filter: String,

    /// Only entries newer than this, e.g. 30s, 10m, 2h, 1d.
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    since: Option<humantime::Duration>,

    /// Only entries at or after this RFC 3339 time (2026-11-25T18:00:00Z).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,

    /// Only entries before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,

    /// The newest this many matching entries, printed oldest first.
    #[arg(long, short = 'n', default_value_t = 50, value_name = "N")]
    limit: usize,

    /// After the stored entries, keep printing new matching ones as they
    /// are captured, like `tail -f`; Ctrl-C stops.
    #[arg(long, short = 'F')]
    follow: bool,

    /// Output format.
    #[arg(long, short = 'f', value_enum)]
    format: Option<Format>,

    #[command(flatten)]
    server: ServerArgs,
}

const ENTRY_FIELDS: &str =
    "id timestamp elapsedTime protocol transport flowId complete summary status \
     src { ip port name } dst { ip port name } \
     request { timestamp fields summary } response { timestamp fields summary } vars";

/// Entries per request when paging through more than one page.
const PAGE: usize = 1000;

pub(crate) fn run(args: &QueryArgs) -> Result<ExitCode> {
    let format = args.format.unwrap_or(if io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Jsonl
    });
    let client = args.server.client()?;
    let mut out = Printer::new(format);
    let result = run_until_interrupted(query_and_follow(&client, args, &mut out));
    out.flush()?;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast_ref::<GqlError>() {
            Some(GqlError {
                message,
                span: Some((start, end)),
            }) => {
                say!("remora: error: {message}");
                say!("  {}", args.filter);
                let pad: String = args.filter.chars().take(*start).map(|_| ' ').collect();
                let width = end.saturating_sub(*start).max(1);
                say!("  {pad}{}", "^".repeat(width));
                Ok(ExitCode::from(2))
            }
            _ => Err(e),
        },
    }
}

fn from_bound(args: &QueryArgs) -> Option<String> {
    if let Some(d) = args.since {
        // Longer ago than RFC 3339's year 0 is before anything a store holds:
        // no bound. (`now - d` panicked for, e.g., 99999999d.)
        let back = i64::try_from(Duration::from(d).as_micros()).unwrap_or(i64::MAX);
        let from = Timestamp(Timestamp::now().0.saturating_sub(back));
        return (from >= Timestamp::EARLIEST).then(|| remora_entry::rfc3339_micros(from));
    }
    args.from.clone()
}

async fn query_and_follow(client: &Client, args: &QueryArgs, out: &mut Printer) -> Result<()> {
    // Subscribe before reading history so nothing stored in between is
    // missed; duplicates are dropped by id.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Json>(4096);
    let follower = if args.follow {
        let sub =
            format!("subscription($f: String) {{ entries(filter: $f) {{ {ENTRY_FIELDS} }} }}");
        let vars = json!({ "f": args.filter });
        let client = args.server.client()?;
        Some(tokio::spawn(async move {
            client
                .subscribe(&sub, vars, |data| {
                    // A full channel means the printer is stuck; stop rather
                    // than buffer without bound.
                    tx.try_send(data["entries"].clone())
                        .map_err(|_| anyhow::anyhow!("output is not keeping up with the capture"))
                })
                .await
        }))
    } else {
        None
    };

    let history = fetch_history(client, args).await?;
    let mut last_id = 0u64;
    for e in history.iter().rev() {
        last_id = last_id.max(entry_id(e));
        out.entry(e)?;
    }
    out.flush()?;
    let Some(follower) = follower else {
        return Ok(());
    };
    while let Some(e) = rx.recv().await {
        if entry_id(&e) > last_id {
            last_id = entry_id(&e);
            out.entry(&e)?;
            out.flush()?;
        }
    }
    follower.await.context("subscription task failed")?
}

fn entry_id(e: &Json) -> u64 {
    e["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The newest `limit` matching entries, newest first, paging as needed.
async fn fetch_history(client: &Client, args: &QueryArgs) -> Result<Vec<Json>> {
    let q = format!(
        "query($f: String, $from: String, $to: String, $after: ID, $limit: Int!) {{ \
         entries(filter: $f, from: $from, to: $to, after: $after, limit: $limit) {{ \
         next entries {{ {ENTRY_FIELDS} }} }} }}"
    );
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    while got.len() < args.limit {
        let want = (args.limit - got.len()).min(PAGE);
        let data = client
            .query(
                &q,
                json!({ "f": args.filter, "from": from_bound(args), "to": args.to,
                        "after": after, "limit": want }),
            )
            .await?;
        let page = &data["entries"];
        if let Some(list) = page["entries"].as_array() {
            got.extend(list.iter().cloned());
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    got.truncate(args.limit);
    Ok(got)
}

struct Printer {
    format: Format,
    out: BufWriter<io::Stdout>,
    header: bool,
}

impl Printer {
    fn new(format: Format) -> Self {
        Printer {
            format,
            out: BufWriter::new(io::stdout()),
            header: false,
        }
    }

    fn flush(&mut self) -> Result<()> {
        match self.out.flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r.context("cannot write to stdout"),
        }
    }

    fn entry(&mut self, e: &Json) -> Result<()> {
        let r = match self.format {
            Format::Jsonl => writeln!(self.out, "{}", jsonl_record(e)),
            Format::Table => self.row(e),
        };
        match r {
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
            r => r.context("cannot write to stdout"),
        }
    }

    fn row(&mut self, e: &Json) -> io::Result<()> {
        if !self.header {
            self.header = true;
            writeln!(
                self.out,
                "{:>7} {:<15} {:<6} {:<45} {:<6} {:>10}  SUMMARY",
                "ID", "TIME", "PROTO", "SOURCE → DESTINATION", "STATUS", "ELAPSED"
            )?;
        }
        writeln!(self.out, "{}", table_row(e))
    }
}

/// One entry from the API as a table row; texts that come from traffic
/// (summaries, names) have their control characters blanked.
fn table_row(e: &Json) -> String {
    let text = |v: &Json, default: &'static str| v.as_str().unwrap_or(default).to_owned();
    let ts = e["timestamp"].as_str().unwrap_or("");
    let time = ts.get(11..26).unwrap_or(ts);
    let ep = |v: &Json| {
        format!(
            "{}:{}",
            text(&v["name"], "?"),
            v["port"].as_u64().unwrap_or(0)
        )
    };
    let status = e["status"]
        .as_i64()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let elapsed = match e["elapsedTime"].as_u64() {
        Some(us) if us > 0 => format!("{:.3} ms", us as f64 / 1000.0),
        _ => String::new(),
    };
    let row = format!(
        "{:>7} {:<15} {:<6} {:<45} {:<6} {:>10}  {}",
        text(&e["id"], "?"),
        time,
        text(&e["protocol"], "?"),
        format!("{} → {}", ep(&e["src"]), ep(&e["dst"])),
        status,
        elapsed,
        text(&e["summary"], "")
    );
    // Blanked one for one, so the columns keep their widths.
    printable(&row).into_owned()
}

/// The `remora read --format jsonl` record from the API's entry.
fn jsonl_record(e: &Json) -> Json {
    let ep = |v: &Json| json!({ "ip": v["ip"], "port": v["port"] });
    let msg = |m: &Json| {
        if m.is_null() {
            Json::Null
        } else {
            json!({ "timestamp": m["timestamp"], "fields": m["fields"], "body": null })
        }
    };
    let mut o = Map::new();
    o.insert("id".into(), json!(entry_id(e)));
    o.insert("timestamp".into(), e["timestamp"].clone());
    o.insert("elapsed_time".into(), e["elapsedTime"].clone());
    o.insert("protocol".into(), e["protocol"].clone());
    o.insert("transport".into(), e["transport"].clone());
    o.insert("flow_id".into(), e["flowId"].clone());
    o.insert("src".into(), ep(&e["src"]));
    o.insert("dst".into(), ep(&e["dst"]));
    o.insert("complete".into(), e["complete"].clone());
    o.insert("request".into(), msg(&e["request"]));
    o.insert("response".into(), msg(&e["response"]));
    o.insert("vars".into(), e["vars"].clone());
    Json::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_blank_the_control_characters_traffic_brings() {
        let e = json!({
            "id": "7", "timestamp": "2026-11-29T23:59:59.123456Z", "protocol": "HTTP",
            "src": { "name": "10.0.0.1", "port": 40000 },
            "dst": { "name": "web\u{1b}]0;owned\u{7}", "port": 80 },
            "status": 200, "elapsedTime": 1500,
            "summary": "GET /\u{1b}[2J\u{1b}[31mred\r\nfake row",
        });
        let row = table_row(&e);
        assert!(!row.chars().any(char::is_control), "{row:?}");
        assert!(row.contains("GET / [2J [31mred  fake row"), "{row}");
        assert!(row.contains("web ]0;owned :80"), "{row}");
    }
}
