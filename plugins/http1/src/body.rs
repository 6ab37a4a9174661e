//! Message bodies: Content-Length, chunked and close-delimited framing, the
//! body cap, and gzip/deflate decoding for display.

use crate::*;
use std::io::Read;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty line.
    Trailers,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Framing {
    None,
    /// Content-Length; this many bytes left.
    Length(u64),
    Chunked(Chunk),
    /// Ends when the connection does.
    Close,
}

/// A message whose body is being read.
pub(crate) struct Pending {
    pub(crate) msg: Message,
    pub(crate) framing: Framing,
    /// What is kept of the body (at most the cap).
    pub(crate) buf: Vec<u8>,
    /// Body length on the wire, de-chunked.
    pub(crate) original_len: u64,
    /// Body bytes were lost (gap) or the stream ended early.
    pub(crate) lost: bool,
    pub(crate) coding: Option<Coding>,
    pub(crate) size_field: u16,
    pub(crate) trailer_bytes: usize,
}

pub(crate) enum Step {
    /// The message is complete; drop `skip` more bytes (the rest of a body
    /// beyond the cap that has not arrived yet).
    Done {
        skip: u64,
    },
    /// Input exhausted mid-body.
    More {
        skip: u64,
        need: usize,
    },
    Error(&'static str),
}

const MAX_CHUNK_LINE: usize = 4096;

impl Pending {
    fn keep(&mut self, bytes: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.buf.len());
        let n = room.min(bytes.len());
        if n > 0 {
            if self.buf.is_empty() {
                self.buf.reserve_exact(n);
            }
            self.buf.extend_from_slice(&bytes[..n]);
        }
    }

    /// The stream ended: a body that was not complete is truncated.
    pub(crate) fn ended(&mut self) {
        if !matches!(self.framing, Framing::Close | Framing::None) {
            self.lost = true;
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line
        .iter()
        .position(|&b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 || digits > 16 {
        return None;
    }
    // Only chunk extensions or whitespace may follow the size.
    match line.get(digits) {
        None | Some(b';') | Some(b' ') | Some(b'\t') => {}
        _ => return None,
    }
    let s = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(s, 16).ok()
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Read body bytes from `input.data[*pos..]`.
pub(crate) fn advance(p: &mut Pending, input: &Input<'_>, pos: &mut usize, cap: usize) -> Step {
    let data = input.data;
    loop {
        let rest = &data[*pos..];
        match p.framing {
            Framing::None => return Step::Done { skip: 0 },
            Framing::Close => {
                p.keep(rest, cap);
                p.original_len += rest.len() as u64;
                *pos = data.len();
                return Step::More { skip: 0, need: 0 };
            }
            Framing::Length(rem) | Framing::Chunked(Chunk::Data(rem)) => {
                let take = rem.min(rest.len() as u64) as usize;
                p.keep(&rest[..take], cap);
                *pos += take;
                let left = rem - take as u64;
                let chunked = matches!(p.framing, Framing::Chunked(_));
                if left == 0 {
                    if chunked {
                        p.framing = Framing::Chunked(Chunk::DataEnd);
                        continue;
                    }
                    p.framing = Framing::None;
                    return Step::Done { skip: 0 };
                }
                // Input exhausted inside the body.
                if p.buf.len() >= cap {
                    // Keep nothing more: let the host drop the rest unseen.
                    if chunked {
                        p.framing = Framing::Chunked(Chunk::DataEnd);
                        return Step::More {
                            skip: left,
                            need: 0,
                        };
                    }
                    p.framing = Framing::None;
                    return Step::Done { skip: left };
                }
                p.framing = if chunked {
                    Framing::Chunked(Chunk::Data(left))
                } else {
                    Framing::Length(left)
                };
                let need = left.min((cap - p.buf.len()) as u64) as usize;
                return Step::More { skip: 0, need };
            }
            Framing::Chunked(Chunk::Size) => {
                let Some(nl) = memchr::memchr(b'\n', rest) else {
                    if rest.len() > MAX_CHUNK_LINE {
                        return Step::Error("chunk size line too long");
                    }
                    return Step::More {
                        skip: 0,
                        need: rest.len() + 1,
                    };
                };
                let Some(size) = parse_chunk_size(strip_cr(&rest[..nl])) else {
                    return Step::Error("bad chunk size");
                };
                *pos += nl + 1;
                p.original_len = p.original_len.saturating_add(size);
                p.framing = Framing::Chunked(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                });
            }
            Framing::Chunked(Chunk::DataEnd) => {
                if rest.starts_with(b"\r\n") {
                    *pos += 2;
                } else if rest.starts_with(b"\n") {
                    *pos += 1;
                } else if rest.is_empty() || rest == b"\r" {
                    return Step::More { skip: 0, need: 2 };
                } else {
                    return Step::Error("missing CRLF after chunk data");
                }
                p.framing = Framing::Chunked(Chunk::Size);
            }
            Framing::Chunked(Chunk::Trailers) => {
                let Some(nl) = memchr::memchr(b'\n', rest) else {
                    if p.trailer_bytes + rest.len() > MAX_HEAD {
                        return Step::Error("trailers larger than 64 KiB");
                    }
                    return Step::More {
                        skip: 0,
                        need: rest.len() + 1,
                    };
                };
                let line = strip_cr(&rest[..nl]);
                *pos += nl + 1;
                p.trailer_bytes += nl + 1;
                if line.is_empty() {
                    p.framing = Framing::None;
                    return Step::Done { skip: 0 };
                }
                if p.trailer_bytes > MAX_HEAD {
                    return Step::Error("trailers larger than 64 KiB");
                }
                if let Some(c) = line.iter().position(|&b| b == b':') {
                    let name = &line[..c];
                    let value = line[c + 1..].trim_ascii();
                    p.msg.fields.push(Field {
                        id: F_TRAILERS,
                        value: Value::Pair(
                            Text::Span(input.span_of(name)),
                            Text::Span(input.span_of(value)),
                        ),
                    });
                }
            }
        }
    }
}

/// `len` body bytes were lost. Returns whether the framing survives it.
pub(crate) fn gap(p: &mut Pending, len: u64) -> bool {
    p.lost = true;
    match p.framing {
        Framing::Close => {
            p.original_len += len;
            true
        }
        Framing::Length(rem) if len < rem => {
            p.framing = Framing::Length(rem - len);
            true
        }
        Framing::Chunked(Chunk::Data(rem)) if len < rem => {
            p.framing = Framing::Chunked(Chunk::Data(rem - len));
            true
        }
        _ => false,
    }
}

/// Decode a whole body for display; `None` when it does not decode.
fn decode(coding: Coding, data: &[u8], limit: usize) -> Option<(Vec<u8>, bool)> {
    // Decoded bodies are usually a few times their encoded size; reserving
    // that up front saves most of read_to_end's regrowth.
    let hint = data.len().saturating_mul(4).min(limit + 1);
    let read_all = |mut r: &mut dyn Read| -> Option<(Vec<u8>, bool)> {
        let mut out = Vec::with_capacity(hint);
        (&mut r).take(limit as u64 + 1).read_to_end(&mut out).ok()?;
        let truncated = out.len() > limit;
        out.truncate(limit);
        Some((out, truncated))
    };
    // `bufread` decoders read the slice in place (`read` ones would copy it
    // through a 32 KiB buffer of their own).
    match coding {
        Coding::Gzip => read_all(&mut flate2::bufread::MultiGzDecoder::new(data)),
        // "deflate" is zlib-wrapped per the RFC; some servers send it raw.
        Coding::Deflate => read_all(&mut flate2::bufread::ZlibDecoder::new(data))
            .or_else(|| read_all(&mut flate2::bufread::DeflateDecoder::new(data))),
    }
}

impl Http1Session {
    /// Emit a finished (or abandoned) message.
    pub(crate) fn finish(&mut self, p: Pending, out: &mut Output) {
        let Pending {
            mut msg,
            buf,
            original_len,
            lost,
            coding,
            size_field,
            ..
        } = p;
        msg.fields.push(Field {
            id: size_field,
            value: Value::from(original_len),
        });
        if original_len > 0 || !buf.is_empty() {
            let truncated = lost || (buf.len() as u64) < original_len;
            let mut body = Body {
                data: buf,
                original_len,
                truncated,
                decoded_from: None,
            };
            if let (Some(c), false) = (coding, truncated) {
                // A few times the cap shows a compressed body's text, but
                // never more than the host takes in one body.
                let limit = self.cap.saturating_mul(4).min(remora_sdk::MAX_BODY_BYTES);
                if let Some((decoded, cut)) = decode(c, &body.data, limit) {
                    body.data = decoded;
                    body.truncated = cut;
                    body.decoded_from = Some(
                        match c {
                            Coding::Gzip => "gzip",
                            Coding::Deflate => "deflate",
                        }
                        .to_owned(),
                    );
                }
            }
            msg.body = Some(body);
        }
        out.push(msg);
    }
}
