//! [`Deflater`]: the send side of permessage-deflate. It compresses one message's payload into
//! the payload of a frame with RSV1 set (RFC 7692 §7.2.1): raw deflate, a sync flush, and the
//! trailing `00 00 ff ff` removed.

use bytes::Bytes;
use flate2::{Compress, FlushCompress};

use super::{Compression, NegotiatedCompression, pool};
/// The four bytes a sync flush ends with, which the sender removes and the receiver adds back.
pub(crate) use crate::proto::decoder::SYNC_FLUSH_TRAILER;

/// The compressor of one socket, made on the first message it compresses.
#[derive(Debug)]
pub(crate) struct Deflater {
    negotiated: NegotiatedCompression,
    level: u32,
    /// The window to compress with: 9 to 15 bits.
    window_bits: u8,
    /// Start every message with an empty context (our side's `no_context_takeover`).
    reset_after_message: bool,
    min_message_size: usize,
    /// `None` until the first compressed message; always `None` without context takeover (a
    /// compressor is then borrowed from the pool for each message).
    compress: Option<Compress>,
    /// Send the next message uncompressed ([`WebSocket::send_uncompressed`](crate::WebSocket::send_uncompressed)).
    skip_next: bool,
}

impl Deflater {
    /// The compressor for our side of a negotiation. `server` says which side we are.
    pub(crate) fn new(config: &Compression, negotiated: NegotiatedCompression, server: bool) -> Self {
        let (window_bits, reset_after_message) = if server {
            let bits = negotiated.server_max_window_bits.unwrap_or(15).min(config.server_max_window_bits);
            (bits, negotiated.server_no_context_takeover)
        } else {
            (negotiated.client_max_window_bits.unwrap_or(15), negotiated.client_no_context_takeover)
        };
        Self {
            negotiated,
            level: config.level,
            // zlib refuses 8 bits for raw deflate; 9 bits keeps every distance within 250
            // bytes, inside the 256-byte window a peer asking for 8 has.
            window_bits: window_bits.clamp(9, 15),
            reset_after_message,
            min_message_size: config.min_message_size,
            compress: None,
            skip_next: false,
        }
    }

    /// What was negotiated.
    pub(crate) fn negotiated(&self) -> &NegotiatedCompression {
        &self.negotiated
    }

    /// Sends the next message uncompressed, or not.
    pub(crate) fn set_skip_next(&mut self, skip: bool) {
        self.skip_next = skip;
    }

    /// The level and window bits of a socket that compresses every message alone (no context
    /// takeover on our side): its compressed messages are the same bytes as those of every other
    /// such socket with these settings, so they can be computed once and shared
    /// ([`PreparedMessage`](crate::broadcast::PreparedMessage)). `None` with context takeover.
    pub(crate) fn standalone_settings(&self) -> Option<(u32, u8)> {
        self.reset_after_message.then_some((self.level, self.window_bits))
    }

    /// Should a message of `len` bytes be compressed? Takes the one-message opt-out.
    pub(crate) fn wants(&mut self, len: usize) -> bool {
        !std::mem::take(&mut self.skip_next) && len >= self.min_message_size
    }

    /// The compressed payload of a message, `None` if compressing failed (the message then
    /// goes out uncompressed, which the protocol allows).
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Option<Bytes> {
        let (level, window_bits) = (self.level, self.window_bits);
        if self.reset_after_message {
            return compress_alone(level, window_bits, payload);
        }
        let compress = self.compress.get_or_insert_with(|| {
            Compress::new_with_window_bits(flate2::Compression::new(level), false, window_bits)
        });
        let output = compress_message(compress, payload);
        if output.is_none() {
            compress.reset();
        }
        output
    }
}

/// Compresses one message with an empty context, as a socket without context takeover sends it:
/// a compressor is borrowed from the pool for this message only. `None` if compressing failed.
pub(crate) fn compress_alone(level: u32, window_bits: u8, payload: &[u8]) -> Option<Bytes> {
    let mut compress = pool::take_compressor(level, window_bits);
    let output = compress_message(&mut compress, payload);
    pool::give_compressor(level, window_bits, compress);
    output
}

/// Compresses one message with `compress`: a sync flush, the trailer removed. `None` if the
/// compressor failed (it must then be reset).
fn compress_message(compress: &mut Compress, payload: &[u8]) -> Option<Bytes> {
    let mut output = Vec::with_capacity(payload.len() / 2 + 64);
    let mut input = payload;
    loop {
        let before = compress.total_in();
        compress.compress_vec(input, &mut output, FlushCompress::Sync).ok()?;
        let consumed = usize::try_from(compress.total_in() - before).unwrap_or(input.len());
        input = input.get(consumed..).unwrap_or_default();
        // The flush is complete once all input is in and the output did not fill up.
        if input.is_empty() && output.len() < output.capacity() {
            break;
        }
        output.reserve(output.capacity().max(64));
    }
    if !output.ends_with(&SYNC_FLUSH_TRAILER) {
        // Cannot happen after a sync flush; should it, send the message plainly.
        return None;
    }
    output.truncate(output.len() - SYNC_FLUSH_TRAILER.len());
    Some(Bytes::from(output))
}

#[cfg(test)]
mod tests {
    use flate2::{Decompress, FlushDecompress};

    use super::*;

    fn inflate(decompress: &mut Decompress, payload: &[u8]) -> Vec<u8> {
        let input = [payload, &SYNC_FLUSH_TRAILER].concat();
        let mut output = Vec::with_capacity(1 << 20);
        decompress.decompress_vec(&input, &mut output, FlushDecompress::Sync).unwrap();
        output
    }

    fn negotiated(server_no_context_takeover: bool, server_bits: Option<u8>) -> NegotiatedCompression {
        NegotiatedCompression {
            server_no_context_takeover,
            client_no_context_takeover: false,
            server_max_window_bits: server_bits,
            client_max_window_bits: None,
        }
    }

    #[test]
    fn messages_compress_without_the_trailer_and_inflate_back() {
        let mut deflater = Deflater::new(&Compression::enabled(), negotiated(false, None), true);
        let mut decompress = Decompress::new(false);
        let json = br#"{"user":"alice","text":"hello hello hello hello"}"#.repeat(20);
        let first = deflater.compress(&json).unwrap();
        assert!(first.len() < json.len() / 5, "{} bytes", first.len());
        assert!(!first.ends_with(&SYNC_FLUSH_TRAILER));
        assert_eq!(inflate(&mut decompress, &first), json);
        // With context takeover the second copy refers back to the first: even smaller.
        let second = deflater.compress(&json).unwrap();
        assert!(second.len() < first.len());
        assert_eq!(inflate(&mut decompress, &second), json);
    }

    #[test]
    fn without_context_takeover_each_message_stands_alone() {
        let mut deflater = Deflater::new(&Compression::enabled(), negotiated(true, None), true);
        let text = b"the same words again and again and again".repeat(10);
        let first = deflater.compress(&text).unwrap();
        let second = deflater.compress(&text).unwrap();
        assert_eq!(first, second);
        assert!(deflater.compress.is_none(), "no compressor held between messages: it is pooled");
        // A fresh inflater reads the second message alone.
        assert_eq!(inflate(&mut Decompress::new(false), &second), text);
    }

    /// An 8-bit window is served with 9 bits, whose distances zlib keeps within 250 bytes (the
    /// window less its 262-byte lookahead); `scripts/python-interop.sh` inflates such messages
    /// with C zlib and an 8-bit window.
    #[test]
    fn a_peer_asking_for_8_bits_is_served_with_9() {
        let deflater = Deflater::new(&Compression::enabled(), negotiated(false, Some(8)), true);
        assert_eq!(deflater.window_bits, 9);
        let mut deflater = deflater;
        let block: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let message = [block.as_slice(), block.as_slice()].concat();
        let payload = deflater.compress(&message).unwrap();
        assert_eq!(inflate(&mut Decompress::new_with_window_bits(false, 9), &payload), message);
    }

    #[test]
    fn small_messages_and_the_opt_out_skip_compression() {
        let mut deflater =
            Deflater::new(&Compression::enabled().min_message_size(10), negotiated(false, None), true);
        assert!(!deflater.wants(9));
        assert!(deflater.wants(10));
        deflater.set_skip_next(true);
        assert!(!deflater.wants(1000), "the opt-out skips one message");
        assert!(deflater.wants(1000), "and only one");
    }

    #[test]
    fn large_incompressible_messages_come_through_whole() {
        let mut deflater = Deflater::new(&Compression::enabled(), negotiated(false, None), true);
        let noise: Vec<u8> = (0..300_000u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let payload = deflater.compress(&noise).unwrap();
        assert_eq!(inflate(&mut Decompress::new(false), &payload), noise);
    }
}
