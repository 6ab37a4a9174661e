//! One segment: a summary file (frames of entry summaries) and a body file
//! (raw body bytes), with the in-memory sparse index rebuilt on open.
//!
//! Writes happen only at the end of the files, at the lengths the index
//! records; readers read only frames the index lists, so a reader never sees
//! a half-written frame and needs no lock while it reads the file.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::error::{io, StoreError};
use crate::wire::{
    parse_prefix, FileHeader, FileKind, FrameHeader, FILE_HEADER_LEN, FRAME_BATCH_END,
    FRAME_HEADER_LEN, RECORD_PREFIX_LEN,
};

/// Where a frame is and what it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameRef {
    /// Offset of the record prefix in the summary file.
    pub offset: u64,
    /// Payload length (frame header + summaries).
    pub len: u32,
    pub header: FrameHeader,
}

#[derive(Debug, Default)]
pub(crate) struct SegmentIndex {
    pub frames: Vec<FrameRef>,
    pub sum_len: u64,
    pub body_len: u64,
    pub entries: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

impl SegmentIndex {
    pub fn bytes(&self) -> u64 {
        self.sum_len + self.body_len
    }

    /// First id and one past the last id held; `None` when empty.
    pub fn id_range(&self) -> Option<(u64, u64)> {
        Some((
            self.frames.first()?.header.first_id,
            self.frames.last()?.header.end_id(),
        ))
    }

    pub fn push(&mut self, f: FrameRef) {
        if self.frames.is_empty() {
            self.min_ts = f.header.min_ts;
            self.max_ts = f.header.max_ts;
        } else {
            self.min_ts = self.min_ts.min(f.header.min_ts);
            self.max_ts = self.max_ts.max(f.header.max_ts);
        }
        self.entries += u64::from(f.header.count);
        self.sum_len = f.offset + RECORD_PREFIX_LEN + u64::from(f.len);
        self.body_len = f.header.body_end;
        self.frames.push(f);
    }
}

pub(crate) struct Segment {
    pub seq: u64,
    pub base_id: u64,
    pub sum_path: PathBuf,
    pub body_path: PathBuf,
    sum: File,
    body: File,
    pub index: RwLock<SegmentIndex>,
}

/// What opening a segment found beyond its last whole batch.
pub(crate) struct SegmentRecovery {
    pub torn_bytes: u64,
}

pub(crate) fn segment_paths(dir: &Path, seq: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("seg-{seq:016x}.sum")),
        dir.join(format!("seg-{seq:016x}.body")),
    )
}

/// The sequence number in a summary file's name, if it is one of ours.
pub(crate) fn parse_summary_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".sum")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

fn open_rw(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))
}

pub(crate) fn create_file(path: &Path, header: FileHeader) -> Result<File, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all_at(&header.encode(), 0).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(f)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Segment {
    pub fn create(dir: &Path, seq: u64, base_id: u64) -> Result<Segment, StoreError> {
        let (sum_path, body_path) = segment_paths(dir, seq);
        // The body file first: a summary file without its body file is
        // damage, a lone body file is an interrupted creation.
        let body = create_file(
            &body_path,
            FileHeader {
                kind: FileKind::Body,
                seq,
                base_id,
            },
        )?;
        let sum = create_file(
            &sum_path,
            FileHeader {
                kind: FileKind::Summary,
                seq,
                base_id,
            },
        )?;
        sync_dir(dir)?;
        Ok(Segment {
            seq,
            base_id,
            sum_path,
            body_path,
            sum,
            body,
            index: RwLock::new(SegmentIndex {
                sum_len: FILE_HEADER_LEN,
                body_len: FILE_HEADER_LEN,
                ..SegmentIndex::default()
            }),
        })
    }

    /// Opens a segment and rebuilds its index, cutting everything after the
    /// last complete, checksummed batch.
    pub fn open(
        dir: &Path,
        seq: u64,
        catalogs: u32,
    ) -> Result<(Segment, SegmentRecovery), StoreError> {
        let (sum_path, body_path) = segment_paths(dir, seq);
        if !body_path.exists() {
            return Err(StoreError::Corrupt {
                path: body_path,
                offset: 0,
                reason: format!("body file is missing for {}", sum_path.display()),
            });
        }
        let sum = open_rw(&sum_path)?;
        let body = open_rw(&body_path)?;
        let sh = FileHeader::read(&sum, &sum_path, FileKind::Summary)?;
        let bh = FileHeader::read(&body, &body_path, FileKind::Body)?;
        if sh.seq != seq || bh.seq != seq || bh.base_id != sh.base_id {
            return Err(StoreError::Corrupt {
                path: sum_path,
                offset: 16,
                reason: format!(
                    "headers disagree: file name says segment {seq}, summary header {}/{}, body header {}/{}",
                    sh.seq, sh.base_id, bh.seq, bh.base_id
                ),
            });
        }
        let sum_file_len = sum.metadata().map_err(io(&sum_path))?.len();
        let body_file_len = body.metadata().map_err(io(&body_path))?.len();

        let mut index = SegmentIndex {
            sum_len: FILE_HEADER_LEN,
            body_len: FILE_HEADER_LEN,
            ..SegmentIndex::default()
        };
        let mut pending: Vec<FrameRef> = Vec::new();
        let mut reader = BufReader::with_capacity(1 << 20, &sum);
        reader
            .seek(SeekFrom::Start(FILE_HEADER_LEN))
            .map_err(io(&sum_path))?;
        let mut pos = FILE_HEADER_LEN;
        let mut next_id = sh.base_id;
        let mut body_pos = FILE_HEADER_LEN;
        let mut payload = Vec::new();
        let stop_reason = loop {
            let mut prefix = [0u8; 8];
            match read_full(&mut reader, &mut prefix) {
                Ok(0) => break None,
                Ok(8) => {}
                Ok(_) => break Some("record prefix cut short"),
                Err(e) => return Err(io(&sum_path)(e)),
            }
            let Some((len, crc)) = parse_prefix(&prefix) else {
                break Some("record length over the limit");
            };
            payload.resize(len as usize, 0);
            match read_full(&mut reader, &mut payload) {
                Ok(n) if n == payload.len() => {}
                Ok(_) => break Some("record cut short"),
                Err(e) => return Err(io(&sum_path)(e)),
            }
            if crc32fast::hash(&payload) != crc {
                break Some("checksum mismatch");
            }
            let Some(h) = FrameHeader::decode(&payload) else {
                break Some("frame shorter than its header");
            };
            if h.first_id != next_id
                || h.count == 0
                || h.body_start != body_pos
                || h.body_end < h.body_start
                || h.body_end > body_file_len
                || h.catalog >= catalogs
                || h.min_ts > h.max_ts
            {
                break Some("frame header inconsistent with the frames before it");
            }
            pending.push(FrameRef {
                offset: pos,
                len,
                header: h,
            });
            pos += RECORD_PREFIX_LEN + u64::from(len);
            next_id = h.end_id();
            body_pos = h.body_end;
            if h.flags & FRAME_BATCH_END != 0 {
                for f in pending.drain(..) {
                    index.push(f);
                }
            }
        };
        drop(reader);
        let torn_bytes =
            (sum_file_len - index.sum_len) + body_file_len.saturating_sub(index.body_len);
        if torn_bytes > 0 {
            tracing::warn!(
                path = %sum_path.display(),
                offset = index.sum_len,
                torn_bytes,
                partial_batch_frames = pending.len(),
                reason = stop_reason.unwrap_or("incomplete batch"),
                "cutting a torn tail after the last complete batch"
            );
            sum.set_len(index.sum_len).map_err(io(&sum_path))?;
            body.set_len(index.body_len).map_err(io(&body_path))?;
            sum.sync_all().map_err(io(&sum_path))?;
            body.sync_all().map_err(io(&body_path))?;
        }
        Ok((
            Segment {
                seq,
                base_id: sh.base_id,
                sum_path,
                body_path,
                sum,
                body,
                index: RwLock::new(index),
            },
            SegmentRecovery { torn_bytes },
        ))
    }

    /// Writes a batch at the end of both files and makes it durable when
    /// `sync` is set. Bodies are durable before the summaries that point at
    /// them, so a surviving frame never references lost body bytes.
    pub fn write_batch(
        &self,
        sum_at: u64,
        summaries: &[u8],
        body_at: u64,
        bodies: &[u8],
        sync: bool,
    ) -> Result<(), StoreError> {
        if !bodies.is_empty() {
            self.body
                .write_all_at(bodies, body_at)
                .map_err(io(&self.body_path))?;
            if sync {
                self.body.sync_data().map_err(io(&self.body_path))?;
            }
        }
        self.sum
            .write_all_at(summaries, sum_at)
            .map_err(io(&self.sum_path))?;
        if sync {
            self.sum.sync_data().map_err(io(&self.sum_path))?;
        }
        Ok(())
    }

    /// Drops bytes a failed write may have left past the indexed end.
    pub fn truncate_to(&self, sum_len: u64, body_len: u64) -> Result<(), StoreError> {
        self.sum.set_len(sum_len).map_err(io(&self.sum_path))?;
        self.body.set_len(body_len).map_err(io(&self.body_path))
    }

    /// Reads a frame's payload into `buf`, checking its CRC.
    pub fn read_frame<'b>(
        &self,
        f: &FrameRef,
        buf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], StoreError> {
        let total = RECORD_PREFIX_LEN as usize + f.len as usize;
        buf.resize(total, 0);
        self.sum
            .read_exact_at(buf, f.offset)
            .map_err(io(&self.sum_path))?;
        let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
        let payload = &buf[RECORD_PREFIX_LEN as usize..];
        if crc32fast::hash(payload) != crc || payload.len() < FRAME_HEADER_LEN {
            return Err(StoreError::Corrupt {
                path: self.sum_path.clone(),
                offset: f.offset,
                reason: "frame checksum mismatch on read".into(),
            });
        }
        Ok(payload)
    }

    /// Reads the bytes of all bodies of a frame.
    pub fn read_bodies(&self, f: &FrameRef, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        let len = (f.header.body_end - f.header.body_start) as usize;
        buf.resize(len, 0);
        self.body
            .read_exact_at(buf, f.header.body_start)
            .map_err(io(&self.body_path))
    }

    pub fn remove_files(&self) -> Result<(), StoreError> {
        std::fs::remove_file(&self.sum_path).map_err(io(&self.sum_path))?;
        std::fs::remove_file(&self.body_path).map_err(io(&self.body_path))
    }
}

/// Like `read_exact`, but reports how much was read before end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
