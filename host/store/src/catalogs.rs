//! The catalog log: every distinct plugin catalog entries were written with,
//! stored once and numbered in order, so entries stay readable after the
//! plugin set changes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use remora_entry::Catalog;

use crate::codec::{decode_catalog, encode_catalog};
use crate::error::{io, StoreError};
use crate::segment::create_file;
use crate::wire::{
    parse_prefix, seal_record, FileHeader, FileKind, FILE_HEADER_LEN, MAX_RECORD_LEN,
    RECORD_PREFIX_LEN,
};

pub(crate) struct CatalogLog {
    path: PathBuf,
    file: File,
    len: u64,
    /// Encoded catalog -> its number: identical content is stored once.
    by_content: HashMap<Vec<u8>, u32>,
    /// The catalog last appended with, so a batch from the same `Arc` skips
    /// re-encoding.
    last: Option<(Arc<Catalog>, u32)>,
}

impl CatalogLog {
    /// Opens or creates the log; returns it with every catalog in number
    /// order and the torn bytes cut from its tail.
    pub fn open(dir: &Path) -> Result<(CatalogLog, Vec<Arc<Catalog>>, u64), StoreError> {
        let path = dir.join("catalogs.rmc");
        let header = FileHeader {
            kind: FileKind::Catalogs,
            seq: 0,
            base_id: 0,
        };
        let file = if path.exists() {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io(&path))?
        } else {
            let f = create_file(&path, header)?;
            crate::segment::sync_dir(dir)?;
            f
        };
        FileHeader::read(&file, &path, FileKind::Catalogs)?;
        let file_len = file.metadata().map_err(io(&path))?.len();
        let mut catalogs = Vec::new();
        let mut by_content = HashMap::new();
        let mut reader = BufReader::new(&file);
        reader
            .seek(SeekFrom::Start(FILE_HEADER_LEN))
            .map_err(io(&path))?;
        let mut pos = FILE_HEADER_LEN;
        loop {
            let mut prefix = [0u8; 8];
            if reader.read_exact(&mut prefix).is_err() {
                break;
            }
            let Some((len, crc)) = parse_prefix(&prefix) else {
                break;
            };
            let mut payload = vec![0u8; len as usize];
            if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
                break;
            }
            let catalog = decode_catalog(&payload).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                offset: pos + RECORD_PREFIX_LEN + e.pos as u64,
                reason: e.reason.to_string(),
            })?;
            by_content.insert(payload, catalogs.len() as u32);
            catalogs.push(Arc::new(catalog));
            pos += RECORD_PREFIX_LEN + u64::from(len);
        }
        drop(reader);
        let torn = file_len - pos;
        if torn > 0 {
            tracing::warn!(path = %path.display(), offset = pos, torn_bytes = torn, "cutting a torn tail of the catalog log");
            file.set_len(pos).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        Ok((
            CatalogLog {
                path,
                file,
                len: pos,
                by_content,
                last: None,
            },
            catalogs,
            torn,
        ))
    }

    /// The number of `catalog`, appending it durably first when it is new.
    /// The returned flag says whether it was new.
    pub fn number_of(&mut self, catalog: &Arc<Catalog>) -> Result<(u32, bool), StoreError> {
        if let Some((c, n)) = &self.last {
            if Arc::ptr_eq(c, catalog) {
                return Ok((*n, false));
            }
        }
        let encoded = encode_catalog(catalog);
        let (n, new) = match self.by_content.get(&encoded) {
            Some(&n) => (n, false),
            None => {
                if encoded.len() > MAX_RECORD_LEN as usize {
                    return Err(StoreError::Config(format!(
                        "catalog encodes to {} bytes, over the {MAX_RECORD_LEN}-byte record limit",
                        encoded.len()
                    )));
                }
                let mut rec = vec![0u8; RECORD_PREFIX_LEN as usize];
                rec.extend_from_slice(&encoded);
                seal_record(&mut rec, 0);
                if let Err(e) = self
                    .file
                    .write_all_at(&rec, self.len)
                    .and_then(|()| self.file.sync_data())
                {
                    let _ = self.file.set_len(self.len);
                    return Err(io(&self.path)(e));
                }
                self.len += rec.len() as u64;
                let n = self.by_content.len() as u32;
                self.by_content.insert(encoded, n);
                (n, true)
            }
        };
        self.last = Some((catalog.clone(), n));
        Ok((n, new))
    }
}
