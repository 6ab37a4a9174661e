use std::io;
use std::path::PathBuf;

/// Errors name the file so a message is useful without context; corrupt
/// input carries the offset so it can be inspected with a hex dump.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },

    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error("{path} is not a pcap or pcapng capture (found {found})")]
    NotACapture { path: PathBuf, found: String },

    /// `offset` counts bytes of the uncompressed stream, so for a `.gz` file it
    /// is an offset into what `zcat` prints.
    #[error("{path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}
