//! [`MessageInflater`]: the receive side of permessage-deflate (RFC 7692), the inflate step of
//! the protocol core's decoder ([`proto::decoder::Inflate`]). The decoder feeds it each
//! compressed frame's unmasked payload and then the sync-flush trailer, bounds its output by
//! `max_message_size`, and checks the UTF-8 of what it makes; this is the raw-deflate stream
//! under that, pooled between messages when the peer starts each one afresh.

use flate2::{Decompress, FlushDecompress, Status};

use super::pool;
use crate::proto::{self, decoder::Inflated};

/// The inflate step of the protocol core's decoder ([`proto::decoder::Inflate`]): one raw-deflate
/// inflater, taken from the pool on the first compressed message and, when the peer starts
/// each message afresh, given back after each.

#[derive(Debug)]
pub(crate) struct MessageInflater {
    decompress: Option<Decompress>,
    /// The peer starts each message with an empty context (`client_no_context_takeover` on a
    /// server).
    reset_after_message: bool,
}

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

#[cfg(test)]
mod tests {
    use flate2::{Compress, Compression, FlushCompress};

    use super::*;
    use crate::proto::decoder::Inflate;

    fn deflate(compress: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        compress.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        out
    }

    fn inflate(inflater: &mut MessageInflater, input: &[u8]) -> Vec<u8> {
        let mut output = Vec::with_capacity(4096);
        let inflated = inflater.inflate(input, &mut output, true).unwrap();
        assert_eq!(inflated.consumed, input.len());
        assert_eq!(inflated.produced, output.len());
        output
    }

    #[test]
    fn keeps_the_context_between_messages_unless_the_peer_resets_it() {
        for reset in [false, true] {
            let mut compress = Compress::new(Compression::fast(), false);
            let mut inflater = MessageInflater::new(reset);
            for _ in 0..3 {
                if reset {
                    compress.reset();
                }
                let data = deflate(&mut compress, b"hello hello hello");
                assert_eq!(inflate(&mut inflater, &data), b"hello hello hello");
                inflater.end_message(false);
                assert_eq!(inflater.decompress.is_none(), reset, "held between messages: {}", !reset);
            }
        }
    }

    #[test]
    fn data_that_does_not_inflate_is_an_error() {
        let mut inflater = MessageInflater::new(false);
        let mut output = Vec::with_capacity(64);
        assert!(inflater.inflate(&[0xFF; 8], &mut output, true).is_err());
    }
}
