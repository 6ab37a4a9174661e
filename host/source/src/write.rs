//! Writing classic pcap files (Ethernet, microseconds): for tools that make
//! captures (the benchmark generator, tests) and, later, exports.

use std::io::{self, Write};

/// Writes a pcap stream: the 24-byte header, then one record per frame.
pub struct PcapWriter<W: Write> {
    out: W,
    packets: u64,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Link type 1 (Ethernet), microsecond timestamps, snap length 262144.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        hdr[16..20].copy_from_slice(&262_144u32.to_le_bytes());
        hdr[20..24].copy_from_slice(&1u32.to_le_bytes());
        out.write_all(&hdr)?;
        Ok(PcapWriter {
            out,
            packets: 0,
            bytes: 24,
        })
    }

    /// Append one frame captured at `ts_us` (µs since the epoch).
    pub fn write_frame(&mut self, ts_us: u64, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(frame)?;
        self.packets += 1;
        self.bytes += 16 + len as u64;
        Ok(())
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Bytes written, header included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CaptureReader;
    use std::path::Path;

    #[test]
    fn written_frames_read_back_unchanged() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(1_500_000, b"first frame").unwrap();
        w.write_frame(2_000_001, &[7u8; 300]).unwrap();
        assert_eq!(w.packets(), 2);
        let bytes = w.into_inner();
        let mut r = CaptureReader::open_reader(std::io::Cursor::new(bytes), Path::new("mem"), None)
            .unwrap();
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(f.data, b"first frame");
        assert_eq!(f.ts.micros(), 1_500_000);
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(f.data.len(), 300);
        assert_eq!(f.ts.micros(), 2_000_001);
        assert!(r.next_frame().is_none());
    }
}
