//! [`Transport`]: the IO that tungstenite reads from and writes to, between it and hyper's
//! upgraded connection.
//!
//! Writes pass through. Reads take one of two paths:
//! - without permessage-deflate, bytes pass through while a [`FrameScanner`] follows the frame
//!   headers and stops the stream at a header that tungstenite would accept although RFC 6455
//!   forbids it: a 64-bit payload length whose most significant bit is set (§5.2);
//! - with it, an [`Inflater`] parses the frames, inflates compressed messages and writes plain
//!   frames for tungstenite (see `deflate/inflate.rs`).
//!
//! Either way the bytes before a fault are still delivered; the next read fails with the
//! [`TransportError`], which the socket turns into its [`Error`](crate::Error) and answers
//! with the matching Close.

use std::{
    fmt, io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::deflate::{Inflater, InflaterConfig};

/// The connection under tungstenite: hyper's upgraded connection, with checks, and inflation
/// when negotiated, on the read side.
#[derive(Debug)]
pub(crate) struct Transport {
    io: TokioIo<Upgraded>,
    read: ReadPath,
}

/// Kept small: it is part of every idle socket.
#[derive(Debug)]
enum ReadPath {
    Scan(FrameScanner),
    Inflate(Box<Inflater>),
}

impl Transport {
    /// A transport over `upgraded`; with `inflate`, compressed messages are inflated.
    pub(crate) fn new(upgraded: Upgraded, inflate: Option<InflaterConfig>) -> Self {
        let read = match inflate {
            Some(config) => ReadPath::Inflate(Box::new(Inflater::new(config))),
            None => ReadPath::Scan(FrameScanner::default()),
        };
        Self { io: TokioIo::new(upgraded), read }
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.read {
            ReadPath::Scan(scanner) => {
                if scanner.failed {
                    return Poll::Ready(Err(TransportError::LengthTopBit.into()));
                }
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                if let Err(offset) = scanner.scan(&buf.filled()[before..]) {
                    // Deliver what came before the bad header; fail now if that is nothing.
                    buf.set_filled(before + offset);
                    scanner.failed = true;
                    if offset == 0 {
                        return Poll::Ready(Err(TransportError::LengthTopBit.into()));
                    }
                }
                Poll::Ready(Ok(()))
            }
            ReadPath::Inflate(inflater) => loop {
                if !inflater.output.is_empty() {
                    let n = inflater.output.len().min(buf.remaining());
                    buf.put_slice(&inflater.output.split_to(n));
                    if inflater.output.is_empty() && inflater.input.is_empty() {
                        // Between messages: give back what a large message made them grow to.
                        inflater.shrink_buffers();
                    }
                    return Poll::Ready(Ok(()));
                }
                if let Some(fault) = inflater.fault.clone() {
                    return Poll::Ready(Err(fault.into()));
                }
                let before = inflater.input.len();
                if let Err(error) = inflater.process() {
                    inflater.fault = Some(error);
                    continue;
                }
                if !inflater.output.is_empty() || inflater.input.len() != before {
                    continue;
                }
                // Nothing to give: read more, into the caller's buffer (no zero-filling of our
                // own), then move what came to the inflater's input.
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                let read = &buf.filled()[before..];
                if read.is_empty() {
                    // The end of the stream: tungstenite sees it too.
                    return Poll::Ready(Ok(()));
                }
                inflater.input.extend_from_slice(read);
                buf.set_filled(before);
            },
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What the transport found wrong in the peer's bytes, carried to the socket inside an
/// `io::Error` of kind `InvalidData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransportError {
    /// A 64-bit payload length with its most significant bit set (RFC 6455 §5.2): 1002.
    LengthTopBit,
    /// A compressed frame over `max_frame_size` on the wire, or a compressed message whose
    /// inflated size passed `max_message_size`: 1009.
    TooBig {
        /// The size seen, in bytes.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// Compressed data that does not inflate: 1007.
    CorruptCompressedData(String),
    /// Another breach of the protocol around compressed messages: 1002.
    Protocol(&'static str),
}

impl TransportError {
    /// The fault inside `error`, if it carries one.
    pub(crate) fn find(error: &io::Error) -> Option<&Self> {
        error.get_ref()?.downcast_ref::<Self>()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthTopBit => f.write_str("64-bit payload length with its most significant bit set"),
            Self::TooBig { size, max } => write!(f, "{size} bytes, the limit is {max}"),
            Self::CorruptCompressedData(e) => write!(f, "compressed data does not inflate: {e}"),
            Self::Protocol(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for TransportError {}

impl From<TransportError> for io::Error {
    fn from(error: TransportError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// Follows frame boundaries in a byte stream that arrives in pieces: it reads each header as its
/// bytes come, then skips the payload.
#[derive(Debug, Default, Clone, Copy)]
struct FrameScanner {
    /// Payload bytes of the current frame still to skip.
    payload_left: u64,
    /// The bytes of the header being read: the first two, then the extended length.
    header: [u8; 10],
    /// How many bytes of `header` have arrived.
    header_len: u8,
    /// A bad header was found: every later read fails.
    failed: bool,
}

impl FrameScanner {
    /// Follows `bytes`, the next bytes of the stream.
    ///
    /// # Errors
    ///
    /// Where the first header that breaks the rule starts in `bytes` (0 when it started before
    /// them).
    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), usize> {
        let start = bytes.len();
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left).unwrap_or(usize::MAX).min(bytes.len());
                self.payload_left -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let header_start = (start - bytes.len()).saturating_sub(usize::from(self.header_len));
            if self.header_len == 0 {
                // The common case: the whole header is in this read. Read it in place.
                if let Some((length, masked, used)) = whole_header(bytes) {
                    let length = length.ok_or(header_start)?;
                    self.payload_left = length + if masked { 4 } else { 0 };
                    bytes = &bytes[used..];
                    continue;
                }
            }
            // A header split across reads: gather it byte by byte.
            let Some((&byte, rest)) = bytes.split_first() else { break };
            bytes = rest;
            self.header[usize::from(self.header_len)] = byte;
            self.header_len += 1;
            let Some(needed) = self.header_bytes_needed() else { continue };
            if usize::from(self.header_len) < needed {
                continue;
            }
            let header = self.header;
            let Some((length, masked, _)) = whole_header(&header[..needed]) else { continue };
            let length = length.ok_or(header_start)?;
            self.header_len = 0;
            self.payload_left = length + if masked { 4 } else { 0 };
        }
        Ok(())
    }

    /// How many bytes of the header come before the mask key: 2, 4 or 10. `None` until the
    /// second byte has arrived.
    fn header_bytes_needed(&self) -> Option<usize> {
        (self.header_len >= 2).then(|| match self.header[1] & 0x7F {
            126 => 4,
            127 => 10,
            _ => 2,
        })
    }
}

/// The frame header at the start of `bytes`, if it is there whole (the mask key aside): the
/// payload length (`None` when a 64-bit length has its most significant bit set), whether the
/// frame is masked, and the header's length up to the mask key.
fn whole_header(bytes: &[u8]) -> Option<(Option<u64>, bool, usize)> {
    let [_, b1, rest @ ..] = bytes else { return None };
    let masked = b1 & 0x80 != 0;
    match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => Some((Some(u64::from(u16::from_be_bytes([*a, *b]))), masked, 4)),
            _ => None,
        },
        127 => {
            let mut length = [0; 8];
            length.copy_from_slice(rest.get(..8)?);
            let length = u64::from_be_bytes(length);
            Some(((length >> 63 == 0).then_some(length), masked, 10))
        }
        short => Some((Some(u64::from(short)), masked, 2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header with `length`, in its shortest form, and the mask key.
    fn header(length: u64) -> Vec<u8> {
        let mut bytes = vec![0x82];
        match length {
            0..=125 => bytes.push(0x80 | length as u8),
            126..=0xFFFF => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(length as u16).to_be_bytes());
            }
            _ => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&length.to_be_bytes());
            }
        }
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        bytes
    }

    fn frame(length: usize) -> Vec<u8> {
        let mut bytes = header(length as u64);
        bytes.resize(bytes.len() + length, 0xAB);
        bytes
    }

    #[test]
    fn follows_frames_of_every_length_form_in_any_split() {
        let stream: Vec<u8> = [frame(0), frame(125), frame(126), frame(70_000), frame(3)].concat();
        for piece in [1, 2, 3, 7, 13, 4096, stream.len()] {
            let mut scanner = FrameScanner::default();
            for chunk in stream.chunks(piece) {
                scanner.scan(chunk).unwrap();
            }
            assert_eq!((scanner.payload_left, scanner.header_len), (0, 0), "piece {piece}");
        }
    }

    #[test]
    fn a_length_with_the_top_bit_set_is_refused_where_its_header_starts() {
        let mut bad = header(1 << 63);
        bad.extend_from_slice(b"payload");
        let good = frame(5);
        let stream = [good.clone(), bad].concat();

        let mut scanner = FrameScanner::default();
        assert_eq!(scanner.scan(&stream), Err(good.len()));

        // Split inside the bad header: the violation is found in the second piece, and it
        // started before it.
        let mut scanner = FrameScanner::default();
        assert_eq!(scanner.scan(&stream[..good.len() + 3]), Ok(()));
        assert_eq!(scanner.scan(&stream[good.len() + 3..]), Err(0));
    }

    #[test]
    fn the_largest_valid_length_passes() {
        let mut scanner = FrameScanner::default();
        scanner.scan(&header((1 << 63) - 1)).unwrap();
        // The header and its mask key were read: the whole payload is left.
        assert_eq!(scanner.payload_left, (1 << 63) - 1);
    }

    #[test]
    fn faults_travel_inside_io_errors() {
        let error = io::Error::from(TransportError::LengthTopBit);
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(TransportError::find(&error), Some(&TransportError::LengthTopBit));
        assert!(TransportError::find(&io::Error::other("other")).is_none());
        assert!(error.to_string().contains("most significant bit"));
    }
}
