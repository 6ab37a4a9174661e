//! On-disk layout: file headers and the framing of records.
//!
//! Every file starts with a 32-byte header: magic `REMORAST`, format version,
//! file kind, segment sequence number and the segment's base id (the first id
//! it may hold, so id numbering survives a restart even when the newest
//! segment is empty).
//!
//! A record is `len: u32 LE, crc32(payload): u32 LE, payload`. In summary
//! files the payload is a frame: a fixed 56-byte header then the entries'
//! summaries; in the catalog file it is one encoded catalog.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{io, StoreError};

pub(crate) const MAGIC: &[u8; 8] = b"REMORAST";
pub(crate) const VERSION: u32 = 1;
pub(crate) const FILE_HEADER_LEN: u64 = 32;
pub(crate) const RECORD_PREFIX_LEN: u64 = 8;
pub(crate) const FRAME_HEADER_LEN: usize = 56;
/// No record is larger; a length prefix above this is damage, not data.
pub(crate) const MAX_RECORD_LEN: u32 = 16 << 20;

/// The frame ends an `append` batch: recovery keeps whole batches only.
pub(crate) const FRAME_BATCH_END: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Summary = 1,
    Body = 2,
    Catalogs = 3,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct FileHeader {
    pub kind: FileKind,
    pub seq: u64,
    pub base_id: u64,
}

impl FileHeader {
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN as usize] {
        let mut b = [0u8; FILE_HEADER_LEN as usize];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(self.kind as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.base_id.to_le_bytes());
        b
    }

    /// Reads and checks the header of `file`, which must be of `kind`.
    pub fn read(file: &File, path: &Path, kind: FileKind) -> Result<FileHeader, StoreError> {
        let mut b = [0u8; FILE_HEADER_LEN as usize];
        let len = file.metadata().map_err(io(path))?.len();
        let n = (len as usize).min(b.len());
        file.read_exact_at(&mut b[..n], 0).map_err(io(path))?;
        if n < 8 || &b[..8] != MAGIC {
            return Err(StoreError::NotOurs {
                path: path.to_path_buf(),
                expected: String::from_utf8_lossy(MAGIC).into_owned(),
                found: String::from_utf8_lossy(&b[..n.min(8)]).into_owned(),
            });
        }
        if n < b.len() {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                offset: n as u64,
                reason: format!("file header is {n} bytes, expected {FILE_HEADER_LEN}"),
            });
        }
        let version = u32::from_le_bytes(b[8..12].try_into().unwrap());
        if version > VERSION {
            return Err(StoreError::FutureVersion {
                path: path.to_path_buf(),
                found: version,
                supported: VERSION,
            });
        }
        let found_kind = u32::from_le_bytes(b[12..16].try_into().unwrap());
        if version == 0 || found_kind != kind as u32 {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                offset: 8,
                reason: format!(
                    "header says version {version} kind {found_kind}, expected version {VERSION} kind {}",
                    kind as u32
                ),
            });
        }
        Ok(FileHeader {
            kind,
            seq: u64::from_le_bytes(b[16..24].try_into().unwrap()),
            base_id: u64::from_le_bytes(b[24..32].try_into().unwrap()),
        })
    }
}

/// The fixed part of a frame: which entries it holds, their time range and
/// where their bodies are. Kept in memory per frame as the sparse index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub flags: u8,
    pub catalog: u32,
    pub first_id: u64,
    pub count: u32,
    /// Min and max of `Entry::timestamp()` over the frame's entries; message
    /// times are stored as deltas from `min_ts`.
    pub min_ts: i64,
    pub max_ts: i64,
    /// Absolute offsets in the segment's body file.
    pub body_start: u64,
    pub body_end: u64,
}

impl FrameHeader {
    pub fn encode_into(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1..4].fill(0);
        b[4..8].copy_from_slice(&self.catalog.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_id.to_le_bytes());
        b[16..20].copy_from_slice(&self.count.to_le_bytes());
        b[20..24].fill(0);
        b[24..32].copy_from_slice(&self.min_ts.to_le_bytes());
        b[32..40].copy_from_slice(&self.max_ts.to_le_bytes());
        b[40..48].copy_from_slice(&self.body_start.to_le_bytes());
        b[48..56].copy_from_slice(&self.body_end.to_le_bytes());
    }

    pub fn decode(b: &[u8]) -> Option<FrameHeader> {
        let b = b.get(..FRAME_HEADER_LEN)?;
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        Some(FrameHeader {
            flags: b[0],
            catalog: u32::from_le_bytes(b[4..8].try_into().unwrap()),
            first_id: u64_at(8),
            count: u32::from_le_bytes(b[16..20].try_into().unwrap()),
            min_ts: u64_at(24) as i64,
            max_ts: u64_at(32) as i64,
            body_start: u64_at(40),
            body_end: u64_at(48),
        })
    }

    pub fn end_id(&self) -> u64 {
        self.first_id + u64::from(self.count)
    }
}

/// Writes the record prefix (length and CRC) in front of the payload that
/// `buf[start + 8..]` holds.
pub(crate) fn seal_record(buf: &mut [u8], start: usize) {
    let payload = &buf[start + RECORD_PREFIX_LEN as usize..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A record prefix, checked for a plausible length.
pub(crate) fn parse_prefix(b: &[u8; 8]) -> Option<(u32, u32)> {
    let len = u32::from_le_bytes(b[..4].try_into().unwrap());
    let crc = u32::from_le_bytes(b[4..].try_into().unwrap());
    (len <= MAX_RECORD_LEN).then_some((len, crc))
}
