//! Reading capture files (pcap, pcapng, optionally gzip-compressed) into frames.
//!
//! Frames borrow from the reader's buffer (lending iteration) so reading costs
//! no allocation per frame; the decoder copies nothing either.

mod compression;
mod error;
mod input;
mod link;
mod pcap;
mod pcapng;
mod sniff;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use error::SourceError;
pub use link::LinkType;
use remora_core::Timestamp;

use compression::{maybe_gunzip, Counting};
use input::Input;
use pcapng::Interface;

/// Largest record or block accepted. Real snaplens top out at 256 KiB (a few
/// link types use more); anything beyond this is a corrupt length field.
pub const MAX_RECORD_LEN: usize = 16 << 20;

/// One captured frame, borrowed from the reader until the next call.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    pub data: &'a [u8],
    /// Length on the wire; larger than `data.len()` when the snaplen cut it.
    pub wire_len: u32,
    /// Offset of the record in the uncompressed stream, for pointing at a frame.
    pub file_offset: u64,
}

enum Format {
    Pcap(pcap::PcapFormat),
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
        /// Simple packet blocks carry no timestamp; reuse the last one so time
        /// never jumps back to 1970.
        last_ts: Timestamp,
    },
}

pub struct CaptureReader {
    path: PathBuf,
    input: Input,
    format: Format,
    frames: u64,
    raw_bytes: Arc<AtomicU64>,
    total_bytes: Option<u64>,
    /// Set once the stream ended or an error was reported: later calls return None.
    done: bool,
}

impl CaptureReader {
    /// Opens a capture file; `-` reads standard input.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        if path.as_os_str() == "-" {
            return Self::open_reader(io::stdin(), Path::new("<stdin>"), None);
        }
        let open_err = |source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(io::Error::other("is a directory")));
        }
        let total = meta.is_file().then_some(meta.len());
        Self::open_reader(file, path, total)
    }

    /// Reads a capture from any byte stream; `name` is used in error messages
    /// and `total_bytes` is the stream size if known (for progress).
    pub fn open_reader(
        reader: impl Read + Send + 'static,
        name: &Path,
        total_bytes: Option<u64>,
    ) -> Result<Self, SourceError> {
        let path = name.to_path_buf();
        let raw_bytes = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: reader,
            count: raw_bytes.clone(),
        };
        let (stream, gzipped) =
            maybe_gunzip(Box::new(counted)).map_err(|source| SourceError::Io {
                path: path.clone(),
                source,
            })?;
        let mut input = Input::new(stream);
        let format = detect_format(&mut input, &path, gzipped)?;
        Ok(CaptureReader {
            path,
            input,
            format,
            frames: 0,
            raw_bytes,
            total_bytes,
            done: false,
        })
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes read from the underlying file so far (compressed bytes for gzip),
    /// comparable with [`total_bytes`](Self::total_bytes).
    pub fn bytes_consumed(&self) -> u64 {
        self.raw_bytes.load(Ordering::Relaxed)
    }

    /// Size of the file; `None` for stdin and other streams.
    pub fn total_bytes(&self) -> Option<u64> {
        self.total_bytes
    }

    /// The next frame; after the first error, always `None`.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, SourceError>> {
        if self.done {
            return None;
        }
        let found = match self.format {
            Format::Pcap(f) => self.next_pcap(f),
            Format::PcapNg { .. } => self.next_pcapng(),
        };
        match found {
            Ok(Some(raw)) => {
                self.frames += 1;
                let data = &self.input.buf()[raw.data_start..raw.data_start + raw.caplen];
                Some(Ok(Frame {
                    ts: raw.ts,
                    link: raw.link,
                    data,
                    wire_len: raw.wire_len,
                    file_offset: raw.file_offset,
                }))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn next_pcap(&mut self, f: pcap::PcapFormat) -> Result<Option<RawFrame>, SourceError> {
        const HDR: usize = pcap::RECORD_HEADER_LEN;
        if !self.input.ensure(HDR) {
            return self.end_of_stream(HDR);
        }
        let rec = pcap::parse_record_header(&self.input.available()[..HDR], &f);
        let caplen = rec.caplen as usize;
        if caplen > MAX_RECORD_LEN {
            return Err(self.corrupt(
                self.input.pos(),
                format!("record claims {caplen} captured bytes (limit {MAX_RECORD_LEN})"),
            ));
        }
        if !self.input.ensure(HDR + caplen) {
            return self.end_of_stream(HDR + caplen);
        }
        let file_offset = self.input.pos();
        let data_start = self.input.start() + HDR;
        self.input.consume(HDR + caplen);
        Ok(Some(RawFrame {
            ts: rec.ts,
            link: f.link,
            data_start,
            caplen,
            wire_len: rec.wire_len,
            file_offset,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<RawFrame>, SourceError> {
        loop {
            if !self.input.ensure(12) {
                return self.end_of_stream(12);
            }
            let offset = self.input.pos();
            let head = self.input.available();
            let Format::PcapNg { big_endian, .. } = &mut self.format else {
                unreachable!("next_pcapng on a pcap file");
            };
            if pcapng::is_shb(head) {
                match pcapng::section_big_endian(head) {
                    Some(be) => *big_endian = be,
                    None => {
                        return Err(self
                            .corrupt(offset, "section header with a bad byte-order magic".into()))
                    }
                }
            }
            let be = *big_endian;
            let btype = pcap::read_u32(&head[0..4], be);
            let blen = pcap::read_u32(&head[4..8], be) as usize;
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD_LEN {
                return Err(self.corrupt(offset, format!("invalid block length {blen}")));
            }
            if !self.input.ensure(blen) {
                return self.end_of_stream(blen);
            }
            let Format::PcapNg {
                interfaces,
                last_ts,
                ..
            } = &mut self.format
            else {
                unreachable!()
            };
            let block = &self.input.available()[..blen];
            if pcap::read_u32(&block[blen - 4..], be) as usize != blen {
                return Err(
                    self.corrupt(offset, "block trailer length does not match header".into())
                );
            }
            let body = &block[8..blen - 4];
            match btype {
                pcapng::SHB => interfaces.clear(),
                pcapng::IDB => match Interface::parse(body, be) {
                    Some(iface) => interfaces.push(iface),
                    None => {
                        return Err(
                            self.corrupt(offset, "interface description block too short".into())
                        )
                    }
                },
                _ => match pcapng::packet_ref(btype, body, be) {
                    Err(reason) => return Err(self.corrupt(offset, reason)),
                    Ok(None) => {}
                    Ok(Some(p)) => {
                        let Some(iface) = interfaces.get(p.iface as usize) else {
                            let reason = format!(
                                "packet refers to interface {} but only {} are described",
                                p.iface,
                                interfaces.len()
                            );
                            return Err(self.corrupt(offset, reason));
                        };
                        let ts = if btype == pcapng::SPB {
                            *last_ts
                        } else {
                            iface.timestamp(p.ts_hi, p.ts_lo)
                        };
                        *last_ts = ts;
                        let raw = RawFrame {
                            ts,
                            link: iface.link,
                            data_start: self.input.start() + 8 + p.data_off,
                            caplen: p.caplen,
                            wire_len: p.wire_len,
                            file_offset: offset,
                        };
                        self.input.consume(blen);
                        return Ok(Some(raw));
                    }
                },
            }
            self.input.consume(blen);
        }
    }

    /// The stream could not supply `need` bytes: a clean end only if nothing
    /// is left over and no read failed.
    fn end_of_stream(&mut self, need: usize) -> Result<Option<RawFrame>, SourceError> {
        let offset = self.input.pos();
        let have = self.input.available().len();
        if let Some(e) = self.input.take_error() {
            return Err(match e.kind() {
                io::ErrorKind::InvalidData
                | io::ErrorKind::InvalidInput
                | io::ErrorKind::UnexpectedEof => {
                    self.corrupt(offset + have as u64, format!("decompression failed: {e}"))
                }
                _ => SourceError::Io {
                    path: self.path.clone(),
                    source: e,
                },
            });
        }
        if have == 0 {
            return Ok(None);
        }
        Err(self.corrupt(
            offset,
            format!("truncated: record needs {need} bytes but the file ends after {have}"),
        ))
    }

    fn corrupt(&self, offset: u64, reason: String) -> SourceError {
        SourceError::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        }
    }
}

/// A frame located in the buffer; turned into a borrowed [`Frame`] at the end
/// of `next_frame` so the borrow does not cross the parsing loop.
struct RawFrame {
    ts: Timestamp,
    link: LinkType,
    data_start: usize,
    caplen: usize,
    wire_len: u32,
    file_offset: u64,
}

fn detect_format(input: &mut Input, path: &Path, gzipped: bool) -> Result<Format, SourceError> {
    input.ensure(pcap::FILE_HEADER_LEN);
    if let Some(e) = input.take_error() {
        return Err(if gzipped {
            SourceError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                reason: format!("decompression failed: {e}"),
            }
        } else {
            SourceError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        });
    }
    let head = input.available();
    let truncated = |what: &str| SourceError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: format!("file ends inside the {what} ({} bytes)", head.len()),
    };
    if let Some((big_endian, nanos)) = pcap::sniff(head) {
        let Some(h) = head.get(..pcap::FILE_HEADER_LEN) else {
            return Err(truncated("pcap file header"));
        };
        let h: &[u8; pcap::FILE_HEADER_LEN] = h.try_into().expect("length checked");
        let f = pcap::parse_file_header(h, big_endian, nanos);
        input.consume(pcap::FILE_HEADER_LEN);
        return Ok(Format::Pcap(f));
    }
    if pcapng::is_shb(head) {
        return match pcapng::section_big_endian(head) {
            Some(big_endian) => Ok(Format::PcapNg {
                big_endian,
                interfaces: Vec::new(),
                last_ts: Timestamp::default(),
            }),
            None if head.len() < 12 => Err(truncated("pcapng section header")),
            None => Err(SourceError::NotACapture {
                path: path.to_path_buf(),
                found: sniff::describe(&head[..head.len().min(16)], gzipped),
            }),
        };
    }
    Err(SourceError::NotACapture {
        path: path.to_path_buf(),
        found: sniff::describe(&head[..head.len().min(16)], gzipped),
    })
}
