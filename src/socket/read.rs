//! [`Reader`]: the socket's read side, the IO around the protocol core's
//! [`Decoder`](crate::proto::decoder::Decoder).
//!
//! The connection is read into a staging buffer that adapts to the traffic: reads of 1 KiB (an
//! allocation the allocator serves from its per-thread cache) until one fills it, then
//! `receive_buffer_size` at a time while the connection is busy; it is let go when a read finds
//! nothing and it is empty, so a quiet socket holds no read buffer. A read asks for at least
//! enough for a message as large as the peer's last data message and a little more (up to
//! 64 KiB): a message of the same size then comes in one read, and as that read does not fill
//! the buffer, the runtime knows the connection is drained and waits for readiness instead of
//! trying a read that would find nothing. The decoder takes what it can from it: a whole
//! single-frame message is split off it without a copy (its `Bytes` keeps that allocation
//! alive while the handler holds the message; the reader starts a new one when it needs
//! room); the rest of a payload that has not arrived is read straight from the
//! connection into the message's own buffer ([`Decoder::payload_buf`], reserved at the frame's
//! size), so a large payload is read once, into the buffer the handler gets.

use std::{
    io,
    pin::pin,
    task::{Context, Poll, ready},
};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::proto::{
    decoder::{Decoder, Event},
    error::ProtocolError,
};

/// The size of the reads into the staging buffer until one fills it (at most
/// `receive_buffer_size`).
const FIRST_READ: usize = 1024;

/// The most a read asks for to take a message as large as the last one at once.
const PREDICTED_MAX: usize = 64 << 10;

/// What a read asks for beyond the last message's size: so that a message of the same size
/// does not fill the read, and its header and a Ping fit.
const PREDICTED_SLACK: usize = 256;

/// How much more room a payload buffer without a reservation for its whole frame is given at a
/// time.
const GROW_STEP: usize = 1 << 20;

/// What a read gave.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The peer broke the protocol.
    Protocol(ProtocolError),
    /// The connection failed.
    Io(io::Error),
}

/// The read side of a socket (see the module docs).
#[derive(Debug)]
pub(super) struct Reader {
    /// Read from the connection and not yet decoded (the start of a header or of a control
    /// frame). Empty and without capacity while the connection is quiet.
    staging: BytesMut,
    /// The last read filled `staging`: read `read_size` at a time.
    busy: bool,
    /// `receive_buffer_size`.
    read_size: usize,
    /// The peer's last data message's size on the wire plus [`PREDICTED_SLACK`], at most
    /// [`PREDICTED_MAX`]: the least a read into `staging` asks for.
    predicted: u32,
    /// `wire_bytes` that had been decoded at the last event.
    decoded_at_event: u64,
    decoder: Decoder,
    /// Bytes read from the connection so far (frame headers included), for the socket's summary
    /// and the `websocket.server.bytes` counter.
    pub(super) wire_bytes: u64,
}

impl Reader {
    pub(super) fn new(decoder: Decoder, read_size: usize) -> Self {
        Self {
            staging: BytesMut::new(),
            busy: false,
            read_size: read_size.max(1),
            predicted: 0,
            decoded_at_event: 0,
            decoder,
            wire_bytes: 0,
        }
    }

    /// Whether the reader holds no buffer (the connection was found quiet).
    pub(super) fn is_quiet(&self) -> bool {
        self.staging.capacity() == 0
    }

    /// The next event from the peer: `Ready(Ok(None))` at the end of the stream.
    pub(super) fn poll_event<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Event>, ReadError>> {
        loop {
            if let Some(event) = self.decoder.decode(&mut self.staging).map_err(ReadError::Protocol)? {
                self.saw_event(&event);
                return Poll::Ready(Ok(Some(event)));
            }
            // The decoder has taken all of `staging` but an unfinished header or control frame.
            let want = self.base_want();
            if self.staging.is_empty() {
                if let Some(mut payload) = self.decoder.payload_buf() {
                    // What is left of a data frame's payload, read where it goes: when it is at
                    // least a read's worth (smaller rests come with the next header).
                    let rest = payload.remaining_mut();
                    if rest >= want {
                        // Without limits the decoder reserves a large frame 1 MiB at a time:
                        // make room for a whole read, not the few bytes `read_buf` would.
                        let message = payload.get_mut();
                        if message.capacity() - message.len() < want {
                            message.reserve(rest.min(GROW_STEP));
                        }
                        let n = ready!(poll_read_buf(io, cx, &mut payload)).map_err(ReadError::Io)?;
                        if n == 0 {
                            return Poll::Ready(Ok(None));
                        }
                        self.wire_bytes += n as u64;
                        continue;
                    }
                }
            }
            let n =
                ready!(self.poll_fill(io, cx, want.max(self.predicted as usize))).map_err(ReadError::Io)?;
            if n == 0 {
                return Poll::Ready(Ok(None));
            }
            self.wire_bytes += n as u64;
        }
    }

    /// Learns the size of the peer's data messages from one just decoded.
    fn saw_event(&mut self, event: &Event) {
        let decoded = self.wire_bytes.saturating_sub(self.staging.len() as u64);
        let size = decoded.saturating_sub(self.decoded_at_event);
        self.decoded_at_event = decoded;
        if let Event::Text(_) | Event::Binary(_) = event {
            // At most PREDICTED_MAX, so the cast loses nothing.
            self.predicted = size.saturating_add(PREDICTED_SLACK as u64).min(PREDICTED_MAX as u64) as u32;
        }
    }

    /// How much the next read asks for, before the prediction: what decides whether the rest
    /// of a payload is read straight into its own buffer.
    fn base_want(&self) -> usize {
        if self.busy { self.read_size } else { FIRST_READ.min(self.read_size) }
    }

    /// Reads what the connection has into `staging`. Releases `staging` when the connection has
    /// nothing and it is empty: a quiet socket keeps no buffer.
    fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<io::Result<usize>> {
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

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, pin::Pin, task::Waker};

    use tokio::io::ReadBuf;

    use super::*;
    use crate::proto::{decoder::DecoderConfig, frame::Role};

    /// A peer whose bytes arrive in bursts: each burst can be read at once, then the connection
    /// has nothing until the test adds the next. Records what each read asked for.
    #[derive(Default)]
    struct Bursts {
        ready: VecDeque<u8>,
        asked: Vec<usize>,
    }

    impl AsyncRead for Bursts {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.ready.is_empty() {
                return Poll::Pending;
            }
            self.asked.push(buf.remaining());
            let n = buf.remaining().min(self.ready.len());
            let bytes: Vec<u8> = self.ready.drain(..n).collect();
            buf.put_slice(&bytes);
            Poll::Ready(Ok(()))
        }
    }

    /// A masked (with an all-zero key) binary frame of `len` bytes.
    fn binary(len: usize) -> Vec<u8> {
        let mut frame = vec![0x82];
        match len {
            0..=125 => frame.push(0x80 | len as u8),
            126..=0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0; 4]);
        frame.resize(frame.len() + len, 7);
        frame
    }

    /// Sends one message as one burst; returns its size and the reads that took it.
    fn exchange(reader: &mut Reader, peer: &mut Bursts, len: usize) -> (usize, Vec<usize>) {
        let mut cx = Context::from_waker(Waker::noop());
        peer.ready.extend(binary(len));
        peer.asked.clear();
        let Poll::Ready(Ok(Some(Event::Binary(payload)))) = reader.poll_event(peer, &mut cx) else {
            panic!("no message of {len} bytes");
        };
        assert!(reader.poll_event(peer, &mut cx).is_pending(), "nothing more after {len} bytes");
        (payload.len(), std::mem::take(&mut peer.asked))
    }

    #[test]
    fn a_message_as_large_as_the_last_comes_in_one_read_that_does_not_fill_the_buffer() {
        let config = DecoderConfig { role: Role::Server, max_frame_size: None, max_message_size: None };
        let mut reader = Reader::new(Decoder::new(config), 4096);
        let mut peer = Bursts::default();

        // The first 16 KiB message: a 1 KiB read, then the rest straight into its buffer.
        let (len, asked) = exchange(&mut reader, &mut peer, 16 << 10);
        assert_eq!((len, asked.len(), asked[0]), (16 << 10, 2, FIRST_READ));
        // The next ones: one read each, asking for more than the frame (16,392 bytes), so that
        // it comes back short and the runtime waits for readiness rather than reading again.
        for _ in 0..3 {
            let (len, asked) = exchange(&mut reader, &mut peer, 16 << 10);
            assert_eq!((len, asked.len()), (16 << 10, 1));
            assert!(asked[0] > (16 << 10) + 8, "asked {asked:?}");
        }
        // 1 KiB messages: their frame (1,032 bytes) is over the first read's 1 KiB, but one
        // read takes it once the reader has seen one.
        let (_, asked) = exchange(&mut reader, &mut peer, 1024);
        assert_eq!(asked.len(), 1, "after 16 KiB messages, 1 KiB comes in one read");
        for _ in 0..2 {
            let (len, asked) = exchange(&mut reader, &mut peer, 1024);
            assert_eq!((len, asked.len()), (1024, 1));
            assert!(asked[0] > 1032 && asked[0] <= 1024 + PREDICTED_SLACK + 8, "asked {asked:?}");
        }
        // The prediction stops at 64 KiB: a 1 MiB message still has its payload read into its
        // own buffer, not through the staging buffer.
        exchange(&mut reader, &mut peer, 1 << 20);
        let (len, asked) = exchange(&mut reader, &mut peer, 1 << 20);
        assert_eq!((len, asked[0]), (1 << 20, PREDICTED_MAX));
        assert!(asked.len() >= 2, "the rest straight into the payload's buffer: {asked:?}");
        // A quiet socket still holds no read buffer.
        assert!(reader.is_quiet());
    }
}
