//! [`Transport`]: the IO that tungstenite reads from and writes to, between it and hyper's
//! upgraded connection.
//!
//! Writes pass through. Reads take one of two paths:
//! - without permessage-deflate, a [`PlainReader`] reads the connection into its own staging
//!   buffer (`receive_buffer_size` at a time, never zero-filled) and follows the frame headers
//!   there with a [`FrameScanner`]. It stops the stream at a header that tungstenite would accept
//!   although RFC 6455 forbids it: a 64-bit payload length whose most significant bit is set
//!   (§5.2). On a server it also takes large whole data messages off tungstenite's path (the
//!   *bypass*, below); everything else goes to tungstenite byte for byte;
//! - with it, an [`Inflater`] parses the frames, inflates compressed messages and writes plain
//!   frames for tungstenite (see `deflate/inflate.rs`).
//!
//! Either way the bytes before a fault are still delivered; the next read fails with the
//! [`TransportError`], which the socket turns into its [`Error`](crate::Error) and answers
//! with the matching Close.
//!
//! # The bypass
//!
//! tungstenite reads at most its `read_buffer_size` per call and zero-fills that much of its
//! buffer before every call. So the socket gives it a small buffer
//! ([`TUNGSTENITE_READ_BUFFER`]) and the reader takes a frame off its path when it is a whole
//! message tungstenite would accept as it is: Text or Binary, FIN set, no RSV bit, masked,
//! longer than [`BYPASS_MIN`], within the frame and message limits, outside a fragmented
//! message, and before any Close. Its payload is read straight from the connection into a buffer
//! of its size, unmasked, and (Text) checked for UTF-8; the finished message waits in the reader
//! until the socket takes it ([`Transport::take_message`]). tungstenite is handed the bytes up
//! to that frame's start only, and is told to wait (`Pending`) while the message is there, so
//! every frame before it is read first and every frame after it later. A candidate that turns
//! out wrong (invalid UTF-8, the end of the stream inside it) is masked again and handed to
//! tungstenite as it came, which fails it as it always did.

use std::{
    fmt, io,
    pin::{Pin, pin},
    task::{Context, Poll, ready},
};

use bytes::{Buf, BufMut, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::{self, Utf8Bytes};

use crate::{
    deflate::{Inflater, InflaterConfig},
    proto::{
        error::ProtocolError,
        frame::{FrameHeader, apply_mask},
    },
};

/// tungstenite's read buffer under a reader that bypasses it: it only reads frames up to about
/// this size whole, so a small buffer costs it nothing, and it is all that an idle socket keeps
/// resident of it (tungstenite zero-fills its buffer).
pub(crate) const TUNGSTENITE_READ_BUFFER: usize = 512;

/// The size of the reads into the staging buffer until one fills it (at most
/// `receive_buffer_size`).
const FIRST_READ: usize = 1024;

/// Data frames with a longer payload than this are taken off tungstenite's path.
const BYPASS_MIN: u64 = TUNGSTENITE_READ_BUFFER as u64;

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
    Plain(PlainReader),
    Inflate(Box<Inflater>),
}

/// How the plain read path reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlainConfig {
    /// How much to ask the connection for per read: `receive_buffer_size`.
    pub(crate) read_size: usize,
    /// The longest frame payload to take off tungstenite's path: the smaller of the frame and
    /// message limits. `None`: nothing is (client sockets, where frames are not masked).
    pub(crate) bypass_max: Option<u64>,
}

impl Transport {
    /// A transport over `upgraded`; with `inflate`, compressed messages are inflated, otherwise
    /// the plain path reads as `plain` says.
    pub(crate) fn new(upgraded: Upgraded, inflate: Option<InflaterConfig>, plain: PlainConfig) -> Self {
        let read = match inflate {
            Some(config) => ReadPath::Inflate(Box::new(Inflater::new(config))),
            None => ReadPath::Plain(PlainReader::new(plain)),
        };
        Self { io: TokioIo::new(upgraded), read }
    }

    /// The message taken off tungstenite's path, once it is whole. The socket takes it when
    /// tungstenite returns `Pending`: every frame before it has been read by then.
    pub(crate) fn take_message(&mut self) -> Option<tungstenite::Message> {
        match &mut self.read {
            ReadPath::Plain(reader) => reader.take_message(),
            ReadPath::Inflate(_) => None,
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.read {
            ReadPath::Plain(reader) => reader.poll_read(&mut this.io, cx, buf),
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

/// The read path without compression: the connection's bytes go through `staging` to
/// tungstenite, or, for a bypassed message, into the message's own buffer.
#[derive(Debug)]
struct PlainReader {
    /// Read from the connection and not yet handed on: the first `pass` bytes are tungstenite's,
    /// what follows has not been scanned (the start of a header that is not whole yet). Empty
    /// and without capacity while the connection is quiet.
    staging: BytesMut,
    /// How many bytes at the front of `staging` tungstenite gets.
    pass: usize,
    /// The last read filled `staging`: read `receive_buffer_size` at a time.
    busy: bool,
    scanner: FrameScanner,
    config: PlainConfig,
    /// The message being taken off tungstenite's path, or taken and waiting for the socket.
    bypass: Option<Box<Bypass>>,
}

/// A bypassed message.
#[derive(Debug)]
enum Bypass {
    /// Its payload is arriving.
    Collecting(Collecting),
    /// Whole and checked: the socket takes it.
    Done(tungstenite::Message),
}

/// A bypassed frame while its payload arrives.
#[derive(Debug)]
struct Collecting {
    /// The frame's header as it came, mask key included, to hand it on after all if need be.
    header: [u8; MAX_HEADER],
    header_len: usize,
    text: bool,
    mask: [u8; 4],
    /// The payload so far, unmasked; allocated at its full length.
    payload: BytesMut,
    length: usize,
}

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask key.
const MAX_HEADER: usize = 14;

impl PlainReader {
    fn new(config: PlainConfig) -> Self {
        Self {
            staging: BytesMut::new(),
            pass: 0,
            busy: false,
            scanner: FrameScanner::default(),
            config,
            bypass: None,
        }
    }

    fn take_message(&mut self) -> Option<tungstenite::Message> {
        if !matches!(self.bypass.as_deref(), Some(Bypass::Done(_))) {
            return None;
        }
        match *self.bypass.take()? {
            Bypass::Done(message) => Some(message),
            Bypass::Collecting(_) => None,
        }
    }

    fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.pass > 0 {
                let n = self.pass.min(buf.remaining());
                buf.put_slice(&self.staging[..n]);
                self.staging.advance(n);
                self.pass -= n;
                return Poll::Ready(Ok(()));
            }
            if self.scanner.failed {
                return Poll::Ready(Err(TransportError::LengthTopBit.into()));
            }
            match self.bypass.as_deref_mut() {
                // tungstenite has read every frame before the message: it waits while the socket
                // takes the message (the socket looks as soon as tungstenite returns Pending).
                Some(Bypass::Done(_)) => return Poll::Pending,
                Some(Bypass::Collecting(_)) => {
                    ready!(self.poll_collect(io, cx))?;
                    continue;
                }
                None => {}
            }
            match self.scanner.scan(&self.staging, self.config.bypass_max) {
                Found::Pass(0) => {}
                Found::Candidate(0, header) => {
                    self.start_collecting(&header);
                    continue;
                }
                // tungstenite gets what comes before first.
                Found::Pass(n) | Found::Candidate(n, _) => {
                    self.pass = n;
                    continue;
                }
                Found::TopBit(n) => {
                    self.pass = n;
                    self.scanner.failed = true;
                    continue;
                }
            }
            // Nothing whole for tungstenite: read more.
            if ready!(self.poll_fill(io, cx))? == 0 {
                if self.staging.is_empty() {
                    // The end of the stream: tungstenite sees it too.
                    return Poll::Ready(Ok(()));
                }
                // The end inside a header: tungstenite gets its start, then the end.
                self.pass = self.staging.len();
                self.scanner.no_bypass = true;
            }
        }
    }

    /// Reads what the connection has into `staging`. Releases `staging` when the connection has
    /// nothing and it is empty: a quiet socket keeps no buffer.
    fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        // Small reads (an allocation the allocator serves from its per-thread cache) until one
        // fills the buffer: then `receive_buffer_size` at a time while the connection is busy.
        let want = if self.busy { self.config.read_size } else { FIRST_READ.min(self.config.read_size) };
        if self.staging.capacity() == 0 {
            self.staging = BytesMut::with_capacity(want);
        } else {
            self.staging.reserve(want);
        }
        let spare = self.staging.capacity() - self.staging.len();
        let read = poll_read_buf(io, cx, &mut self.staging);
        match &read {
            Poll::Ready(Ok(n)) => self.busy = *n == spare,
            Poll::Ready(Err(_)) => {}
            Poll::Pending => {
                self.busy = false;
                if self.staging.is_empty() {
                    self.staging = BytesMut::new();
                }
            }
        }
        read
    }

    /// Takes the candidate frame whose header starts `staging` off tungstenite's path.
    fn start_collecting(&mut self, header: &FrameHeader) {
        let mut raw = [0; MAX_HEADER];
        raw[..header.len].copy_from_slice(&self.staging[..header.len]);
        self.staging.advance(header.len);
        // Within the limits, which are `usize`s.
        let length = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
        self.bypass = Some(Box::new(Bypass::Collecting(Collecting {
            header: raw,
            header_len: header.len,
            text: header.opcode == OPCODE_TEXT,
            mask: header.mask,
            payload: BytesMut::with_capacity(length),
            length,
        })));
    }

    /// Gathers the bypassed payload: what `staging` holds of it, then straight from the
    /// connection. Once whole, it becomes the message, or goes back to tungstenite.
    fn poll_collect<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(Bypass::Collecting(collecting)) = self.bypass.as_deref_mut() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            let have = collecting.payload.len();
            let want = collecting.length - have;
            if want == 0 {
                break;
            }
            if !self.staging.is_empty() {
                let n = want.min(self.staging.len());
                collecting.payload.extend_from_slice(&self.staging[..n]);
                self.staging.advance(n);
            } else {
                let read = poll_read_buf(io, cx, &mut (&mut collecting.payload).limit(want));
                if read.is_pending() {
                    self.staging = BytesMut::new();
                }
                if ready!(read)? == 0 {
                    // The end of the stream inside the frame.
                    self.give_back();
                    return Poll::Ready(Ok(()));
                }
            }
            apply_mask(&mut collecting.payload[have..], collecting.mask, have);
        }
        let payload = std::mem::take(&mut collecting.payload).freeze();
        let message = if collecting.text {
            match Utf8Bytes::try_from(payload.clone()) {
                Ok(text) => tungstenite::Message::Text(text),
                Err(_) => {
                    // tungstenite fails it with 1007, as always.
                    collecting.payload = BytesMut::from(payload);
                    self.give_back();
                    return Poll::Ready(Ok(()));
                }
            }
        } else {
            tungstenite::Message::Binary(payload)
        };
        self.bypass = Some(Box::new(Bypass::Done(message)));
        Poll::Ready(Ok(()))
    }

    /// Hands the bypassed frame (what has arrived of it) to tungstenite as it came: the header,
    /// then the payload masked again, then the rest of `staging`. No more bypassing: tungstenite
    /// is about to fail the connection.
    fn give_back(&mut self) {
        let Some(bypass) = self.bypass.take() else { return };
        let Bypass::Collecting(collecting) = *bypass else { return };
        let mut raw =
            BytesMut::with_capacity(collecting.header_len + collecting.payload.len() + self.staging.len());
        raw.extend_from_slice(&collecting.header[..collecting.header_len]);
        let start = raw.len();
        raw.extend_from_slice(&collecting.payload);
        apply_mask(&mut raw[start..], collecting.mask, 0);
        self.pass = raw.len();
        raw.extend_from_slice(&self.staging);
        self.staging = raw;
        self.scanner.no_bypass = true;
    }
}

/// Reads what `io` has into `buf`'s spare capacity (tokio's `read_buf`: nothing is zero-filled).
/// `Ok(0)` at the end of the stream.
fn poll_read_buf<R: AsyncRead + Unpin, B: BufMut>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut B,
) -> Poll<io::Result<usize>> {
    // `read_buf` keeps no state between polls: a new future per poll loses nothing.
    let read = pin!(io.read_buf(buf));
    std::future::Future::poll(read, cx)
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

impl From<ProtocolError> for TransportError {
    /// A header the parser refused: its only error is the 64-bit length's top bit.
    fn from(error: ProtocolError) -> Self {
        match error {
            ProtocolError::LengthTopBit => Self::LengthTopBit,
            _ => Self::Protocol("malformed frame header"),
        }
    }
}

impl From<TransportError> for io::Error {
    fn from(error: TransportError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// Follows the frames of the stream as its bytes are handed on, and decides which frames are
/// taken off tungstenite's path.
#[derive(Debug, Default, Clone, Copy)]
struct FrameScanner {
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// Inside a fragmented message: a data frame without FIN and its continuations so far.
    fragmented: bool,
    /// No more bypassing: a Close was seen, or a frame tungstenite will refuse.
    no_bypass: bool,
    /// A bad header was found: every later read fails.
    failed: bool,
}

/// What the scanner found in `staging`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// The first `n` bytes are tungstenite's; what follows is the start of a header, or nothing.
    Pass(usize),
    /// The first `n` bytes are tungstenite's; then a header with the top bit of its 64-bit
    /// length set.
    TopBit(usize),
    /// The first `n` bytes are tungstenite's; then the header of a frame to take off its path.
    Candidate(usize, FrameHeader),
}

const OPCODE_CONTINUATION: u8 = 0;
const OPCODE_TEXT: u8 = 1;
const OPCODE_BINARY: u8 = 2;
const OPCODE_CLOSE: u8 = 8;
const OPCODE_PING: u8 = 9;
const OPCODE_PONG: u8 = 10;

impl FrameScanner {
    /// Follows the frames in `bytes`, the stream's next bytes, up to the first header that is
    /// not whole, breaks the rule, or starts a frame to bypass (`bypass_max`: the longest
    /// payload to bypass; `None`, bypass nothing). Such a header is not consumed: scanning again
    /// from it finds it again.
    fn scan(&mut self, bytes: &[u8], bypass_max: Option<u64>) -> Found {
        let mut at = 0;
        loop {
            let rest = &bytes[at..];
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left).unwrap_or(usize::MAX).min(rest.len());
                self.payload_left -= skip as u64;
                at += skip;
                if self.payload_left > 0 {
                    return Found::Pass(at);
                }
                continue;
            }
            let header = match FrameHeader::parse(rest) {
                Ok(Some(header)) => header,
                Ok(None) => return Found::Pass(at),
                Err(_) => return Found::TopBit(at),
            };
            if self.is_candidate(&header, bypass_max) {
                return Found::Candidate(at, header);
            }
            self.follow(&header);
            at += header.len;
            self.payload_left = header.payload_len;
        }
    }

    /// Whether tungstenite would take the frame as one whole message, as it is, and it is worth
    /// taking off its path.
    fn is_candidate(&self, header: &FrameHeader, bypass_max: Option<u64>) -> bool {
        let Some(max) = bypass_max else { return false };
        !self.no_bypass
            && !self.fragmented
            && header.fin
            && !header.any_rsv()
            && header.masked
            && matches!(header.opcode, OPCODE_TEXT | OPCODE_BINARY)
            && header.payload_len > BYPASS_MIN
            && header.payload_len <= max
    }

    /// Keeps track of fragmented messages and of what ends bypassing.
    fn follow(&mut self, header: &FrameHeader) {
        match header.opcode {
            OPCODE_TEXT | OPCODE_BINARY if !self.fragmented => self.fragmented = !header.fin,
            OPCODE_CONTINUATION if self.fragmented => self.fragmented = !header.fin,
            OPCODE_PING | OPCODE_PONG if header.fin && header.payload_len <= 125 => {}
            // After a Close, tungstenite refuses data (or no longer reads).
            OPCODE_CLOSE => self.no_bypass = true,
            // A frame tungstenite refuses: it fails the connection.
            _ => self.no_bypass = true,
        }
        if header.any_rsv() || !header.masked {
            self.no_bypass = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, task::Waker};

    use super::*;

    const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];
    const MAX: u64 = 1 << 20;

    /// A client frame: FIN and opcode in `b0`, masked with `MASK` unless `masked` is false.
    fn raw_frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut bytes = vec![b0];
        let bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            0..=125 => bytes.push(bit | payload.len() as u8),
            126..=0xFFFF => {
                bytes.push(bit | 126);
                bytes.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            }
            _ => {
                bytes.push(bit | 127);
                bytes.extend_from_slice(&(payload.len() as u64).to_be_bytes());
            }
        }
        if masked {
            bytes.extend_from_slice(&MASK);
            let start = bytes.len();
            bytes.extend_from_slice(payload);
            for (i, byte) in bytes[start..].iter_mut().enumerate() {
                *byte ^= MASK[i % 4];
            }
        } else {
            bytes.extend_from_slice(payload);
        }
        bytes
    }

    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        raw_frame(b0, payload, true)
    }

    fn binary(length: usize) -> Vec<u8> {
        (0..length).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn text(length: usize) -> Vec<u8> {
        "añ€𝄞".bytes().cycle().take(length).collect()
    }

    /// A connection that gives `stream` in pieces of `piece` bytes, `Pending` (woken) before
    /// each, then the end.
    struct Pieces {
        left: VecDeque<u8>,
        piece: usize,
        ready: bool,
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if !this.ready && !this.left.is_empty() {
                this.ready = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.ready = false;
            let n = this.piece.min(buf.remaining()).min(this.left.len());
            let bytes: Vec<u8> = this.left.drain(..n).collect();
            buf.put_slice(&bytes);
            Poll::Ready(Ok(()))
        }
    }

    /// What a reader hands on, in order.
    #[derive(Debug, PartialEq, Eq)]
    enum Event {
        /// Bytes for tungstenite (consecutive reads merged).
        Tungstenite(Vec<u8>),
        /// A message taken off tungstenite's path.
        Message(tungstenite::Message),
        /// A fault.
        Error(TransportError),
        End,
    }

    /// Runs a reader over `stream`, given in pieces of `piece` bytes, as tungstenite and the
    /// socket would: reads of up to 512 bytes and, on `Pending`, a look for a message.
    fn run(stream: &[u8], piece: usize, bypass_max: Option<u64>) -> Vec<Event> {
        let mut io = Pieces { left: stream.iter().copied().collect(), piece, ready: false };
        let mut reader = PlainReader::new(PlainConfig { read_size: 64, bypass_max });
        let mut cx = Context::from_waker(Waker::noop());
        let mut events = Vec::new();
        let mut pendings = 0;
        loop {
            let mut storage = [0; TUNGSTENITE_READ_BUFFER];
            let mut buf = ReadBuf::new(&mut storage);
            match reader.poll_read(&mut io, &mut cx, &mut buf) {
                Poll::Pending => {
                    if let Some(message) = reader.take_message() {
                        events.push(Event::Message(message));
                    } else {
                        // The connection's own Pending: an empty staging buffer was let go.
                        if reader.staging.is_empty() {
                            assert_eq!(reader.staging.capacity(), 0);
                        }
                        pendings += 1;
                        assert!(pendings < 1_000_000, "no progress");
                    }
                }
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    events.push(Event::End);
                    return events;
                }
                Poll::Ready(Ok(())) => match events.last_mut() {
                    Some(Event::Tungstenite(bytes)) => bytes.extend_from_slice(buf.filled()),
                    _ => events.push(Event::Tungstenite(buf.filled().to_vec())),
                },
                Poll::Ready(Err(error)) => {
                    events.push(Event::Error(
                        TransportError::find(&error).cloned().expect("a transport fault"),
                    ));
                    return events;
                }
            }
        }
    }

    /// `run` at every piece size in `pieces`, all of which must give `expected`.
    fn check(stream: &[u8], pieces: impl IntoIterator<Item = usize>, expected: &[Event]) {
        for piece in pieces {
            assert_eq!(run(stream, piece, Some(MAX)), expected, "pieces of {piece} bytes");
        }
    }

    fn every_split(stream: &[u8]) -> impl Iterator<Item = usize> {
        // Every piece size from 1 to 20 puts a boundary at every byte of the headers;
        // larger ones cover whole frames at once.
        (1..=20).chain([63, 64, 513, 4096, stream.len()])
    }

    fn bin_message(payload: &[u8]) -> Event {
        Event::Message(tungstenite::Message::Binary(payload.to_vec().into()))
    }

    fn text_message(payload: &[u8]) -> Event {
        Event::Message(tungstenite::Message::Text(
            Utf8Bytes::try_from(bytes::Bytes::from(payload.to_vec())).expect("UTF-8"),
        ))
    }

    #[test]
    fn a_large_binary_or_text_message_is_taken_off_tungstenites_path() {
        for length in [513, 1000, 70_000] {
            let payload = binary(length);
            check(&frame(0x82, &payload), every_split(&payload), &[bin_message(&payload), Event::End]);
            let payload = text(length);
            check(&frame(0x81, &payload), every_split(&payload), &[text_message(&payload), Event::End]);
        }
    }

    #[test]
    fn small_messages_pass_through() {
        let stream = [frame(0x82, &binary(512)), frame(0x81, b"hello"), frame(0x82, &[])].concat();
        check(&stream, every_split(&stream), &[Event::Tungstenite(stream.clone()), Event::End]);
    }

    #[test]
    fn control_frames_before_and_after_a_bypassed_message_keep_their_order() {
        let big = binary(2000);
        let ping = frame(0x89, b"ping");
        let pong = frame(0x8A, b"");
        let small = frame(0x81, b"small");
        let stream =
            [ping.clone(), small.clone(), frame(0x82, &big), pong.clone(), frame(0x82, &big), ping.clone()]
                .concat();
        check(
            &stream,
            every_split(&stream),
            &[
                Event::Tungstenite([ping.clone(), small].concat()),
                bin_message(&big),
                Event::Tungstenite(pong),
                bin_message(&big),
                Event::Tungstenite(ping),
                Event::End,
            ],
        );
    }

    #[test]
    fn frames_that_do_not_qualify_pass_byte_for_byte() {
        let big = binary(1000);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("no FIN (and its continuation)", [frame(0x02, &big), frame(0x80, &big)].concat()),
            ("RSV1", frame(0xC2, &big)),
            ("RSV2", frame(0xA2, &big)),
            ("RSV3", frame(0x92, &big)),
            ("unmasked", raw_frame(0x82, &big, false)),
            ("a continuation without a start", frame(0x80, &big)),
            ("a reserved data opcode", frame(0x83, &big)),
            ("a large Ping", frame(0x89, &big)),
        ];
        for (case, stream) in cases {
            for piece in [1, 7, 64, 4096] {
                assert_eq!(
                    run(&stream, piece, Some(MAX)),
                    [Event::Tungstenite(stream.clone()), Event::End],
                    "{case}"
                );
            }
        }
        // A client socket bypasses nothing.
        let stream = frame(0x82, &big);
        assert_eq!(run(&stream, 64, None), [Event::Tungstenite(stream.clone()), Event::End]);
        // Over the limits: tungstenite refuses it with 1009.
        let stream = frame(0x82, &binary(4097));
        for piece in [1, 7, 64, 4096] {
            assert_eq!(run(&stream, piece, Some(4096)), [Event::Tungstenite(stream.clone()), Event::End]);
        }
        // At the limit exactly, it does.
        let payload = binary(4096);
        assert_eq!(run(&frame(0x82, &payload), 64, Some(4096)), [bin_message(&payload), Event::End]);
    }

    #[test]
    fn a_fragmented_message_is_left_alone_and_bypassing_resumes_after_it() {
        let big = binary(1000);
        let fragmented =
            [frame(0x01, &text(600)), frame(0x89, b""), frame(0x00, &text(600)), frame(0x80, &text(600))]
                .concat();
        let stream = [fragmented.clone(), frame(0x82, &big)].concat();
        check(&stream, [1, 2, 5, 64, 4096], &[Event::Tungstenite(fragmented), bin_message(&big), Event::End]);
    }

    #[test]
    fn nothing_is_bypassed_after_a_close_or_a_refused_frame() {
        let big = frame(0x82, &binary(1000));
        for first in [frame(0x88, &[0x03, 0xE8]), frame(0x80, b"x"), frame(0x09, b""), frame(0x8B, b"")] {
            let stream = [first, big.clone()].concat();
            assert_eq!(run(&stream, 64, Some(MAX)), [Event::Tungstenite(stream.clone()), Event::End]);
        }
        // Text or Binary inside a fragmented message: tungstenite refuses it.
        let stream = [frame(0x02, b"a"), big.clone(), frame(0x80, b"b")].concat();
        assert_eq!(run(&stream, 64, Some(MAX)), [Event::Tungstenite(stream.clone()), Event::End]);
    }

    #[test]
    fn invalid_utf8_goes_back_to_tungstenite_as_it_came() {
        let mut payload = text(1000);
        payload[700] = 0xFF;
        let bad = frame(0x81, &payload);
        let ping = frame(0x89, b"p");
        let stream = [ping.clone(), bad, ping.clone()].concat();
        check(&stream, every_split(&stream), &[Event::Tungstenite(stream.clone()), Event::End]);
        // Cut inside a character at the end: invalid as well.
        let mut payload = text(1000);
        payload.truncate(999);
        while std::str::from_utf8(&payload).is_ok() {
            payload.pop();
        }
        let stream = frame(0x81, &payload);
        check(&stream, [1, 64, 4096], &[Event::Tungstenite(stream.clone()), Event::End]);
    }

    #[test]
    fn the_end_of_the_stream_inside_a_bypassed_frame_or_a_header_reaches_tungstenite() {
        let whole = frame(0x82, &binary(1000));
        for cut in [1, 3, 4, 7, 8, 100, whole.len() - 1] {
            let stream = &whole[..cut];
            for piece in [1, 3, 64] {
                assert_eq!(
                    run(stream, piece, Some(MAX)),
                    [Event::Tungstenite(stream.to_vec()), Event::End],
                    "{cut}"
                );
            }
        }
    }

    #[test]
    fn a_length_with_the_top_bit_set_is_refused_where_its_header_starts() {
        let good = frame(0x82, b"hello");
        let big = binary(1000);
        let mut bad = vec![0x82, 0x80 | 127];
        bad.extend_from_slice(&(1u64 << 63).to_be_bytes());
        bad.extend_from_slice(&MASK);
        bad.extend_from_slice(b"payload");
        let stream = [good.clone(), frame(0x82, &big), good.clone(), bad].concat();
        check(
            &stream,
            every_split(&stream),
            &[
                Event::Tungstenite(good.clone()),
                bin_message(&big),
                Event::Tungstenite(good),
                Event::Error(TransportError::LengthTopBit),
            ],
        );
        // Alone: the first read fails.
        let mut bad = vec![0x82, 0x80 | 127];
        bad.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(run(&bad, 3, Some(MAX)), [Event::Error(TransportError::LengthTopBit)]);
    }

    #[test]
    fn the_largest_valid_length_passes() {
        let mut scanner = FrameScanner::default();
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&((1u64 << 63) - 1).to_be_bytes());
        header.extend_from_slice(&MASK);
        assert_eq!(scanner.scan(&header, Some(MAX)), Found::Pass(14));
        // The header and its mask key were read: the whole payload is left.
        assert_eq!(scanner.payload_left, (1 << 63) - 1);
    }

    /// The scanner follows each length form (7-bit, 16-bit, 64-bit) whatever the reads' split:
    /// with the bypass on, the large frames come out as messages exactly where their headers
    /// say, and the small ones around them reach tungstenite whole, so a length misread in any
    /// form moves a boundary and fails here.
    #[test]
    fn follows_frames_of_every_length_form_in_any_split() {
        let small = |lengths: &[usize]| -> Vec<u8> {
            lengths.iter().flat_map(|&length| frame(0x82, &binary(length))).collect()
        };
        let stream =
            [small(&[0, 125, 126]), frame(0x82, &binary(600)), frame(0x82, &binary(70_000)), small(&[3])]
                .concat();
        let expected = [
            Event::Tungstenite(small(&[0, 125, 126])),
            bin_message(&binary(600)),
            bin_message(&binary(70_000)),
            Event::Tungstenite(small(&[3])),
            Event::End,
        ];
        for piece in [1, 2, 3, 7, 13, 4096, stream.len()] {
            assert_eq!(run(&stream, piece, Some(MAX)), expected, "{piece}");
        }
    }

    #[test]
    fn masks_at_any_offset() {
        let payload = binary(37);
        let mut whole = payload.clone();
        apply_mask(&mut whole, MASK, 0);
        for split in 0..payload.len() {
            let mut parts = payload.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask(a, MASK, 0);
            apply_mask(b, MASK, split);
            assert_eq!(parts, whole, "{split}");
        }
        let expected: Vec<u8> = payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]).collect();
        assert_eq!(whole, expected);
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
