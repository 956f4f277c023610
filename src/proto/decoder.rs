//! [`Decoder`]: the peer's bytes in, whole messages and control frames out, every RFC 6455 check
//! on the way (and RFC 7692's, with an [`Inflate`] step).
//!
//! One state machine, after Node `ws`'s receiver: header (its first byte and then its second are
//! checked as soon as they are there, then the extended length and the mask key) → payload → inflate, for
//! a compressed message → message. The header is peeked and consumed only once it is whole, so
//! a caller can feed any split of the stream. The declared length is checked against
//! `max_frame_size` and, summed over the message's fragments, `max_message_size` before
//! anything is reserved; then the frame's payload is reserved at once in the message's buffer.
//!
//! The caller owns the reads. It hands over a staging buffer ([`Decoder::decode`]): a whole
//! single-frame message found there is split off it, unmasked in place, without a copy; other
//! payload bytes move from it into the message's buffer. While a data frame's payload is still
//! to come, [`Decoder::payload_buf`] lends the message's buffer, limited to what is left of the
//! frame, so the caller can read from its IO straight into it: a large payload then reaches
//! its final buffer without passing through the staging buffer at all.
//!
//! Text is validated as it arrives (a message fails at the first bad piece, not at its end).
//! Control frames may come between fragments; they come out as their own events and never
//! touch the message's buffer. After a Close nothing more is decoded; after an error the
//! decoder stays failed and repeats it.

use bytes::{Buf, BufMut, Bytes, BytesMut, buf::Limit};

use crate::proto::{
    error::ProtocolError,
    frame::{FrameHeader, MAX_CONTROL_PAYLOAD, OpCode, Role, apply_mask},
    utf8::Utf8Validator,
};

/// What RFC 7692 §7.2.1 has the sender remove from each compressed message and the receiver
/// append before inflating it.
pub(crate) const SYNC_FLUSH_TRAILER: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// The most inflated bytes made room for in one step.
const INFLATE_CHUNK: usize = 16 * 1024;

/// The most reserved at once for a frame's payload when there is no limit: the buffer grows
/// as the bytes come, rather than on the peer's word.
const RESERVE_UNLIMITED: u64 = 1 << 20;

/// How the decoder is set up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecoderConfig {
    /// Our side: a server requires masked frames, a client refuses them.
    pub(crate) role: Role,
    /// The longest frame payload, on the wire.
    pub(crate) max_frame_size: Option<usize>,
    /// The longest message: its fragments summed, or its inflated size.
    pub(crate) max_message_size: Option<usize>,
}

/// The inflate step of permessage-deflate (RFC 7692), which `deflate/` implements over its
/// inflater; the decoder feeds it each compressed frame's unmasked payload, then the trailer.
pub(crate) trait Inflate {
    /// Inflates from `input` into `output`'s spare capacity, without growing `output`.
    /// `sync_flush` is set while the trailer is fed and the message's output drained.
    ///
    /// # Errors
    ///
    /// Input that does not inflate, described.
    fn inflate(&mut self, input: &[u8], output: &mut Vec<u8>, sync_flush: bool) -> Result<Inflated, String>;

    /// The message is done: reset for the next one if the peer starts each afresh
    /// (`*_no_context_takeover`) or ended its deflate stream (`stream_ended`).
    fn end_message(&mut self, stream_ended: bool);
}

/// What one [`Inflate::inflate`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inflated {
    /// Input bytes taken.
    pub(crate) consumed: usize,
    /// Output bytes made.
    pub(crate) produced: usize,
    /// The deflate stream ended (a block with BFINAL): nothing more may follow in the message.
    pub(crate) stream_end: bool,
}

/// A Close's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseFrame {
    /// A code allowed on the wire (RFC 6455 §7.4).
    pub(crate) code: u16,
    /// Valid UTF-8, at most 123 bytes.
    pub(crate) reason: Bytes,
}

/// What the decoder hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A whole text message, valid UTF-8.
    Text(Bytes),
    /// A whole binary message.
    Binary(Bytes),
    /// A Ping's payload.
    Ping(Bytes),
    /// A Pong's payload.
    Pong(Bytes),
    /// The peer's Close; `None` when it had no payload.
    Close(Option<CloseFrame>),
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    fin: bool,
    mask: [u8; 4],
    /// Payload bytes still to come.
    left: u64,
    /// Payload bytes taken so far (the mask's offset).
    taken: u64,
}

/// The data message being assembled.
#[derive(Debug)]
struct Message {
    text: bool,
    compressed: bool,
    /// The payload of an uncompressed message.
    buf: BytesMut,
    /// The bytes of `buf` already unmasked and checked; what follows came from the caller's
    /// IO through [`Decoder::payload_buf`].
    checked: usize,
    /// The inflated payload of a compressed message.
    inflated: Vec<u8>,
    /// The size so far: announced on the wire, or inflated.
    size: u64,
    /// The deflate stream ended with a final block.
    stream_ended: bool,
    utf8: Utf8Validator,
}

#[derive(Debug)]
enum State {
    /// Waiting for a frame header.
    Header,
    /// Reading the payload of a control frame, which waits whole in the caller's buffer.
    Control { opcode: OpCode, header_len: usize, len: usize, mask: [u8; 4] },
    /// Reading the payload of a data frame into the message.
    Data(Frame),
    /// A Close came out: nothing more is read.
    Closed,
    /// The peer broke the protocol.
    Failed(ProtocolError),
}

/// The decoder (see the module docs).
pub(crate) struct Decoder {
    config: DecoderConfig,
    inflater: Option<Box<dyn Inflate + Send>>,
    state: State,
    message: Option<Message>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("config", &self.config)
            .field("compression", &self.inflater.is_some())
            .field("state", &self.state)
            .field("message", &self.message)
            .finish()
    }
}

impl Decoder {
    /// A decoder without an extension: every RSV bit fails.
    pub(crate) fn new(config: DecoderConfig) -> Self {
        Self { config, inflater: None, state: State::Header, message: None }
    }

    /// A decoder for a connection that negotiated permessage-deflate: RSV1 on a data message's
    /// first frame marks it compressed, and `inflater` inflates it.
    pub(crate) fn with_inflater(config: DecoderConfig, inflater: Box<dyn Inflate + Send>) -> Self {
        Self { config, inflater: Some(inflater), state: State::Header, message: None }
    }

    /// Whether a Close has come out.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Decodes from `src`, the stream's next bytes, up to the next event: `Ok(None)` when more
    /// bytes are needed (all of `src` has then been taken or is an unfinished header or control
    /// frame, which stays there). After a Close, the rest of the stream is dropped.
    ///
    /// # Errors
    ///
    /// What the peer did wrong, then the same error on every call.
    pub(crate) fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        let result = self.step(src);
        if let Err(error) = &result {
            self.state = State::Failed(error.clone());
            self.message = None;
        }
        result
    }

    /// Lends the buffer the current data frame's payload goes to, limited to what is left of
    /// the frame, so that the caller reads into it from its IO (then calls
    /// [`decode`](Self::decode) again, with an empty `src`). `None` unless the decoder waits
    /// for the payload of an uncompressed data frame.
    pub(crate) fn payload_buf(&mut self) -> Option<Limit<&mut BytesMut>> {
        let State::Data(frame) = &self.state else { return None };
        let message = self.message.as_mut()?;
        if message.compressed || frame.left == 0 {
            return None;
        }
        let left = usize::try_from(frame.left).unwrap_or(usize::MAX);
        Some((&mut message.buf).limit(left))
    }

    fn step(&mut self, src: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        loop {
            match &self.state {
                State::Failed(error) => return Err(error.clone()),
                State::Closed => {
                    src.clear();
                    return Ok(None);
                }
                State::Header => match self.read_header(src)? {
                    Started::NeedMore => return Ok(None),
                    Started::Frame => {}
                    Started::Whole(event) => return Ok(Some(event)),
                },
                &State::Control { opcode, header_len, len, mask } => {
                    if src.len() < header_len + len {
                        return Ok(None);
                    }
                    src.advance(header_len);
                    let mut payload = src.split_to(len);
                    apply_mask(&mut payload, mask, 0);
                    self.state = State::Header;
                    return self.control(opcode, payload.freeze()).map(Some);
                }
                &State::Data(mut frame) => {
                    let compressed = self.message.as_ref().is_some_and(|m| m.compressed);
                    let progress = if compressed {
                        self.inflate_frame(&mut frame, src)?
                    } else {
                        self.read_payload(&mut frame, src)?
                    };
                    if frame.left > 0 {
                        self.state = State::Data(frame);
                        if !progress {
                            return Ok(None);
                        }
                        continue;
                    }
                    self.state = State::Header;
                    if frame.fin {
                        return self.end_message().map(Some);
                    }
                }
            }
        }
    }

    /// Checks the header at the start of `src` as far as it has arrived, and starts its frame
    /// once it is whole.
    fn read_header(&mut self, src: &mut BytesMut) -> Result<Started, ProtocolError> {
        // Everything the first byte decides, then the second (the mask bit), before the rest of
        // the header is there.
        let Some(&b0) = src.first() else { return Ok(Started::NeedMore) };
        let bits = (b0 >> 4) & 0b111;
        let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(ProtocolError::UnknownOpcode(b0 & 0x0F))?;
        let rsv1 = bits & 0b100 != 0;
        if bits & 0b011 != 0 || (rsv1 && self.inflater.is_none()) {
            return Err(ProtocolError::ReservedBits { bits });
        }
        if rsv1 && !matches!(opcode, OpCode::Text | OpCode::Binary) {
            return Err(ProtocolError::MisplacedRsv1);
        }
        let fin = b0 & 0x80 != 0;
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        match opcode {
            OpCode::Continuation if self.message.is_none() => {
                return Err(ProtocolError::UnexpectedContinuation);
            }
            OpCode::Text | OpCode::Binary if self.message.is_some() => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            _ => {}
        }
        let Some(&b1) = src.get(1) else { return Ok(Started::NeedMore) };
        let masked = b1 & 0x80 != 0;
        match self.config.role {
            Role::Server if !masked => return Err(ProtocolError::UnmaskedFrame),
            Role::Client if masked => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let Some(header) = FrameHeader::parse(src)? else { return Ok(Started::NeedMore) };
        if opcode.is_control() {
            // The length as decoded, not its 7-bit field: a length in a longer form than needed
            // is accepted (as tungstenite does), whatever the frame.
            if header.payload_len > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooLong);
            }
            if opcode == OpCode::Close && header.payload_len == 1 {
                return Err(ProtocolError::CloseOneByte);
            }
            // At most 125 bytes: it waits whole in `src`.
            self.state = State::Control {
                opcode,
                header_len: header.len,
                len: header.payload_len as usize,
                mask: header.mask,
            };
            return Ok(Started::Frame);
        }
        // A data frame: the limits, before anything is reserved.
        let payload_len = header.payload_len;
        if let Some(max) = self.config.max_frame_size {
            if payload_len > max as u64 {
                return Err(ProtocolError::FrameTooBig { size: payload_len, max });
            }
        }
        let compressed = self.message.as_ref().map_or(rsv1, |m| m.compressed);
        let size_before = self.message.as_ref().map_or(0, |m| m.size);
        if !compressed {
            let size = size_before.saturating_add(payload_len);
            if let Some(max) = self.config.max_message_size {
                if size > max as u64 {
                    return Err(ProtocolError::MessageTooBig { size, max });
                }
            }
        }
        // A whole single-frame message in `src`: split off as it is, no copy.
        if fin && self.message.is_none() && !compressed {
            if let Some(len) = usize::try_from(payload_len).ok().filter(|len| src.len() - header.len >= *len)
            {
                src.advance(header.len);
                let mut payload = src.split_to(len);
                apply_mask(&mut payload, header.mask, 0);
                return whole(opcode == OpCode::Text, payload.freeze()).map(Started::Whole);
            }
        }
        src.advance(header.len);
        let message = self.message.get_or_insert_with(|| Message {
            text: opcode == OpCode::Text,
            compressed,
            buf: BytesMut::new(),
            checked: 0,
            inflated: Vec::new(),
            size: 0,
            stream_ended: false,
            utf8: Utf8Validator::default(),
        });
        if !compressed {
            // The inflated size of a compressed message is counted as it is made.
            message.size = size_before + payload_len;
            let limited = self.config.max_message_size.is_some() || self.config.max_frame_size.is_some();
            let reserve = if limited { payload_len } else { payload_len.min(RESERVE_UNLIMITED) };
            message.buf.reserve(usize::try_from(reserve).unwrap_or(0));
        }
        self.state = State::Data(Frame { fin, mask: header.mask, left: payload_len, taken: 0 });
        Ok(Started::Frame)
    }

    /// Takes the payload bytes of an uncompressed data frame that have arrived: those the
    /// caller read into [`payload_buf`](Self::payload_buf), then those in `src`. Whether any
    /// were there.
    fn read_payload(&mut self, frame: &mut Frame, src: &mut BytesMut) -> Result<bool, ProtocolError> {
        let Some(message) = self.message.as_mut() else { return Ok(false) };
        let left = usize::try_from(frame.left).unwrap_or(usize::MAX);
        // More than the frame's rest cannot have come through the limited buffer; never take it.
        message.buf.truncate(message.checked.saturating_add(left));
        let direct = message.buf.len() - message.checked;
        let from_src = (left - direct).min(src.len());
        message.buf.extend_from_slice(&src[..from_src]);
        src.advance(from_src);
        let new = &mut message.buf[message.checked..];
        let taken = new.len();
        if taken == 0 {
            return Ok(false);
        }
        apply_mask(new, frame.mask, (frame.taken % 4) as usize);
        if message.text && message.utf8.feed(new).is_err() {
            return Err(ProtocolError::InvalidUtf8);
        }
        message.checked = message.buf.len();
        frame.taken += taken as u64;
        frame.left -= taken as u64;
        Ok(true)
    }

    /// Unmasks and inflates the payload bytes of a compressed frame that are in `src`. Whether
    /// any were there.
    fn inflate_frame(&mut self, frame: &mut Frame, src: &mut BytesMut) -> Result<bool, ProtocolError> {
        let (Some(message), Some(inflater)) = (self.message.as_mut(), self.inflater.as_deref_mut()) else {
            return Ok(false);
        };
        let n = usize::try_from(frame.left).unwrap_or(usize::MAX).min(src.len());
        if n == 0 {
            return Ok(false);
        }
        let mut payload = src.split_to(n);
        apply_mask(&mut payload, frame.mask, (frame.taken % 4) as usize);
        let mut input = &payload[..];
        while !input.is_empty() {
            if message.stream_ended {
                return Err(ProtocolError::CorruptCompressedData(
                    "data after the final deflate block".into(),
                ));
            }
            let (consumed, _) = inflate_into(inflater, message, input, false, self.config.max_message_size)?;
            if consumed == 0 {
                return Err(ProtocolError::CorruptCompressedData("the inflater took no input".into()));
            }
            input = &input[consumed..];
        }
        frame.taken += n as u64;
        frame.left -= n as u64;
        Ok(true)
    }

    /// The message's last frame is in: the trailer of a compressed one, the end of its UTF-8,
    /// the event.
    fn end_message(&mut self) -> Result<Event, ProtocolError> {
        let Some(mut message) = self.message.take() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        if message.compressed {
            let Some(inflater) = self.inflater.as_deref_mut() else {
                return Err(ProtocolError::ReservedBits { bits: 0b100 });
            };
            let max = self.config.max_message_size;
            let mut trailer = &SYNC_FLUSH_TRAILER[..];
            while !message.stream_ended && !trailer.is_empty() {
                let (consumed, produced) = inflate_into(inflater, &mut message, trailer, true, max)?;
                if consumed == 0 && produced == 0 {
                    break;
                }
                trailer = &trailer[consumed..];
            }
            // Drain what the inflater still holds: it is done once it leaves room unused.
            loop {
                let room = reserve_room(&mut message, max);
                let (_, produced) = inflate_into(inflater, &mut message, &[], true, max)?;
                if produced < room {
                    break;
                }
            }
            inflater.end_message(message.stream_ended);
        }
        if message.text && message.utf8.finish().is_err() {
            return Err(ProtocolError::InvalidUtf8);
        }
        let payload = if message.compressed { Bytes::from(message.inflated) } else { message.buf.freeze() };
        Ok(if message.text { Event::Text(payload) } else { Event::Binary(payload) })
    }

    /// A whole control frame's payload, unmasked.
    fn control(&mut self, opcode: OpCode, payload: Bytes) -> Result<Event, ProtocolError> {
        Ok(match opcode {
            OpCode::Ping => Event::Ping(payload),
            OpCode::Pong => Event::Pong(payload),
            _ => {
                let close = parse_close(payload)?;
                self.state = State::Closed;
                self.message = None;
                Event::Close(close)
            }
        })
    }
}

/// What reading a header led to.
enum Started {
    /// The header has not arrived whole.
    NeedMore,
    /// A frame has started: its payload comes next.
    Frame,
    /// A whole single-frame message was in the buffer.
    Whole(Event),
}

/// A single-frame message, whole and unmasked.
fn whole(text: bool, payload: Bytes) -> Result<Event, ProtocolError> {
    if text {
        std::str::from_utf8(&payload).map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(Event::Text(payload))
    } else {
        Ok(Event::Binary(payload))
    }
}

/// A Close's payload: nothing, or a code allowed on the wire and a UTF-8 reason.
fn parse_close(payload: Bytes) -> Result<Option<CloseFrame>, ProtocolError> {
    match *payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::CloseOneByte),
        [a, b, ref reason @ ..] => {
            // The reason first: a Close bad in both ways fails with 1007, as tungstenite's does.
            std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            let code = u16::from_be_bytes([a, b]);
            if !crate::proto::close::is_allowed_on_wire(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            Ok(Some(CloseFrame { code, reason: payload.slice(2..) }))
        }
    }
}

/// Makes room in a compressed message's output for the next step: one chunk, or what is left
/// of the limit and one byte more (so that reaching the limit exactly is not taken for passing
/// it). Returns the room there is.
fn reserve_room(message: &mut Message, max: Option<usize>) -> usize {
    let mut room = INFLATE_CHUNK;
    // The output never grows past the limit and one byte: a bomb stops there.
    let ceiling = max.map_or(usize::MAX, |max| max.saturating_add(1));
    room = room.min(ceiling.saturating_sub(message.inflated.len())).max(1);
    let output = &mut message.inflated;
    let want = output.len().saturating_add(room);
    if output.capacity() < want {
        // Doubling, as `reserve` would, but never past the ceiling.
        let grown = output.capacity().saturating_mul(2).max(want).min(ceiling.max(want));
        output.reserve_exact(grown - output.len());
    }
    output.capacity() - output.len()
}

/// One inflate step into the message's output, counted against the limit and checked for
/// UTF-8. Returns the input bytes consumed and the bytes made.
fn inflate_into(
    inflater: &mut (dyn Inflate + Send),
    message: &mut Message,
    input: &[u8],
    sync_flush: bool,
    max: Option<usize>,
) -> Result<(usize, usize), ProtocolError> {
    reserve_room(message, max);
    let before = message.inflated.len();
    let result = inflater
        .inflate(input, &mut message.inflated, sync_flush)
        .map_err(ProtocolError::CorruptCompressedData)?;
    let produced = message.inflated.len().saturating_sub(before);
    message.size = message.size.saturating_add(produced as u64);
    if let Some(max) = max {
        if message.size > max as u64 {
            return Err(ProtocolError::MessageTooBig { size: message.size, max });
        }
    }
    if result.stream_end {
        message.stream_ended = true;
    }
    let made = message.inflated.get(before..).unwrap_or_default();
    if message.text && message.utf8.feed(made).is_err() {
        return Err(ProtocolError::InvalidUtf8);
    }
    Ok((result.consumed.min(input.len()), produced))
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
