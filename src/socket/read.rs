//! [`Reader`]: the socket's read side, the IO around the protocol core's
//! [`Decoder`](crate::proto::decoder::Decoder).
//!
//! The connection is read into a staging buffer that adapts to the traffic: reads of 1 KiB (an
//! allocation the allocator serves from its per-thread cache) until one fills it, then
//! `receive_buffer_size` at a time while the connection is busy; it is let go when a read finds
//! nothing and it is empty, so a quiet socket holds no read buffer. The decoder takes what it
//! can from it: a whole single-frame message is split off it without a copy (its `Bytes` keeps
//! that allocation alive while the handler holds the message; the reader starts a new one when
//! it needs room); the rest of a payload that has not arrived is read straight from the
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
    decoder: Decoder,
    /// Bytes read from the connection so far (frame headers included), for the socket's summary
    /// and the `websocket.server.bytes` counter.
    pub(super) wire_bytes: u64,
}

impl Reader {
    pub(super) fn new(decoder: Decoder, read_size: usize) -> Self {
        Self { staging: BytesMut::new(), busy: false, read_size: read_size.max(1), decoder, wire_bytes: 0 }
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
                return Poll::Ready(Ok(Some(event)));
            }
            // The decoder has taken all of `staging` but an unfinished header or control frame.
            let want = self.want();
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
            let n = ready!(self.poll_fill(io, cx, want)).map_err(ReadError::Io)?;
            if n == 0 {
                return Poll::Ready(Ok(None));
            }
            self.wire_bytes += n as u64;
        }
    }

    /// How much the next read into `staging` asks for.
    fn want(&self) -> usize {
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
