//! Differential: the crate's protocol core (`src/proto/`, compiled here through `#[path]`)
//! against tungstenite, both as a server reading the same client bytes.
//!
//! The input's first four bytes seed the splits; the rest is the client's byte stream. Ours is
//! fed the stream in pieces of random sizes, sometimes reading a piece straight into the
//! payload buffer it lends (`Decoder::payload_buf`); tungstenite reads the same stream from an
//! in-memory reader that returns the same pieces. Both have `max_frame_size` 1 KiB and
//! `max_message_size` 4 KiB.
//!
//! Invariants: ours reads the same whatever the splits; the same messages (Text, Binary, Ping, Pong) in the same order, then the same
//! end: no verdict when the stream just stops, or the same close code (the code of the peer's
//! Close, which is echoed, or the code a violation fails the connection with). The differences
//! RFC 6455 decides are allowed, each in `allowed` below and in docs/conformance.md.
#![no_main]

use std::io::{self, Read, Write};

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::{
    self, Message,
    error::{CapacityError, ProtocolError as TProtocolError},
    protocol::{Role as TRole, WebSocket, WebSocketConfig},
};

#[allow(dead_code, unused_imports)]
#[path = "../../src/proto/mod.rs"]
mod proto;

use proto::{
    decoder::{Decoder, DecoderConfig, Event},
    error::ProtocolError,
    frame::Role,
};

const MAX_FRAME: usize = 1024;
const MAX_MESSAGE: usize = 4096;

/// What a decoder handed out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
}

/// How the stream ended for a decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The stream stopped with no verdict.
    Incomplete,
    /// The peer's Close arrived (its code, echoed; `None` for an empty Close).
    Close(Option<u16>),
    /// A violation: the connection fails with this code.
    Fail(u16),
}

/// Random piece sizes from the seed (xorshift).
struct Splits(u32);

impl Splits {
    fn next(&mut self) -> u32 {
        let mut x = self.0.max(1);
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    fn piece(&mut self) -> usize {
        let r = self.next();
        1 + (r as usize >> 4) % if r & 1 == 0 { 8 } else { 700 }
    }
}

fn pieces(seed: u32, len: usize) -> Vec<usize> {
    let mut splits = Splits(seed);
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < len {
        let size = splits.piece().min(len - total);
        sizes.push(size);
        total += size;
    }
    sizes
}

fn ours(stream: &[u8], sizes: &[usize], seed: u32) -> (Vec<Item>, End, Option<ProtocolError>) {
    let config = DecoderConfig {
        role: Role::Server,
        max_frame_size: Some(MAX_FRAME),
        max_message_size: Some(MAX_MESSAGE),
    };
    let mut decoder = Decoder::new(config);
    let mut coin = Splits(seed ^ 0x9E37_79B9);
    let mut items = Vec::new();
    let mut src = BytesMut::new();
    let mut at = 0;
    for &size in sizes {
        let mut piece = &stream[at..at + size];
        at += size;
        // Sometimes the piece's first bytes go straight into the payload's buffer, as a
        // socket's read would (only when nothing earlier waits in `src`).
        if src.is_empty() && coin.next() & 1 == 0 {
            if let Some(mut buf) = decoder.payload_buf() {
                let n = buf.remaining_mut().min(piece.len());
                buf.put_slice(&piece[..n]);
                piece = &piece[n..];
            }
        }
        src.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(Event::Text(b))) => items.push(Item::Text(b)),
                Ok(Some(Event::Binary(b))) => items.push(Item::Binary(b)),
                Ok(Some(Event::Ping(b))) => items.push(Item::Ping(b)),
                Ok(Some(Event::Pong(b))) => items.push(Item::Pong(b)),
                Ok(Some(Event::Close(close))) => {
                    if let Some(close) = &close {
                        assert!(std::str::from_utf8(&close.reason).is_ok());
                    }
                    return (items, End::Close(close.map(|c| c.code)), None);
                }
                Ok(None) => break,
                Err(error) => {
                    // It stays failed.
                    assert_eq!(decoder.decode(&mut BytesMut::new()), Err(error.clone()));
                    return (items, End::Fail(error.close_code()), Some(error));
                }
            }
        }
    }
    for item in &items {
        if let Item::Text(text) = item {
            assert!(std::str::from_utf8(text).is_ok(), "text that is not UTF-8 came out");
        }
    }
    (items, End::Incomplete, None)
}

/// The client's stream, handed to tungstenite in the same pieces; what it writes is dropped.
struct Pieces<'a> {
    stream: &'a [u8],
    sizes: &'a [usize],
    /// Bytes of the current piece not read yet.
    left: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let Some((&size, rest)) = self.sizes.split_first() else { return Ok(0) };
            self.sizes = rest;
            self.left = size;
        }
        let n = self.left.min(buf.len());
        buf[..n].copy_from_slice(&self.stream[..n]);
        self.stream = &self.stream[n..];
        self.left -= n;
        Ok(n)
    }
}

impl Write for Pieces<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn theirs(stream: &[u8], sizes: &[usize]) -> (Vec<Item>, End) {
    let config =
        WebSocketConfig::default().max_frame_size(Some(MAX_FRAME)).max_message_size(Some(MAX_MESSAGE));
    let io = Pieces { stream, sizes, left: 0 };
    let mut ws = WebSocket::from_raw_socket(io, TRole::Server, Some(config));
    let mut items = Vec::new();
    loop {
        let end = match ws.read() {
            Ok(Message::Text(t)) => {
                items.push(Item::Text(Bytes::from(t)));
                continue;
            }
            Ok(Message::Binary(b)) => {
                items.push(Item::Binary(b));
                continue;
            }
            Ok(Message::Ping(b)) => {
                items.push(Item::Ping(b));
                continue;
            }
            Ok(Message::Pong(b)) => {
                items.push(Item::Pong(b));
                continue;
            }
            // An invalid code comes back replaced by 1002, which is what tungstenite answers.
            Ok(Message::Close(close)) => End::Close(close.map(|c| u16::from(c.code))),
            Ok(Message::Frame(_)) => unreachable!("tungstenite reads no raw frames"),
            Err(tungstenite::Error::Protocol(TProtocolError::ResetWithoutClosingHandshake)) => {
                End::Incomplete
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => End::Incomplete,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => End::Incomplete,
            Err(tungstenite::Error::Capacity(CapacityError::MessageTooLong { .. })) => End::Fail(1009),
            Err(tungstenite::Error::Utf8(_)) => End::Fail(1007),
            Err(tungstenite::Error::Capacity(_) | tungstenite::Error::Protocol(_)) => End::Fail(1002),
            Err(other) => panic!("unexpected tungstenite error: {other}"),
        };
        return (items, end);
    }
}

impl End {
    /// The Close the server sends back: the peer's code echoed (or an empty Close), or the
    /// code of the violation. Failing with 1002 and answering a Close with 1002 look the same
    /// on the wire (tungstenite answers a Close with a code not allowed that way).
    fn reply(&self) -> Option<Option<u16>> {
        match *self {
            Self::Incomplete => None,
            Self::Close(code) => Some(code),
            Self::Fail(code) => Some(Some(code)),
        }
    }
}

/// The differences RFC 6455 decides (docs/conformance.md, "The protocol core against
/// tungstenite").
fn allowed(our_end: &End, error: Option<&ProtocolError>, their_end: &End) -> bool {
    use ProtocolError as E;
    match (our_end, their_end) {
        // Failing fast (§5.2, §5.5, §8.1 "as soon as"): ours fails on the first bytes that
        // break a rule; tungstenite waits for the whole frame, which never came.
        (End::Fail(_), End::Incomplete) => true,
        // A 64-bit length with its top bit set is a protocol error (§5.2), not a size error.
        (End::Fail(1002), End::Fail(1009)) if matches!(error, Some(E::LengthTopBit)) => true,
        // A frame that breaks a rule of its first two bytes and is over the frame limit too:
        // ours reports the rule (read first), tungstenite the size (checked before the rest).
        (End::Fail(1002), End::Fail(1009)) => matches!(
            error,
            Some(
                E::ReservedBits { .. }
                    | E::MisplacedRsv1
                    | E::ControlFrameTooLong
                    | E::FragmentedControlFrame
                    | E::UnexpectedContinuation
                    | E::ExpectedContinuation
                    | E::UnmaskedFrame
                    | E::CloseOneByte
            )
        ),
        // 1014 (Bad Gateway) is registered with IANA (§7.4.2, §11.7): ours accepts and echoes it,
        // tungstenite answers 1002.
        (End::Close(Some(1014)), End::Close(Some(1002))) => true,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, stream)) = data.split_first_chunk::<4>() else { return };
    let seed = u32::from_le_bytes(*seed);
    let sizes = pieces(seed, stream.len());
    let (our_items, our_end, error) = ours(stream, &sizes, seed);
    // Ours does not depend on the splits: the whole stream at once gives the same.
    let whole = ours(stream, &[stream.len()], seed);
    assert!(whole == (our_items.clone(), our_end.clone(), error.clone()), "the splits changed our reading");
    let (their_items, their_end) = theirs(stream, &sizes);
    if our_end.reply() == their_end.reply() || allowed(&our_end, error.as_ref(), &their_end) {
        assert_eq!(
            our_items, their_items,
            "messages differ (ours ended {our_end:?}, tungstenite {their_end:?})"
        );
    } else {
        panic!(
            "ends differ: ours {our_end:?} ({error:?}), tungstenite {their_end:?}; {} and {} messages before",
            our_items.len(),
            their_items.len()
        );
    }
});
