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

    #[error(
        "no capture interface named {interface:?}; available: {}",
        if available.is_empty() { "none found".to_string() } else { available.join(", ") }
    )]
    NoSuchInterface {
        interface: String,
        available: Vec<String>,
    },

    /// libpcap refused for lack of privileges; the message says which
    /// capabilities are needed and how to grant them.
    #[error(
        "not permitted to capture on {interface} (libpcap: {message}): capturing needs \
         CAP_NET_RAW, and CAP_NET_ADMIN for promiscuous mode and the kernel buffer size; \
         run as root or grant them with `sudo setcap cap_net_raw,cap_net_admin=eip {program}`"
    )]
    Permission {
        interface: String,
        message: String,
        program: String,
    },

    #[error("bad capture filter {expr:?}: {message}")]
    BadFilter { expr: String, message: String },

    #[error("invalid live capture setting: {0}")]
    LiveConfig(String),

    #[error("live capture on {interface} failed: {message}")]
    Live { interface: String, message: String },
}
