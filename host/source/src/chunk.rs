//! The buffer a capture file is parsed from: reference-counted chunks, so a
//! frame's bytes can go to another thread without a copy (the pipeline's
//! shard batches hold a [`Chunk`], not a copy of each payload).
//!
//! It does what pcap-parser's streaming readers do (one `read` per refill,
//! the unparsed tail moved to the front, the buffer grown for a record that
//! does not fit) and parses with pcap-parser's own record and block
//! parsers. The difference: a chunk is written only while nothing else holds
//! it. A refill that finds the current chunk still held elsewhere moves the
//! unparsed tail (less than one record) into a spare chunk instead.
//!
//! Why `read` and not a memory map of the file: the kernel's copy is a
//! tenth of the mixed benchmark's profile, but mapping was measured slower
//! (README, session 16): the copy's cache misses moved into the decoder
//! and the payload copies, and mapping and unmapping the page cache's
//! 4 KiB pages one at a time cost as much as the copy.

use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use pcap_parser::nom::{self, Needed};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{
    parse_block_be, parse_block_le, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header,
    Block, PcapBlockOwned, PcapError,
};

/// Bytes read from a capture, shared with whoever still needs some of them.
/// Cloning is a reference count.
#[derive(Clone)]
pub struct Chunk(Arc<Vec<u8>>);

impl Chunk {
    fn zeroed(len: usize) -> Self {
        Chunk(Arc::new(vec![0; len]))
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Where `part` lies in this chunk, if it does.
    pub fn range_of(&self, part: &[u8]) -> Option<std::ops::Range<usize>> {
        let base = self.0.as_ptr() as usize;
        let start = (part.as_ptr() as usize).checked_sub(base)?;
        let end = start.checked_add(part.len())?;
        (end <= self.0.len()).then_some(start..end)
    }

    pub fn same(&self, other: &Chunk) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The bytes, writable, when nothing else holds the chunk.
    fn unique(&mut self) -> Option<&mut Vec<u8>> {
        Arc::get_mut(&mut self.0)
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chunk({} bytes)", self.0.len())
    }
}

/// Which records the file holds.
pub(crate) enum Records {
    /// Classic pcap: the file header first, then records.
    Pcap { big_endian: bool },
    /// pcapng blocks in the byte order of the current section.
    PcapNg { big_endian: bool },
}

/// Chunks kept for reuse once their holders let go. Enough for what the
/// pipeline holds with a few shard threads (each queues up to 64 batches, a
/// batch holding the chunks its packets lie in; 64 batches of the mixed
/// bench capture span ~50 chunks): with 4 spares and 16-batch queues, a
/// two-thread run of that capture allocated (and the kernel zeroed)
/// 1,000-2,000 fresh 256 KiB chunks, with 32 under 32. A spare is memory
/// that was in use at the same time anyway, so keeping it does not raise
/// the peak.
const SPARES: usize = 128;

pub(crate) struct ChunkReader {
    src: Box<dyn Read + Send>,
    chunk: Chunk,
    /// Unparsed bytes are `chunk[start..end]`.
    start: usize,
    end: usize,
    consumed: usize,
    exhausted: bool,
    records: Records,
    spares: Vec<Chunk>,
}

impl ChunkReader {
    /// Reads once into a chunk of `capacity` bytes, as pcap-parser's readers
    /// do when they are made.
    pub(crate) fn new(
        capacity: usize,
        src: Box<dyn Read + Send>,
        records: Records,
    ) -> io::Result<Self> {
        let mut r = ChunkReader {
            src,
            chunk: Chunk::zeroed(capacity),
            start: 0,
            end: 0,
            consumed: 0,
            exhausted: false,
            records,
            spares: Vec::new(),
        };
        r.read_once()?;
        Ok(r)
    }

    /// The chunk that [`data`](PcapReaderIterator::data) lies in.
    pub(crate) fn chunk(&self) -> &Chunk {
        &self.chunk
    }

    fn read_once(&mut self) -> io::Result<()> {
        let buf = self
            .chunk
            .unique()
            .expect("reading into a chunk held elsewhere");
        if self.end == buf.len() {
            return Ok(());
        }
        let n = self.src.read(&mut buf[self.end..])?;
        self.exhausted = n == 0;
        self.end += n;
        Ok(())
    }

    /// Makes the current chunk writable and at least `len` long, with the
    /// unparsed bytes at its front.
    fn writable(&mut self, len: usize) {
        let (start, end) = (self.start, self.end);
        let fits = self.chunk.0.len() >= len;
        match self.chunk.unique() {
            Some(buf) if fits => buf.copy_within(start..end, 0),
            _ => {
                let mut next = self.spare(len.max(self.chunk.0.len()));
                next.unique().expect("a spare is held by nobody")[..end - start]
                    .copy_from_slice(&self.chunk.0[start..end]);
                let old = std::mem::replace(&mut self.chunk, next);
                if self.spares.len() < SPARES {
                    self.spares.push(old);
                }
            }
        }
        self.start = 0;
        self.end = end - start;
    }

    /// A chunk of at least `len` bytes that nothing else holds.
    fn spare(&mut self, len: usize) -> Chunk {
        let free = self
            .spares
            .iter_mut()
            .position(|c| c.0.len() >= len && c.unique().is_some());
        match free {
            Some(i) => self.spares.swap_remove(i),
            None => Chunk::zeroed(len),
        }
    }
}

impl PcapReaderIterator for ChunkReader {
    fn next(&mut self) -> Result<(usize, PcapBlockOwned<'_>), PcapError<&[u8]>> {
        if self.start == self.end && self.exhausted {
            return Err(PcapError::Eof);
        }
        let data = &self.chunk.0[self.start..self.end];
        let parsed = match &mut self.records {
            Records::Pcap { .. } if self.consumed == 0 => {
                parse_pcap_header(data).map(|(rest, h)| (rest, PcapBlockOwned::from(h)))
            }
            Records::Pcap { big_endian: false } => {
                parse_pcap_frame(data).map(|(rest, b)| (rest, PcapBlockOwned::from(b)))
            }
            Records::Pcap { big_endian: true } => {
                parse_pcap_frame_be(data).map(|(rest, b)| (rest, PcapBlockOwned::from(b)))
            }
            Records::PcapNg { big_endian } => {
                let parse = if *big_endian {
                    parse_block_be
                } else {
                    parse_block_le
                };
                parse(data).map(|(rest, b)| {
                    if let Block::SectionHeader(shb) = &b {
                        *big_endian = shb.big_endian();
                    }
                    (rest, PcapBlockOwned::from(b))
                })
            }
        };
        match parsed {
            Ok((rest, block)) => Ok((data.len() - rest.len(), block)),
            Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => Err(e),
            Err(nom::Err::Incomplete(_)) if self.exhausted => Err(PcapError::UnexpectedEof),
            Err(nom::Err::Incomplete(Needed::Size(n))) => {
                if data.len() + usize::from(n) >= self.chunk.0.len() {
                    Err(PcapError::BufferTooSmall)
                } else {
                    Err(PcapError::Incomplete(n.into()))
                }
            }
            Err(nom::Err::Incomplete(Needed::Unknown)) => Err(PcapError::Incomplete(0)),
        }
    }

    fn consume(&mut self, offset: usize) {
        self.consume_noshift(offset);
    }

    fn consume_noshift(&mut self, offset: usize) {
        let offset = offset.min(self.end - self.start);
        self.start += offset;
        self.consumed += offset;
    }

    fn consumed(&self) -> usize {
        self.consumed
    }

    fn refill(&mut self) -> Result<(), PcapError<&[u8]>> {
        self.writable(self.chunk.0.len());
        self.read_once().map_err(|_| PcapError::ReadError)
    }

    fn position(&self) -> usize {
        self.start
    }

    fn grow(&mut self, new_size: usize) -> bool {
        if new_size <= self.chunk.0.len() {
            return false;
        }
        self.writable(new_size);
        true
    }

    fn data(&self) -> &[u8] {
        &self.chunk.0[self.start..self.end]
    }

    fn reader_exhausted(&self) -> bool {
        self.exhausted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn pcap(records: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for (i, r) in records.iter().enumerate() {
            v.extend_from_slice(&(i as u32).to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(r);
        }
        v
    }

    /// Reads every record, keeping the chunk of every other one (as a
    /// batch in flight would), and returns the records' bytes as read
    /// through the kept chunks at the end.
    fn read_all(file: Vec<u8>, capacity: usize, step: usize) -> (Vec<Vec<u8>>, usize) {
        let src = Trickle {
            data: file,
            pos: 0,
            step,
        };
        let mut r =
            ChunkReader::new(capacity, Box::new(src), Records::Pcap { big_endian: false }).unwrap();
        let mut kept: Vec<(Chunk, std::ops::Range<usize>)> = Vec::new();
        let mut copies = Vec::new();
        let mut grown = 0;
        let mut n = 0;
        loop {
            let (len, data) = match r.next() {
                Ok((len, PcapBlockOwned::Legacy(b))) => (len, b.data.to_vec()),
                Ok((len, _)) => (len, Vec::new()),
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => {
                    r.refill().unwrap();
                    continue;
                }
                Err(PcapError::BufferTooSmall) => {
                    let size = r.chunk.0.len() * 2;
                    assert!(r.grow(size));
                    grown += 1;
                    r.refill().unwrap();
                    continue;
                }
                Err(e) => panic!("{e:?}"),
            };
            if !data.is_empty() {
                // Where the record's data is in the chunk: it ends `len -
                // 16 - data.len()` bytes before the record does (none).
                let at = r.start + len - data.len();
                if n % 2 == 0 {
                    kept.push((r.chunk().clone(), at..at + data.len()));
                }
                copies.push(data);
                n += 1;
            }
            r.consume_noshift(len);
        }
        for (i, (c, range)) in kept.iter().enumerate() {
            assert_eq!(
                &c.as_slice()[range.clone()],
                &copies[2 * i][..],
                "record {}",
                2 * i
            );
        }
        (copies, grown)
    }

    #[test]
    fn held_chunks_keep_their_bytes_while_reading_goes_on() {
        let records: Vec<Vec<u8>> = (0..200u32)
            .map(|i| (0..(i * 37 % 300)).map(|b| (b ^ i) as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
        for (capacity, step) in [(64, 7), (512, 1000), (1024, 3), (4096, 4096)] {
            let (got, _) = read_all(pcap(&refs), capacity, step);
            let want: Vec<Vec<u8>> = records.iter().filter(|r| !r.is_empty()).cloned().collect();
            assert_eq!(got, want, "capacity {capacity}, step {step}");
        }
    }

    #[test]
    fn a_record_larger_than_the_chunk_grows_it() {
        let big = vec![0xab; 5000];
        let small = vec![1u8; 10];
        let (got, grown) = read_all(pcap(&[&small, &big, &small]), 256, 512);
        assert_eq!(got, vec![small.clone(), big, small]);
        assert!(grown > 0);
    }

    #[test]
    fn range_of_finds_only_slices_of_the_chunk() {
        let c = Chunk(Arc::new((0..100u8).collect()));
        assert_eq!(c.range_of(&c.as_slice()[10..20]), Some(10..20));
        let elsewhere = [1u8, 2, 3];
        assert_eq!(c.range_of(&elsewhere), None);
    }
}
