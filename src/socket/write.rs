//! [`Writer`]: the socket's write side, the IO around the protocol core's
//! [`Encoder`](crate::proto::encoder::Encoder).
//!
//! Frames wait in a queue until the socket is flushed (or the queue passes
//! `write_buffer_size`). Small frames, and every frame's header, are copied into a coalescing
//! buffer, so a batch of small messages is one write; a larger payload stays the `Bytes` it
//! came as (the handler's, the decoder's or a [`PreparedMessage`](crate::broadcast::PreparedMessage)'s) and
//! goes out from there: with one vectored write beside the headers when the IO writes vectored
//! (`is_write_vectored`), with a write of its own otherwise. An uncompressed payload over
//! [`COALESCE_MAX`] bytes is never copied on the server.

use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use crate::proto::encoder::EncodedFrame;

/// Payloads up to this size are copied into the coalescing buffer; larger ones are written from
/// their own `Bytes`.
pub(super) const COALESCE_MAX: usize = 1024;

/// The most slices given to one vectored write.
const MAX_SLICES: usize = 64;

/// A coalescing buffer up to this size is kept for the next frames once written out.
const KEEP_BUFFER: usize = 16 * 1024;

/// While the connection is quiet, a kept buffer up to this size stays (an echo's); a larger one
/// is let go, so that an idle socket does not hold a burst's buffer.
const KEEP_WHEN_QUIET: usize = 256;

/// A piece of the queue.
#[derive(Debug)]
enum Segment {
    /// Headers and small payloads, copied together.
    Buf(BytesMut),
    /// A payload written from its own buffer.
    Payload(Bytes),
}

impl Segment {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Buf(buf) => buf,
            Self::Payload(bytes) => bytes,
        }
    }
}

/// The write side of a socket (see the module docs).
#[derive(Debug)]
pub(super) struct Writer {
    queue: VecDeque<Segment>,
    /// Bytes of the front segment already written.
    written: usize,
    /// Bytes queued and not yet written.
    queued: usize,
    /// A written-out coalescing buffer, kept for reuse.
    spare: BytesMut,
    write_buffer_size: usize,
    max_write_buffer_size: usize,
    /// Bytes written to the connection so far, for the socket's summary and the
    /// `websocket.server.bytes` counter.
    pub(super) wire_bytes: u64,
}

/// Queuing would take the write buffer past `max_write_buffer_size`.
#[derive(Debug)]
pub(super) struct Full;

impl Writer {
    pub(super) fn new(write_buffer_size: usize, max_write_buffer_size: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            written: 0,
            queued: 0,
            spare: BytesMut::new(),
            write_buffer_size,
            max_write_buffer_size,
            wire_bytes: 0,
        }
    }

    /// Lets a large kept buffer go (the connection is quiet).
    pub(super) fn release_spare(&mut self) {
        if self.spare.capacity() > KEEP_WHEN_QUIET {
            self.spare = BytesMut::new();
        }
    }

    /// Bytes waiting to be written.
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    /// Whether `len` more bytes fit under `max_write_buffer_size`.
    pub(super) fn fits(&self, len: usize) -> bool {
        self.queued.saturating_add(len) <= self.max_write_buffer_size
    }

    /// Queues a frame.
    ///
    /// # Errors
    ///
    /// [`Full`] when it would take the queue past `max_write_buffer_size`; nothing is queued.
    pub(super) fn push(&mut self, frame: &EncodedFrame) -> Result<(), Full> {
        if !self.fits(frame.len()) {
            return Err(Full);
        }
        self.push_parts(frame.header(), frame.payload())
    }

    /// Queues a frame past the bound: a Close, which must go out.
    pub(super) fn push_unbounded(&mut self, frame: &EncodedFrame) {
        let max = std::mem::replace(&mut self.max_write_buffer_size, usize::MAX);
        let _ = self.push(frame);
        self.max_write_buffer_size = max;
    }

    /// Queues a frame given as its header and its payload.
    pub(super) fn push_parts(&mut self, header: &[u8], payload: &Bytes) -> Result<(), Full> {
        let len = header.len() + payload.len();
        if !self.fits(len) {
            return Err(Full);
        }
        self.queued += len;
        let small = payload.len() <= COALESCE_MAX;
        let buf = self.back_buf(if small { len } else { header.len() });
        buf.put_slice(header);
        if small {
            buf.put_slice(payload);
        } else {
            self.queue.push_back(Segment::Payload(payload.clone()));
        }
        Ok(())
    }

    /// The coalescing buffer at the back of the queue, with room for `len` more bytes.
    fn back_buf(&mut self, len: usize) -> &mut BytesMut {
        // (A partly written buffer may grow: `written` counts from its start.)
        if !matches!(self.queue.back(), Some(Segment::Buf(_))) {
            let mut buf = std::mem::take(&mut self.spare);
            buf.clear();
            self.queue.push_back(Segment::Buf(buf));
        }
        match self.queue.back_mut() {
            Some(Segment::Buf(buf)) => {
                buf.reserve(len);
                buf
            }
            // Just pushed or checked above.
            _ => &mut self.spare,
        }
    }

    /// Takes `n` written bytes off the front of the queue.
    fn advance(&mut self, mut n: usize) {
        self.queued -= n.min(self.queued);
        while n > 0 {
            let Some(front) = self.queue.front() else { break };
            let left = front.bytes().len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            if let Some(Segment::Buf(mut buf)) = self.queue.pop_front() {
                if buf.capacity() <= KEEP_BUFFER && self.spare.capacity() == 0 {
                    buf.clear();
                    self.spare = buf;
                }
            }
        }
        if self.queue.is_empty() {
            self.written = 0;
        }
    }

    /// Writes some of the queue: `Ready(Ok(()))` once something was written (or nothing was
    /// queued).
    fn poll_write_some<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let n = if io.is_write_vectored() && self.queue.len() > 1 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (i, segment) in self.queue.iter().take(MAX_SLICES).enumerate() {
                let bytes = segment.bytes();
                let bytes = if i == 0 { &bytes[self.written..] } else { bytes };
                slices[count] = IoSlice::new(bytes);
                count += 1;
            }
            ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?
        } else {
            let Some(front) = self.queue.front() else { return Poll::Ready(Ok(())) };
            ready!(Pin::new(&mut *io).poll_write(cx, &front.bytes()[self.written..]))?
        };
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.wire_bytes += n as u64;
        self.advance(n);
        Poll::Ready(Ok(()))
    }

    /// Writes the queue out until at most `keep` bytes are left.
    fn poll_write_until<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
        keep: usize,
    ) -> Poll<io::Result<()>> {
        while self.queued > keep && !self.queue.is_empty() {
            ready!(self.poll_write_some(io, cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Ready for another frame: the queue is written out while it is over
    /// `write_buffer_size`.
    pub(super) fn poll_ready<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let keep = self.write_buffer_size;
        self.poll_write_until(io, cx, keep)
    }

    /// Writes the whole queue out and flushes the IO.
    pub(super) fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_write_until(io, cx, 0))?;
        Pin::new(io).poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        encoder::Encoder,
        frame::{OpCode, Role},
    };

    /// An IO that takes at most `chunk` bytes per write and records what it got.
    struct Sink {
        out: Vec<u8>,
        writes: usize,
        chunk: usize,
        vectored: bool,
    }

    impl AsyncWrite for Sink {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.chunk);
            self.out.extend_from_slice(&buf[..n]);
            self.writes += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.chunk;
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(left);
                self.out.extend_from_slice(&buf[..take]);
                left -= take;
                n += take;
            }
            self.writes += 1;
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frames() -> Vec<EncodedFrame> {
        let mut encoder = Encoder::new(Role::Server);
        vec![
            encoder.text(Bytes::from_static(b"hello")),
            encoder.binary(Bytes::from(vec![7u8; 5000])),
            encoder.frame(OpCode::Ping, true, false, Bytes::from_static(b"p")),
            encoder.binary(Bytes::from(vec![9u8; 70_000])),
            encoder.text(Bytes::from_static(b"bye")),
        ]
    }

    #[test]
    fn frames_go_out_in_order_whatever_the_io_takes() {
        let expected: Vec<u8> = frames()
            .iter()
            .flat_map(|f| f.header().iter().chain(f.payload().iter()).copied().collect::<Vec<_>>())
            .collect();
        for vectored in [false, true] {
            for chunk in [1, 3, 100, 4096, usize::MAX] {
                let mut writer = Writer::new(0, usize::MAX);
                for frame in frames() {
                    writer.push(&frame).expect("fits");
                }
                assert_eq!(writer.queued(), expected.len());
                let mut io = Sink { out: Vec::new(), writes: 0, chunk, vectored };
                let waker = futures_util::task::noop_waker();
                let mut cx = Context::from_waker(&waker);
                assert!(matches!(writer.poll_flush(&mut io, &mut cx), Poll::Ready(Ok(()))));
                assert_eq!(io.out, expected, "vectored {vectored}, chunk {chunk}");
                assert_eq!(writer.queued(), 0);
                if chunk == usize::MAX {
                    // One vectored write; or one per large payload and one per buffer between.
                    assert_eq!(io.writes, if vectored { 1 } else { 5 });
                }
            }
        }
    }

    #[test]
    fn small_frames_share_one_write_and_the_bound_holds() {
        let mut encoder = Encoder::new(Role::Server);
        let mut writer = Writer::new(1 << 10, 120);
        for _ in 0..10 {
            writer.push(&encoder.text(Bytes::from_static(b"0123456789"))).expect("fits");
        }
        assert!(matches!(writer.push(&encoder.text(Bytes::from_static(b"x"))), Err(Full)));
        let mut io = Sink { out: Vec::new(), writes: 0, chunk: usize::MAX, vectored: false };
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(writer.poll_flush(&mut io, &mut cx), Poll::Ready(Ok(()))));
        assert_eq!((io.writes, io.out.len()), (1, 120));
    }
}
