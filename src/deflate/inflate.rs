//! [`Inflater`]: the receive side of permessage-deflate, below tungstenite.
//!
//! tungstenite refuses frames with RSV1 set, so compressed messages are inflated before it
//! reads them. The inflater parses the peer's frames from the bytes of the connection and
//! writes the stream tungstenite reads:
//! - every frame that is not part of a compressed message passes byte for byte, so that
//!   tungstenite's own checks still apply to it (RSV1 on a control frame or a continuation, or
//!   RSV1 when compression was not negotiated, fails there with 1002);
//! - a compressed message (RSV1 on its first frame) is inflated and written as plain frames of
//!   at most one chunk each, RSV1 cleared: the first with the message's opcode, then
//!   continuations, the last with FIN. Frames from a client are re-emitted masked with an
//!   all-zero key, which unmasks to itself.
//!
//! Inflation is bounded: output is made one chunk at a time, only once tungstenite has taken
//! the previous one, and a message whose inflated size passes `max_message_size` fails with
//! [`TransportError::TooBig`] as soon as it does. Compressed frames are held to
//! `max_frame_size` on the wire.

use bytes::{Buf, BufMut, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};

use super::{compress::SYNC_FLUSH_TRAILER, pool};
use crate::{
    proto::{
        self,
        decoder::Inflated,
        frame::{FrameHeader, OpCode, apply_mask},
    },
    socket::TransportError,
};

/// The most inflated bytes in one re-emitted frame.
const CHUNK: usize = 16 * 1024;

/// How an [`Inflater`] is set up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InflaterConfig {
    /// We are the server: the peer's frames are masked, and re-emitted frames must be too.
    pub(crate) server: bool,
    /// The peer starts each message with an empty context: reset after each message.
    pub(crate) reset_after_message: bool,
    pub(crate) max_message_size: Option<usize>,
    pub(crate) max_frame_size: Option<usize>,
}

#[derive(Debug)]
enum ReadState {
    /// Reading a frame header.
    Header,
    /// Passing the rest of a frame through.
    PassThrough { left: u64 },
    /// Inflating the payload of a frame of a compressed message.
    Inflate { left: u64, mask: [u8; 4], offset: usize, fin: bool },
    /// The message's last frame is in: feeding the trailer, then draining the output.
    Finish { trailer_fed: usize },
}

/// The compressed message being inflated.
#[derive(Debug)]
struct Message {
    /// Text or Binary.
    opcode: OpCode,
    /// A frame with the opcode has been written: what follows are continuations.
    started: bool,
    /// Inflated bytes so far.
    size: usize,
    /// The deflate stream ended with a final block (BFINAL): nothing more may follow.
    stream_ended: bool,
}

/// Parses the peer's frames and inflates its compressed messages (see the module docs).
#[derive(Debug)]
pub(crate) struct Inflater {
    config: InflaterConfig,
    /// Made on the first compressed message.
    decompress: Option<Decompress>,
    /// Bytes from the connection, not processed yet.
    pub(crate) input: BytesMut,
    /// Bytes for tungstenite.
    pub(crate) output: BytesMut,
    /// Inflated bytes not yet written as a frame.
    pending: Vec<u8>,
    state: ReadState,
    message: Option<Message>,
    /// A fault found after output that is still delivered: reads fail with it once that is done.
    pub(crate) fault: Option<TransportError>,
}

impl Inflater {
    pub(crate) fn new(config: InflaterConfig) -> Self {
        Self {
            config,
            decompress: None,
            input: BytesMut::new(),
            output: BytesMut::new(),
            pending: Vec::new(),
            state: ReadState::Header,
            message: None,
            fault: None,
        }
    }

    /// The largest payload of a re-emitted frame.
    fn chunk(&self) -> usize {
        self.config.max_frame_size.map_or(CHUNK, |max| max.clamp(1, CHUNK))
    }

    /// Processes input until there is a chunk of output, or the input runs out.
    ///
    /// # Errors
    ///
    /// What the peer did wrong. Output made before the error is still in `output`.
    pub(crate) fn process(&mut self) -> Result<(), TransportError> {
        loop {
            if self.output.len() >= self.chunk() {
                return Ok(());
            }
            let progressed = match self.state {
                ReadState::Header => self.read_header()?,
                ReadState::PassThrough { left } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(self.input.len());
                    self.output.put(self.input.split_to(n));
                    let left = left - n as u64;
                    self.state = if left == 0 { ReadState::Header } else { ReadState::PassThrough { left } };
                    n > 0
                }
                ReadState::Inflate { left, mask, offset, fin } => {
                    self.inflate_payload(left, mask, offset, fin)?
                }
                ReadState::Finish { trailer_fed } => self.finish(trailer_fed)?,
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Reads a frame header once it has arrived whole, and decides what to do with the frame.
    fn read_header(&mut self) -> Result<bool, TransportError> {
        let Some(header) = FrameHeader::parse(&self.input)? else { return Ok(false) };
        let data = header.opcode == 1 || header.opcode == 2;
        let ours = header.masked == self.config.server && !header.rsv2 && !header.rsv3;
        if data && self.message.is_some() {
            return Err(TransportError::Protocol("a new data frame before the compressed message ended"));
        }
        let starts_compressed = data && header.rsv1 && ours;
        let continues_compressed = header.opcode == 0 && !header.rsv1 && ours && self.message.is_some();
        if !(starts_compressed || continues_compressed) {
            // Everything else goes to tungstenite as it came.
            self.output.put(self.input.split_to(header.len));
            self.state = ReadState::PassThrough { left: header.payload_len };
            return Ok(true);
        }
        if let Some(max) = self.config.max_frame_size {
            if header.payload_len > max as u64 {
                return Err(TransportError::TooBig { size: header.payload_len, max });
            }
        }
        self.input.advance(header.len);
        if starts_compressed {
            let opcode = if header.opcode == OpCode::Text.bits() { OpCode::Text } else { OpCode::Binary };
            self.message = Some(Message { opcode, started: false, size: 0, stream_ended: false });
        }
        self.state =
            ReadState::Inflate { left: header.payload_len, mask: header.mask, offset: 0, fin: header.fin };
        Ok(true)
    }

    /// Inflates what has arrived of a compressed frame's payload, one chunk of output at most.
    fn inflate_payload(
        &mut self,
        left: u64,
        mask: [u8; 4],
        offset: usize,
        fin: bool,
    ) -> Result<bool, TransportError> {
        if left == 0 {
            self.state = if fin { ReadState::Finish { trailer_fed: 0 } } else { ReadState::Header };
            return Ok(true);
        }
        let available = usize::try_from(left).unwrap_or(usize::MAX).min(self.input.len());
        if available == 0 {
            return Ok(false);
        }
        if self.message.as_ref().is_some_and(|m| m.stream_ended) {
            return Err(TransportError::CorruptCompressedData("data after the final deflate block".into()));
        }
        apply_mask(&mut self.input[..available], mask, offset);
        let (consumed, produced) = self.inflate(available, FlushDecompress::None)?;
        // What was unmasked and not consumed is masked again, so that the next call can
        // unmask it from `offset` as if untouched.
        apply_mask(&mut self.input[consumed..available], mask, offset + consumed);
        self.input.advance(consumed);
        let left = left - consumed as u64;
        self.state = ReadState::Inflate { left, mask, offset: (offset + consumed) % 4, fin };
        Ok(consumed > 0 || produced > 0)
    }

    /// Feeds the trailer the sender removed, drains the output and ends the message.
    fn finish(&mut self, trailer_fed: usize) -> Result<bool, TransportError> {
        let ended = self.message.as_ref().is_some_and(|m| m.stream_ended);
        if !ended && trailer_fed < SYNC_FLUSH_TRAILER.len() {
            let trailer = &SYNC_FLUSH_TRAILER[trailer_fed..];
            let (consumed, produced) = self.inflate_bytes(trailer, FlushDecompress::Sync)?;
            // An inflater that takes none of it has nothing more to give: drain.
            let fed = if consumed == 0 && produced == 0 {
                SYNC_FLUSH_TRAILER.len()
            } else {
                trailer_fed + consumed
            };
            self.state = ReadState::Finish { trailer_fed: fed };
            return Ok(true);
        }
        // Drain what the inflater still holds, until it gives less than it had room for.
        self.make_room();
        let room = self.pending.capacity() - self.pending.len();
        let (_, produced) = self.inflate_bytes(&[], FlushDecompress::Sync)?;
        if produced < room {
            self.end_message();
        }
        Ok(true)
    }

    /// Inflates the first `len` bytes of `input` (already unmasked): returns how many were
    /// consumed and how many bytes came out.
    fn inflate(&mut self, len: usize, flush: FlushDecompress) -> Result<(usize, usize), TransportError> {
        // Lend the input out while the inflater borrows `self`; the caller advances past what
        // was consumed.
        let input = std::mem::take(&mut self.input);
        let result = self.inflate_bytes(&input[..len], flush);
        self.input = input;
        result
    }

    /// Gives `pending` its room: one chunk.
    fn make_room(&mut self) {
        if self.pending.capacity() == 0 {
            self.pending = Vec::with_capacity(self.chunk());
        }
    }

    /// Runs the inflater over `input`, its output bounded by the room left in `pending`, and
    /// writes a frame once a chunk is full. Returns the bytes consumed and produced.
    fn inflate_bytes(
        &mut self,
        input: &[u8],
        flush: FlushDecompress,
    ) -> Result<(usize, usize), TransportError> {
        self.make_room();
        let decompress = self.decompress.get_or_insert_with(pool::take_inflater);
        let (before_in, before_out) = (decompress.total_in(), decompress.total_out());
        // `decompress_vec` writes into the spare capacity only, never growing the vector.
        let status = decompress
            .decompress_vec(input, &mut self.pending, flush)
            .map_err(|e| TransportError::CorruptCompressedData(e.to_string()))?;
        let consumed = usize::try_from(decompress.total_in() - before_in).unwrap_or(0);
        let produced = usize::try_from(decompress.total_out() - before_out).unwrap_or(0);
        let message = self.message.as_mut().ok_or(TransportError::Protocol("inflating outside a message"))?;
        if status == Status::StreamEnd {
            message.stream_ended = true;
        }
        message.size = message.size.saturating_add(produced);
        if let Some(max) = self.config.max_message_size {
            if message.size > max {
                return Err(TransportError::TooBig { size: message.size as u64, max });
            }
        }
        if self.pending.len() >= self.chunk() {
            self.emit(false);
        }
        Ok((consumed, produced))
    }

    /// Writes the pending inflated bytes as one frame of the message.
    fn emit(&mut self, fin: bool) {
        let Some(message) = self.message.as_mut() else { return };
        let opcode = if message.started { OpCode::Continuation } else { message.opcode };
        message.started = true;
        let len = self.pending.len();
        // An all-zero mask key on a server: the payload unmasks to itself.
        let mask = self.config.server.then_some([0; 4]);
        let header = FrameHeader::new(fin, false, opcode, len as u64, mask).encode();
        self.output.reserve(header.as_slice().len() + len);
        self.output.put_slice(header.as_slice());
        self.output.extend_from_slice(&self.pending);
        self.pending.clear();
    }

    /// Writes the message's last frame, and resets the inflater if the peer starts each
    /// message afresh or ended its stream.
    fn end_message(&mut self) {
        self.emit(true);
        let ended = self.message.take().is_some_and(|m| m.stream_ended);
        if self.config.reset_after_message {
            // The next message starts afresh: hold no inflater until it comes.
            if let Some(decompress) = self.decompress.take() {
                pool::give_inflater(decompress);
            }
        } else if ended {
            if let Some(decompress) = self.decompress.as_mut() {
                decompress.reset(false);
            }
        }
        self.state = ReadState::Header;
        if self.config.reset_after_message {
            // Hold nothing between messages; with context takeover the inflate state is held
            // anyway, and the chunk buffer is kept for the next message.
            self.pending = Vec::new();
        }
    }
}

/// The inflate step of the protocol core's decoder ([`proto::decoder::Inflate`]): one raw-deflate
/// inflater, taken from the pool on the first compressed message and, when the peer starts
/// each message afresh, given back after each.
///
/// The socket moves onto the decoder in issue 19's next step; until then only tests use this.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct MessageInflater {
    decompress: Option<Decompress>,
    /// The peer starts each message with an empty context (`client_no_context_takeover` on a
    /// server).
    reset_after_message: bool,
}

#[cfg_attr(not(test), allow(dead_code))]
impl MessageInflater {
    /// An inflater for a connection whose peer resets its context after each message, or not.
    pub(crate) fn new(reset_after_message: bool) -> Self {
        Self { decompress: None, reset_after_message }
    }
}

impl proto::decoder::Inflate for MessageInflater {
    fn inflate(&mut self, input: &[u8], output: &mut Vec<u8>, sync_flush: bool) -> Result<Inflated, String> {
        let decompress = self.decompress.get_or_insert_with(pool::take_inflater);
        let (before_in, before_out) = (decompress.total_in(), decompress.total_out());
        let flush = if sync_flush { FlushDecompress::Sync } else { FlushDecompress::None };
        // `decompress_vec` writes into the spare capacity only, never growing the vector.
        let status = decompress.decompress_vec(input, output, flush).map_err(|e| e.to_string())?;
        Ok(Inflated {
            consumed: usize::try_from(decompress.total_in() - before_in).unwrap_or(0),
            produced: usize::try_from(decompress.total_out() - before_out).unwrap_or(0),
            stream_end: status == Status::StreamEnd,
        })
    }

    fn end_message(&mut self, stream_ended: bool) {
        if self.reset_after_message {
            if let Some(decompress) = self.decompress.take() {
                pool::give_inflater(decompress);
            }
        } else if stream_ended {
            if let Some(decompress) = self.decompress.as_mut() {
                decompress.reset(false);
            }
        }
    }
}

/// Buffers larger than this are freed between messages; smaller ones are kept for the next.
const KEEP_BUFFER: usize = 16 * 1024;

impl Inflater {
    /// Frees the input and output buffers if a large message made them grow (they are empty).
    pub(crate) fn shrink_buffers(&mut self) {
        if self.input.capacity() > KEEP_BUFFER {
            self.input = BytesMut::new();
        }
        if self.output.capacity() > KEEP_BUFFER {
            self.output = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use flate2::{Compress, FlushCompress};

    use super::*;

    const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

    fn config(max_message_size: Option<usize>) -> InflaterConfig {
        InflaterConfig {
            server: true,
            reset_after_message: false,
            max_message_size,
            max_frame_size: Some(1 << 20),
        }
    }

    /// Raw deflate of `data` with a sync flush, the trailer removed (or a final block).
    fn deflate(compress: &mut Compress, data: &[u8], finish: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1024);
        let flush = if finish { FlushCompress::Finish } else { FlushCompress::Sync };
        compress.compress_vec(data, &mut out, flush).unwrap();
        if !finish {
            assert!(out.ends_with(&SYNC_FLUSH_TRAILER));
            out.truncate(out.len() - 4);
        }
        out
    }

    /// A masked client frame.
    fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 } | opcode];
        match payload.len() {
            len @ 0..=125 => out.push(0x80 | len as u8),
            len @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        out
    }

    /// The frames in `bytes`, as (fin, rsv1, opcode, payload), checking the all-zero mask.
    fn frames(mut bytes: &[u8]) -> Vec<(bool, bool, u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let header = FrameHeader::parse(bytes).unwrap().expect("a whole header");
            let end = header.len + header.payload_len as usize;
            let mut payload = bytes[header.len..end].to_vec();
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= header.mask[i % 4];
            }
            frames.push((header.fin, header.rsv1, header.opcode, payload));
            bytes = &bytes[end..];
        }
        frames
    }

    /// Feeds `input` in pieces of `piece` bytes, draining the output as tungstenite would.
    fn run(inflater: &mut Inflater, input: &[u8], piece: usize) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            inflater.input.extend_from_slice(chunk);
            loop {
                let result = inflater.process();
                let drained = inflater.output.split().to_vec();
                out.extend_from_slice(&drained);
                result?;
                if drained.is_empty() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The whole messages in the re-emitted frames, with the control frames between them.
    fn messages(frames: &[(bool, bool, u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
        let mut messages = Vec::new();
        let mut current: Option<(u8, Vec<u8>)> = None;
        for (fin, rsv1, opcode, payload) in frames {
            assert!(!rsv1, "RSV1 is cleared");
            match opcode {
                8..=15 => messages.push((*opcode, payload.clone())),
                0 => current.as_mut().expect("a message to continue").1.extend_from_slice(payload),
                _ => current = Some((*opcode, payload.clone())),
            }
            if *fin && *opcode < 8 {
                messages.push(current.take().expect("a message"));
            }
        }
        messages
    }

    #[test]
    fn compressed_messages_are_inflated_in_any_split() {
        let mut compress = Compress::new(flate2::Compression::new(6), false);
        let first = deflate(&mut compress, b"Hello", false);
        // Context takeover: the second refers back to the first.
        let second = deflate(&mut compress, b"Hello", false);
        let input = [frame(true, true, 1, &first), frame(true, true, 2, &second)].concat();
        for piece in [1, 3, 7, input.len()] {
            let mut inflater = Inflater::new(config(None));
            let out = run(&mut inflater, &input, piece).unwrap();
            assert_eq!(messages(&frames(&out)), [(1, b"Hello".to_vec()), (2, b"Hello".to_vec())], "{piece}");
        }
    }

    #[test]
    fn fragments_with_a_ping_between_them_and_uncompressed_messages_around() {
        let mut compress = Compress::new(flate2::Compression::new(1), false);
        let text = b"fragmented and compressed, fragmented and compressed".repeat(50);
        let payload = deflate(&mut compress, &text, false);
        let (a, rest) = payload.split_at(payload.len() / 3);
        let (b, c) = rest.split_at(rest.len() / 2);
        let input = [
            frame(true, false, 2, b"plain"),
            frame(false, true, 1, a),
            frame(true, false, 9, b"ping"),
            frame(false, false, 0, b),
            frame(true, false, 0, c),
            frame(true, false, 1, b"after"),
        ]
        .concat();
        let out = run(&mut Inflater::new(config(None)), &input, 5).unwrap();
        assert_eq!(
            messages(&frames(&out)),
            [(2, b"plain".to_vec()), (9, b"ping".to_vec()), (1, text), (1, b"after".to_vec())]
        );
    }

    #[test]
    fn without_context_takeover_no_inflater_is_held_between_messages() {
        let mut compress = Compress::new(flate2::Compression::new(6), false);
        let mut inflater = Inflater::new(InflaterConfig { reset_after_message: true, ..config(None) });
        for text in [&b"first message"[..], b"second message"] {
            let payload = deflate(&mut compress, text, false);
            compress.reset();
            let out = run(&mut inflater, &frame(true, true, 1, &payload), 64).unwrap();
            assert_eq!(messages(&frames(&out)), [(1, text.to_vec())]);
            assert!(inflater.decompress.is_none(), "given back to the pool");
        }
    }

    #[test]
    fn a_message_ending_in_a_final_block_resets_the_inflater() {
        let mut compress = Compress::new(flate2::Compression::new(6), false);
        let first = deflate(&mut compress, b"final block", true);
        let mut fresh = Compress::new(flate2::Compression::new(6), false);
        let second = deflate(&mut fresh, b"then a new stream", false);
        let input = [frame(true, true, 1, &first), frame(true, true, 1, &second)].concat();
        let out = run(&mut Inflater::new(config(None)), &input, 4).unwrap();
        assert_eq!(
            messages(&frames(&out)),
            [(1, b"final block".to_vec()), (1, b"then a new stream".to_vec())]
        );
    }

    #[test]
    fn rsv1_elsewhere_and_foreign_frames_pass_through_for_tungstenite_to_refuse() {
        let cases =
            [frame(true, true, 9, b"ping with rsv1"), frame(true, true, 0, b"continuation with rsv1"), {
                let mut rsv2 = frame(true, true, 1, b"rsv2 too");
                rsv2[0] |= 0x20;
                rsv2
            }];
        for input in cases {
            let out = run(&mut Inflater::new(config(None)), &input, 3).unwrap();
            assert_eq!(out, input, "byte for byte");
        }
    }

    #[test]
    fn corrupt_data_fails_and_what_came_before_is_kept() {
        let mut compress = Compress::new(flate2::Compression::new(6), false);
        let good = deflate(&mut compress, b"good", false);
        let input = [frame(true, true, 1, &good), frame(true, true, 1, &[0xFF, 0xFF, 0xFF, 0xFF])].concat();
        let mut inflater = Inflater::new(config(None));
        inflater.input.extend_from_slice(&input);
        let error = loop {
            match inflater.process() {
                Ok(()) => {}
                Err(error) => break error,
            }
        };
        assert!(matches!(error, TransportError::CorruptCompressedData(_)), "{error:?}");
        assert_eq!(messages(&frames(&inflater.output)), [(1, b"good".to_vec())]);
    }

    #[test]
    fn a_bomb_stops_at_the_message_limit_with_bounded_output() {
        let zeros = vec![0u8; 64 << 20];
        let mut compress = Compress::new(flate2::Compression::new(9), false);
        let bomb = deflate(&mut compress, &zeros, false);
        assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
        let mut inflater = Inflater::new(config(Some(1 << 20)));
        inflater.input.extend_from_slice(&frame(true, true, 2, &bomb));
        let mut taken = 0;
        let error = loop {
            match inflater.process() {
                Ok(()) => {
                    assert!(inflater.output.len() <= CHUNK + 14, "one chunk at a time");
                    taken += inflater.output.split().len();
                }
                Err(error) => break error,
            }
        };
        // It stops within one chunk of passing the limit: never near the 64 MiB.
        match error {
            TransportError::TooBig { size, max } => {
                assert_eq!(max, 1 << 20);
                assert!(size > 1 << 20 && size <= (1 << 20) + CHUNK as u64, "{size}");
            }
            other => panic!("{other:?}"),
        }
        // The inflated megabyte, and the headers of its frames (4 bytes and a mask key each).
        assert!(taken <= (1 << 20) + (1 << 20) / CHUNK * 8, "{taken}");
    }

    #[test]
    fn limits_apply_to_compressed_frames_on_the_wire_and_to_nesting() {
        let mut inflater = Inflater::new(InflaterConfig { max_frame_size: Some(10), ..config(None) });
        let error = run(&mut inflater, &frame(true, true, 1, &[0; 11]), 64).unwrap_err();
        assert_eq!(error, TransportError::TooBig { size: 11, max: 10 });

        let mut compress = Compress::new(flate2::Compression::new(6), false);
        let part = deflate(&mut compress, b"part", false);
        let input = [frame(false, true, 1, &part), frame(true, false, 1, b"new message")].concat();
        let error = run(&mut Inflater::new(config(None)), &input, 64).unwrap_err();
        assert!(matches!(error, TransportError::Protocol(_)), "{error:?}");
    }

    #[test]
    fn a_length_with_the_top_bit_set_is_refused() {
        let header = [0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4];
        let error = run(&mut Inflater::new(config(None)), &header, 64).unwrap_err();
        assert_eq!(error, TransportError::LengthTopBit);
    }
}
