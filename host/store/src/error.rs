//! Everything that can go wrong opening, writing or reading a store.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path} is not usable: {source}")]
    DirNotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {path} is in use by another process (lock file is held)")]
    Locked { path: PathBuf },
    #[error("{path}: I/O error: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Remora store file (expected magic {expected:?}, found {found:?})")]
    NotOurs {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path} has format version {found}, newer than this build supports ({supported}); upgrade Remora or use another --data-dir")]
    FutureVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: corrupt at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("batch of {bytes} bytes exceeds the largest allowed batch ({limit} bytes, half of the store's size limit)")]
    BatchTooLarge { bytes: u64, limit: u64 },
    #[error("entry {index} of the batch encodes to {bytes} summary bytes, over the {limit}-byte record limit")]
    EntryTooLarge {
        index: usize,
        bytes: u64,
        limit: u64,
    },
    #[error("entry {index} of the batch names plugin {plugin} protocol {protocol}, which the catalog does not have")]
    UnknownProtocol {
        index: usize,
        plugin: u16,
        protocol: u16,
    },
    #[error("store refuses writes after a failed write could not be rolled back: {0}")]
    Poisoned(String),
    #[error("invalid store configuration: {0}")]
    Config(String),
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
