//! A plugin's stderr (where Rust std prints panic messages): forwarded to
//! `tracing` line by line within the plugin's log rate, and the last lines
//! kept so a trap can quote them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::log_budget::{LogBudget, MAX_LINE};

const KEEP_LINES: usize = 4;

#[derive(Default)]
struct Buf {
    partial: Vec<u8>,
    last: VecDeque<String>,
    /// Lines forwarded to the host's log; the tail above keeps them all.
    budget: LogBudget,
}

/// Shared between the WASI context and the host, which reads the tail after a trap.
#[derive(Clone)]
pub(crate) struct TracingStderr {
    plugin: Arc<str>,
    buf: Arc<Mutex<Buf>>,
}

impl TracingStderr {
    pub(crate) fn new(plugin: &str) -> Self {
        TracingStderr {
            plugin: plugin.into(),
            buf: Arc::default(),
        }
    }

    /// The last lines written (including an unterminated one), joined by " | ".
    pub(crate) fn tail(&self) -> Option<String> {
        let b = self.buf.lock().ok()?;
        let mut lines: Vec<String> = b.last.iter().cloned().collect();
        if !b.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&b.partial).into_owned());
        }
        (!lines.is_empty()).then(|| lines.join(" | "))
    }

    fn write(&self, bytes: &[u8]) {
        let Ok(mut b) = self.buf.lock() else { return };
        for &c in bytes {
            if c == b'\n' {
                let line = String::from_utf8_lossy(&b.partial).into_owned();
                b.partial.clear();
                if line.trim().is_empty() {
                    continue;
                }
                if b.budget.pass(&self.plugin, "stderr") {
                    tracing::warn!(plugin = %self.plugin, "stderr: {line}");
                }
                if b.last.len() == KEEP_LINES {
                    b.last.pop_front();
                }
                b.last.push_back(line);
            } else if b.partial.len() < MAX_LINE {
                b.partial.push(c);
            }
        }
    }
}

impl IsTerminal for TracingStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TracingStderr {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Stream(self.clone()))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp2 is linked; this is never used.
        Box::new(tokio::io::sink())
    }
}

struct Stream(TracingStderr);

#[wasmtime_wasi::async_trait]
impl Pollable for Stream {
    async fn ready(&mut self) {}
}

impl OutputStream for Stream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}
