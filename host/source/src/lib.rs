//! Reading capture files (pcap, pcapng, optionally gzip-compressed) and live
//! interfaces (libpcap, [`LiveCapture`]) into frames; both are a
//! [`FrameSource`].
//!
//! pcap-parser does the parsing: its parsers read file headers, records and
//! blocks (sections, interfaces, enhanced and simple packets) from a buffer
//! filled from the possibly gzip-decompressing stream, which flate2
//! provides. The buffer is ours (`chunk`): pcap-parser's streaming readers
//! own theirs, and a frame read into it could not leave the reading thread
//! without a copy.
//!
//! Hand-written, and why:
//! - format sniffing and the "not a capture" descriptions (`sniff`), so the
//!   error says what the file is instead of "header not recognized";
//! - gzip detection (two magic bytes) and the byte counter for progress;
//! - framing checks before each record reaches pcap-parser: record and block
//!   lengths against [`MAX_RECORD_LEN`] (pcap-parser would grow its buffer to
//!   whatever a corrupt length says), pcapng trailers, and naming the reason
//!   for a block pcap-parser will not parse (a packet block whose captured
//!   length overruns it is "incomplete" forever to pcap-parser);
//! - the stream offset of every record, for exact `Corrupt { offset }`;
//! - pcapng timestamp scaling per interface (if_tsresol, and if_tsoffset,
//!   which pcap-parser reads little-endian only) and the obsolete packet
//!   block (type 2), which pcap-parser does not know.
//!
//! Frames borrow from that buffer (lending iteration): a record is only
//! consumed when the next one is asked for, so reading costs no copy and no
//! allocation per frame; the decoder copies nothing either. A frame also
//! names the reference-counted [`Chunk`] it lies in, which a consumer on
//! another thread can hold instead of copying the bytes.

mod chunk;
mod compression;
mod error;
mod frame_source;
mod input;
mod link;
mod live;
mod pcap;
mod pcapng;
mod sniff;
mod write;

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use chunk::Chunk;
pub use error::SourceError;
pub use frame_source::{FrameSource, Next, SourceStats};
pub use link::LinkType;
pub use live::{interface_names, LiveCapture, LiveConfig};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{parse_sectionheaderblock, Block, PcapBlockOwned, PcapError};
use remora_core::Timestamp;
pub use write::PcapWriter;

use chunk::{ChunkReader, Records};
use compression::{maybe_gunzip, Counting};
use input::{read_up_to, Stashing};
use pcapng::{Framing, Interface};

/// Largest record or block accepted. Real snaplens top out at 256 KiB (a few
/// link types use more); anything beyond this is a corrupt length field.
pub const MAX_RECORD_LEN: usize = 16 << 20;

/// Most interfaces one pcapng section may describe. Each is kept until the
/// next section, so without a bound a stream of description blocks (20
/// bytes each) grew memory with the input; real captures describe a few.
pub const MAX_INTERFACES: usize = 65_536;

/// The read buffer's chunk size (zero-filled on creation). 64 KiB measured
/// ~1.5x slower than 256 KiB. It grows, as data arrives, for records that
/// do not fit.
const INITIAL_BUF: usize = 256 << 10;

/// One captured frame, borrowed from the reader until the next call.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    pub data: &'a [u8],
    /// The shared buffer `data` lies in, when there is one (files): a
    /// consumer on another thread can hold it instead of copying `data`.
    pub chunk: Option<&'a Chunk>,
    /// Length on the wire; larger than `data.len()` when the snaplen cut it.
    pub wire_len: u32,
    /// Offset of the record in the uncompressed stream, for pointing at a
    /// frame; for a live capture, the frame's number (from 0).
    pub file_offset: u64,
}

/// The stream the chunks are read from: the bytes already read for
/// sniffing, then the rest.
type Stream = io::Chain<Cursor<Vec<u8>>, Stashing>;

enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        link: LinkType,
    },
    PcapNg {
        /// Byte order of the current section (for the framing checks).
        big_endian: bool,
        interfaces: Vec<Interface>,
        /// Simple packet blocks carry no timestamp; reuse the last one so time
        /// never jumps back to 1970.
        last_ts: Timestamp,
    },
}

pub struct CaptureReader {
    path: PathBuf,
    /// `path` for messages, made once.
    name: String,
    /// `None` when the pcapng section header could not be handed over; the
    /// reason is in `failed`.
    reader: Option<ChunkReader>,
    format: Format,
    /// The read error behind a `PcapError::ReadError`.
    read_error: Arc<Mutex<Option<io::Error>>>,
    /// Capacity of pcap-parser's buffer (it does not tell).
    capacity: usize,
    /// Stream offset of the first byte of `reader.data()`.
    offset: u64,
    /// Bytes of the last frame's record, consumed at the next call so the
    /// frame could borrow them.
    pending: usize,
    frames: u64,
    /// Captured bytes of the frames returned.
    frame_bytes: u64,
    raw_bytes: Arc<AtomicU64>,
    total_bytes: Option<u64>,
    /// An error found while opening, reported by the first `next_frame`.
    failed: Option<SourceError>,
    /// Set once the stream ended or an error was reported: later calls return None.
    done: bool,
}

/// A frame located in pcap-parser's buffer; turned into a borrowed [`Frame`]
/// at the end of `next_frame` so the borrow does not cross the parsing loop.
struct RawFrame {
    ts: Timestamp,
    link: LinkType,
    data_start: usize,
    caplen: usize,
    wire_len: u32,
    file_offset: u64,
    record_len: usize,
}

/// A pcap-parser error, without the borrow of its buffer.
enum Stop {
    Eof,
    /// More bytes needed (incomplete, or the buffer is too small for them).
    NeedMore,
    UnexpectedEof,
    ReadError,
    Parse(String),
}

impl From<PcapError<&[u8]>> for Stop {
    fn from(e: PcapError<&[u8]>) -> Self {
        match e {
            PcapError::Eof => Stop::Eof,
            PcapError::Incomplete(_) | PcapError::BufferTooSmall => Stop::NeedMore,
            PcapError::UnexpectedEof => Stop::UnexpectedEof,
            PcapError::ReadError => Stop::ReadError,
            PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
                Stop::Parse(format!("{kind:?}"))
            }
            PcapError::HeaderNotRecognized => Stop::Parse("header not recognized".into()),
        }
    }
}

/// What to do after the reader stopped short of a record.
enum AfterStop {
    Retry,
    End,
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
        let read_error = Arc::new(Mutex::new(None));
        let mut stream = Stashing {
            inner: stream,
            error: read_error.clone(),
        };
        let mut r = CaptureReader {
            name: path.display().to_string(),
            path,
            reader: None,
            format: Format::Pcap {
                big_endian: false,
                nanos: false,
                link: LinkType::Other(0),
            },
            read_error,
            capacity: INITIAL_BUF,
            offset: 0,
            pending: 0,
            frames: 0,
            frame_bytes: 0,
            raw_bytes,
            total_bytes,
            failed: None,
            done: false,
        };

        // Sniff the format on the first bytes, then hand them to pcap-parser
        // ahead of the rest of the stream.
        let mut head = Vec::with_capacity(pcap::FILE_HEADER_LEN);
        let sniffed = read_up_to(&mut stream, &mut head, pcap::FILE_HEADER_LEN);
        if let Err(e) = sniffed {
            return Err(r.open_read_error(e, gzipped));
        }
        let truncated = |r: &CaptureReader, what: &str, len: usize| SourceError::Corrupt {
            path: r.path.clone(),
            offset: 0,
            reason: format!("file ends inside the {what} ({len} bytes)"),
        };
        if let Some(big_endian) = pcap::sniff(&head) {
            if head.len() < pcap::FILE_HEADER_LEN {
                return Err(truncated(&r, "pcap file header", head.len()));
            }
            let source: Stream = Cursor::new(head).chain(stream);
            let records = Records::Pcap { big_endian };
            let mut reader = ChunkReader::new(r.capacity, Box::new(source), records)
                .map_err(|e| r.corrupt(0, format!("pcap file header not accepted: {e}")))?;
            match reader.next() {
                Ok((len, PcapBlockOwned::LegacyHeader(h))) => {
                    r.format = Format::Pcap {
                        big_endian,
                        nanos: h.is_nanosecond_precision(),
                        // Bits 16..31 carry FCS information in newer files.
                        link: LinkType::from_dlt(h.network.0 as u32 & 0xffff),
                    };
                    r.pending = len;
                }
                _ => return Err(r.corrupt(0, "pcap file header not accepted".into())),
            }
            r.reader = Some(reader);
            return Ok(r);
        }
        if pcapng::is_shb(&head) {
            let Some(big_endian) = pcapng::section_big_endian(&head) else {
                if head.len() < 12 {
                    return Err(truncated(&r, "pcapng section header", head.len()));
                }
                return Err(SourceError::NotACapture {
                    path: r.path.clone(),
                    found: sniff::describe(&head[..head.len().min(16)], gzipped),
                });
            };
            r.format = Format::PcapNg {
                big_endian,
                interfaces: Vec::new(),
                last_ts: Timestamp::default(),
            };
            // PcapNGReader parses the whole section header on creation.
            match r.first_section(head, stream) {
                Ok(reader) => r.reader = Some(reader),
                Err(e) => r.failed = Some(e),
            }
            return Ok(r);
        }
        Err(SourceError::NotACapture {
            path: r.path.clone(),
            found: sniff::describe(&head[..head.len().min(16)], gzipped),
        })
    }

    /// Reads the rest of the first section header block and starts
    /// pcap-parser's reader on it.
    fn first_section(
        &mut self,
        mut head: Vec<u8>,
        mut stream: Stashing,
    ) -> Result<ChunkReader, SourceError> {
        let Format::PcapNg { big_endian, .. } = self.format else {
            unreachable!("first_section on a pcap file");
        };
        let need = match pcapng::framing(&head, big_endian) {
            Framing::Corrupt(reason) => return Err(self.corrupt(0, reason)),
            Framing::Short { need } | Framing::Block { len: need, .. } => need,
        };
        if let Err(e) = read_up_to(&mut stream, &mut head, need) {
            self.stash(e);
            return Err(self.read_failure(head.len()));
        }
        if head.len() < need {
            return Err(self.truncated(need, head.len()));
        }
        if let Framing::Corrupt(reason) = pcapng::framing(&head, big_endian) {
            return Err(self.corrupt(0, reason));
        }
        self.capacity = self.capacity.max(need + 1);
        let source: Stream = Cursor::new(head).chain(stream);
        let records = Records::PcapNg { big_endian: false };
        let reader = ChunkReader::new(self.capacity, Box::new(source), records)
            .map_err(|e| self.corrupt(0, format!("malformed section header block: {e}")))?;
        // What pcap-parser checks before it reads any block.
        if let Err(e) = parse_sectionheaderblock(reader.data()) {
            use pcap_parser::nom::{Err as NomErr, Needed};
            let e = match e {
                NomErr::Error(e) | NomErr::Failure(e) => e,
                NomErr::Incomplete(Needed::Size(n)) => PcapError::Incomplete(n.into()),
                NomErr::Incomplete(Needed::Unknown) => PcapError::Incomplete(0),
            };
            return Err(self.corrupt(0, format!("malformed section header block: {e}")));
        }
        Ok(reader)
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Captured bytes of the frames returned so far.
    pub fn frame_bytes(&self) -> u64 {
        self.frame_bytes
    }

    /// The file name, or `<stdin>`.
    pub fn display_name(&self) -> &str {
        &self.name
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
        if let Some(e) = self.failed.take() {
            self.done = true;
            return Some(Err(e));
        }
        let found = match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::PcapNg { .. } => self.next_pcapng(),
        };
        match found {
            Ok(Some(raw)) => {
                self.frames += 1;
                self.frame_bytes += raw.caplen as u64;
                self.pending = raw.record_len;
                let reader = self.reader.as_ref().expect("reader present");
                let data = &reader.data()[raw.data_start..raw.data_start + raw.caplen];
                Some(Ok(Frame {
                    ts: raw.ts,
                    link: raw.link,
                    data,
                    chunk: Some(reader.chunk()),
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

    /// Consumes the record the last frame borrowed from.
    #[inline]
    fn consume_pending(&mut self) {
        if self.pending > 0 {
            let reader = self.reader.as_mut().expect("reader present");
            // No shift here: refill() shifts, moving only a partial record.
            reader.consume_noshift(self.pending);
            self.offset += self.pending as u64;
            self.pending = 0;
        }
    }

    fn next_pcap(&mut self) -> Result<Option<RawFrame>, SourceError> {
        const HDR: usize = pcap::RECORD_HEADER_LEN;
        let Format::Pcap {
            big_endian,
            nanos,
            link,
        } = self.format
        else {
            unreachable!("next_pcap on a pcapng file");
        };
        loop {
            self.consume_pending();
            let reader = self.reader.as_mut().expect("reader present");
            let head = reader.data();
            let need = match head.get(8..12) {
                Some(c) => {
                    let caplen = pcap::read_u32(c, big_endian) as usize;
                    if caplen > MAX_RECORD_LEN {
                        return Err(self.corrupt(
                            self.offset,
                            format!(
                                "record claims {caplen} captured bytes (limit {MAX_RECORD_LEN})"
                            ),
                        ));
                    }
                    HDR + caplen
                }
                None => HDR,
            };
            let base = head.as_ptr() as usize;
            let stop = match reader.next() {
                Ok((len, PcapBlockOwned::Legacy(b))) => {
                    let micros = if nanos { b.ts_usec / 1000 } else { b.ts_usec };
                    return Ok(Some(RawFrame {
                        ts: Timestamp::from_secs_frac(b.ts_sec as i64, micros as i64),
                        link,
                        data_start: b.data.as_ptr() as usize - base,
                        caplen: b.data.len(),
                        wire_len: b.origlen,
                        file_offset: self.offset,
                        record_len: len,
                    }));
                }
                Ok((len, _)) => {
                    self.pending = len;
                    continue;
                }
                Err(e) => Stop::from(e),
            };
            match self.after_stop(stop, need, None)? {
                AfterStop::Retry => {}
                AfterStop::End => return Ok(None),
            }
        }
    }

    fn next_pcapng(&mut self) -> Result<Option<RawFrame>, SourceError> {
        loop {
            self.consume_pending();
            let Format::PcapNg {
                big_endian,
                interfaces,
                last_ts,
            } = &mut self.format
            else {
                unreachable!("next_pcapng on a pcap file");
            };
            let reader = self.reader.as_mut().expect("reader present");
            let head = reader.data();
            let (need, block) = match pcapng::framing(head, *big_endian) {
                Framing::Short { need } => (need, None),
                Framing::Block { btype, len, be } => (len, Some((btype, be))),
                Framing::Corrupt(reason) => return Err(self.corrupt(self.offset, reason)),
            };
            let base = head.as_ptr() as usize;
            let offset = self.offset;
            let stop = match reader.next() {
                Ok((len, PcapBlockOwned::NG(b))) => {
                    let packet = match b {
                        Block::SectionHeader(shb) => {
                            *big_endian = shb.big_endian();
                            interfaces.clear();
                            None
                        }
                        Block::InterfaceDescription(idb) => {
                            if interfaces.len() == MAX_INTERFACES {
                                let reason = format!(
                                    "more than {MAX_INTERFACES} interfaces described in one section"
                                );
                                return Err(self.corrupt(offset, reason));
                            }
                            interfaces.push(Interface::from_idb(&idb, *big_endian));
                            None
                        }
                        Block::EnhancedPacket(epb) => Some((
                            epb.if_id,
                            Some((epb.ts_high, epb.ts_low)),
                            epb.data.as_ptr() as usize - base,
                            (epb.caplen as usize).min(epb.data.len()),
                            epb.origlen,
                        )),
                        Block::SimplePacket(spb) => Some((
                            0,
                            None,
                            spb.data.as_ptr() as usize - base,
                            (spb.origlen as usize).min(spb.data.len()),
                            spb.origlen,
                        )),
                        Block::Unknown(u)
                            if block.is_some_and(|(t, _)| t == pcapng::OBSOLETE_PB) =>
                        {
                            let p = match pcapng::obsolete_packet(u.data, *big_endian) {
                                Ok(p) => p,
                                Err(reason) => return Err(self.corrupt(offset, reason)),
                            };
                            Some((
                                p.iface,
                                Some((p.ts_hi, p.ts_lo)),
                                u.data.as_ptr() as usize - base + p.data_off,
                                p.caplen,
                                p.wire_len,
                            ))
                        }
                        _ => None,
                    };
                    let Some((iface, ts, data_start, caplen, wire_len)) = packet else {
                        self.pending = len;
                        continue;
                    };
                    let Some(iface_info) = interfaces.get(iface as usize) else {
                        let reason = format!(
                            "packet refers to interface {} but only {} are described",
                            iface,
                            interfaces.len()
                        );
                        return Err(self.corrupt(offset, reason));
                    };
                    let ts = match ts {
                        Some((hi, lo)) => iface_info.timestamp(hi, lo),
                        None => *last_ts,
                    };
                    *last_ts = ts;
                    return Ok(Some(RawFrame {
                        ts,
                        link: iface_info.link,
                        data_start,
                        caplen,
                        wire_len,
                        file_offset: offset,
                        record_len: len,
                    }));
                }
                Ok((len, _)) => {
                    self.pending = len;
                    continue;
                }
                Err(e) => Stop::from(e),
            };
            match self.after_stop(stop, need, block)? {
                AfterStop::Retry => {}
                AfterStop::End => return Ok(None),
            }
        }
    }

    /// pcap-parser stopped short of the record at `self.offset`, which needs
    /// `need` bytes. Refills (growing the buffer only once it is full of
    /// data), or says why the stream ends there. `block` is the pcapng block
    /// type and byte order, if its framing was readable.
    fn after_stop(
        &mut self,
        stop: Stop,
        need: usize,
        block: Option<(u32, bool)>,
    ) -> Result<AfterStop, SourceError> {
        let reader = self.reader.as_mut().expect("reader present");
        let have = reader.data().len();
        let whole = have >= need;
        let bad_block = |r: &Self| {
            let (btype, be) = block.unwrap_or((0, false));
            let data = r.reader.as_ref().expect("reader present").data();
            r.corrupt(
                r.offset,
                pcapng::explain_bad_block(&data[..need.min(data.len())], btype, be),
            )
        };
        match stop {
            Stop::Eof => Ok(AfterStop::End),
            Stop::Parse(kind) => match block {
                Some(_) if whole => Err(bad_block(self)),
                _ => Err(self.corrupt(self.offset, format!("unparsable record ({kind})"))),
            },
            // The whole record is there and pcap-parser still wants more:
            // its own lengths disagree with the framing.
            Stop::NeedMore | Stop::UnexpectedEof if whole && block.is_some() => {
                Err(bad_block(self))
            }
            Stop::UnexpectedEof if have == 0 => Ok(AfterStop::End),
            Stop::UnexpectedEof => Err(self.truncated(need, have)),
            Stop::NeedMore => {
                if have >= self.capacity {
                    // Full of data and the record still does not fit.
                    let grown = (self.capacity * 2).min(need + 1).max(self.capacity + 1);
                    reader.grow(grown);
                    self.capacity = grown;
                }
                if reader.refill().is_err() {
                    return Err(self.read_failure(have));
                }
                Ok(AfterStop::Retry)
            }
            Stop::ReadError => Err(self.read_failure(have)),
        }
    }

    fn truncated(&self, need: usize, have: usize) -> SourceError {
        self.corrupt(
            self.offset,
            format!("truncated: record needs {need} bytes but the file ends after {have}"),
        )
    }

    fn stash(&self, e: io::Error) {
        let mut slot = self.read_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// The stream failed after `have` bytes past `self.offset`: a gzip
    /// stream that cannot be decoded is corruption, anything else I/O.
    fn read_failure(&self, have: usize) -> SourceError {
        let e = self
            .read_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| io::Error::other("read failed"));
        match e.kind() {
            io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::UnexpectedEof => self.corrupt(
                self.offset + have as u64,
                format!("decompression failed: {e}"),
            ),
            _ => SourceError::Io {
                path: self.path.clone(),
                source: e,
            },
        }
    }

    fn open_read_error(&self, e: io::Error, gzipped: bool) -> SourceError {
        if gzipped {
            self.corrupt(0, format!("decompression failed: {e}"))
        } else {
            SourceError::Io {
                path: self.path.clone(),
                source: e,
            }
        }
    }

    fn corrupt(&self, offset: u64, reason: String) -> SourceError {
        SourceError::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        }
    }
}
