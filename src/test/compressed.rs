//! The client side of a test connection that negotiated permessage-deflate (RFC 7692).
//!
//! tungstenite 0.29 has no permessage-deflate, and its message layer fails every frame with RSV1
//! set (`NonZeroReservedBits`). Its frame layer ([`FrameSocket`]) is public, though, and carries
//! RSV1: so the frames here are still read, parsed, masked and written by tungstenite, and this
//! module is the message layer above it. It assembles fragments, checks what RFC 6455 §5 asks of
//! the frames a client receives, answers Pings and Closes, inflates compressed messages with
//! flate2 (raw deflate, the `00 00 ff ff` trailer added back) and compresses what it sends with
//! the crate's [`Deflater`], RSV1 set.
//!
//! [`FrameSocket`] is blocking-style (`Read` and `Write`); [`SyncIo`] gives it the upgraded
//! connection, a `Pending` poll becoming `WouldBlock` with the waker of the last poll
//! registered, as tokio-tungstenite's own adapter does.

use std::{
    hash::{BuildHasher, RandomState},
    io::{self, Read, Write},
    pin::Pin,
    task::{Context, Poll, Waker, ready},
};

use bytes::{Bytes, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::{
    self, Error as WsError,
    protocol::frame::{
        Frame, FrameSocket,
        coding::{Control, Data, OpCode},
    },
};

use super::from_tungstenite_error;
use crate::{
    deflate::{Compression, Deflater, NegotiatedCompression},
    error::Error,
    message::{CloseCode, CloseFrame, Message, Utf8Bytes},
};

/// The four bytes a sync flush ends with: the sender removes them, the receiver adds them back
/// (RFC 7692 §7.2.2).
const SYNC_FLUSH_TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The upgraded connection as `Read` and `Write` for tungstenite's [`FrameSocket`]: `Pending`
/// is `WouldBlock`, and the waker of the last poll is the one registered.
struct SyncIo {
    io: TokioIo<Upgraded>,
    waker: Waker,
}

impl SyncIo {
    fn poll<T>(
        &mut self,
        f: impl FnOnce(Pin<&mut TokioIo<Upgraded>>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        match f(Pin::new(&mut self.io), &mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Read for SyncIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.poll(|io, cx| {
            let mut buf = ReadBuf::new(buf);
            ready!(io.poll_read(cx, &mut buf))?;
            Poll::Ready(Ok(buf.filled().len()))
        })
    }
}

impl Write for SyncIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.poll(|io, cx| io.poll_write(cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.poll(AsyncWrite::poll_flush)
    }
}

/// A message being assembled from its frames.
struct Partial {
    text: bool,
    compressed: bool,
    payload: BytesMut,
}

/// The client side of a compressed test connection: tungstenite's frames, this message layer.
pub(super) struct CompressedSocket {
    frames: FrameSocket<SyncIo>,
    negotiated: NegotiatedCompression,
    deflater: Deflater,
    /// Raw deflate with a 15-bit window, which inflates what any smaller window made.
    inflater: Decompress,
    partial: Option<Partial>,
    close_sent: bool,
    close_received: bool,
    /// The stream has ended: an error, or the end of the connection.
    ended: bool,
    /// Frames were written (or queued) since the last flush.
    unflushed: bool,
    /// The state of the mask keys' generator.
    mask_state: u64,
}

impl CompressedSocket {
    pub(super) fn new(upgraded: Upgraded, negotiated: NegotiatedCompression, options: &Compression) -> Self {
        let io = SyncIo { io: TokioIo::new(upgraded), waker: Waker::noop().clone() };
        Self {
            frames: FrameSocket::new(io),
            negotiated,
            deflater: Deflater::new(options, negotiated, false),
            inflater: Decompress::new(false),
            partial: None,
            close_sent: false,
            close_received: false,
            ended: false,
            unflushed: false,
            mask_state: RandomState::new().hash_one(0u8) | 1,
        }
    }

    pub(super) fn negotiated(&self) -> &NegotiatedCompression {
        &self.negotiated
    }

    /// A mask key for the next frame (RFC 6455 §5.3; a test client needs no strong randomness).
    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift64
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.mask_state = x;
        (x as u32).to_be_bytes()
    }

    /// Queues a frame, masked; it goes out by the next flush.
    fn write_frame(&mut self, mut frame: Frame) -> Result<(), Error> {
        frame.header_mut().mask = Some(self.next_mask());
        self.unflushed = true;
        match self.frames.write(frame) {
            Ok(()) => Ok(()),
            // Queued all the same: the flush writes it.
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(from_tungstenite_error(e)),
        }
    }

    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        // The replies to the server's Pings and Close go out as soon as they can.
        if self.unflushed {
            let _ = self.poll_flush(cx);
        }
        loop {
            self.frames.get_mut().waker = cx.waker().clone();
            let frame = match self.frames.read(None) {
                Ok(Some(frame)) => frame,
                // The end of the connection: clean after the server's Close.
                Ok(None) => {
                    self.ended = true;
                    return Poll::Ready((!self.close_received).then_some(Err(Error::ConnectionReset)));
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return self.fail(from_tungstenite_error(e), cx),
            };
            match self.on_frame(frame) {
                Ok(Some(message)) => {
                    if self.unflushed {
                        let _ = self.poll_flush(cx);
                    }
                    return Poll::Ready(Some(Ok(message)));
                }
                Ok(None) => {}
                Err(e) => return self.fail(e, cx),
            }
        }
    }

    /// Ends the stream on an error; a server that broke the protocol gets the Close of the
    /// matching code, as RFC 6455 §7.1.7 asks.
    fn fail(&mut self, error: Error, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        self.ended = true;
        if let Some(frame) = error.close_frame() {
            if !self.close_sent && !self.close_received {
                self.close_sent = true;
                let close = tungstenite::protocol::CloseFrame {
                    code: frame.code.0.into(),
                    reason: tungstenite::Utf8Bytes::from(frame.reason.as_str()),
                };
                if self.write_frame(Frame::close(Some(close))).is_ok() {
                    let _ = self.poll_flush(cx);
                }
            }
        }
        Poll::Ready(Some(Err(error)))
    }

    /// One frame from the server: a message when it completes one.
    fn on_frame(&mut self, frame: Frame) -> Result<Option<Message>, Error> {
        let header = frame.header().clone();
        if header.mask.is_some() {
            return Err(protocol("a masked frame from the server"));
        }
        if header.rsv2 || header.rsv3 {
            return Err(protocol("reserved bits RSV2 or RSV3 set"));
        }
        if self.close_received {
            return Err(protocol("a frame after the server's Close"));
        }
        let data = match header.opcode {
            OpCode::Control(control) => {
                if header.rsv1 {
                    return Err(protocol("RSV1 on a control frame"));
                }
                if !header.is_final {
                    return Err(protocol("a fragmented control frame"));
                }
                if frame.payload().len() > 125 {
                    return Err(protocol("a control frame over 125 bytes"));
                }
                return self.on_control(control, frame.into_payload()).map(Some);
            }
            OpCode::Data(data) => data,
        };
        match (data, self.partial.is_some()) {
            (Data::Continue, false) => {
                return Err(protocol("a continuation frame with no message to continue"));
            }
            (Data::Continue, true) if header.rsv1 => return Err(protocol("RSV1 on a continuation frame")),
            (Data::Continue, true) => {}
            (Data::Text | Data::Binary, true) => {
                return Err(protocol("a new data frame inside a fragmented message"));
            }
            (Data::Text | Data::Binary, false) => {
                let text = data == Data::Text;
                self.partial = Some(Partial { text, compressed: header.rsv1, payload: BytesMut::new() });
            }
            (Data::Reserved(opcode), _) => return Err(protocol(&format!("reserved data opcode {opcode}"))),
        }
        let Some(partial) = self.partial.as_mut() else { return Ok(None) };
        partial.payload.extend_from_slice(frame.payload());
        if !header.is_final {
            return Ok(None);
        }
        let Some(Partial { text, compressed, payload }) = self.partial.take() else { return Ok(None) };
        let payload = if compressed { self.inflate(&payload)? } else { payload.freeze() };
        Ok(Some(if text {
            Message::Text(Utf8Bytes::try_from(payload).map_err(|_| Error::InvalidUtf8)?)
        } else {
            Message::Binary(payload)
        }))
    }

    fn on_control(&mut self, control: Control, payload: Bytes) -> Result<Message, Error> {
        match control {
            Control::Ping => {
                if !self.close_sent {
                    self.write_frame(Frame::pong(payload.clone()))?;
                }
                Ok(Message::Ping(payload))
            }
            Control::Pong => Ok(Message::Pong(payload)),
            Control::Close => {
                let frame = parse_close(payload)?;
                self.close_received = true;
                if !self.close_sent {
                    // The reply echoes the code (RFC 6455 §5.5.1).
                    self.close_sent = true;
                    let reply = frame.as_ref().map(|frame| tungstenite::protocol::CloseFrame {
                        code: frame.code.0.into(),
                        reason: tungstenite::Utf8Bytes::from(frame.reason.as_str()),
                    });
                    self.write_frame(Frame::close(reply))?;
                }
                Ok(Message::Close(frame))
            }
            Control::Reserved(opcode) => Err(protocol(&format!("reserved control opcode {opcode}"))),
        }
    }

    /// Inflates one message's payload (RFC 7692 §7.2.2), whatever its size.
    fn inflate(&mut self, compressed: &[u8]) -> Result<Bytes, Error> {
        let corrupt = |e: String| Error::InvalidCompressedData(e);
        let mut input = Vec::with_capacity(compressed.len() + SYNC_FLUSH_TRAILER.len());
        input.extend_from_slice(compressed);
        input.extend_from_slice(&SYNC_FLUSH_TRAILER);
        let mut output = Vec::with_capacity(compressed.len().saturating_mul(4).max(1024));
        let mut consumed = 0;
        loop {
            if output.len() == output.capacity() {
                output.reserve(output.capacity());
            }
            let (before_in, before_out) = (self.inflater.total_in(), self.inflater.total_out());
            let status = self
                .inflater
                .decompress_vec(&input[consumed..], &mut output, FlushDecompress::Sync)
                .map_err(|e| corrupt(e.to_string()))?;
            let read = usize::try_from(self.inflater.total_in() - before_in).unwrap_or(usize::MAX);
            let made = self.inflater.total_out() - before_out;
            consumed = consumed.saturating_add(read).min(input.len());
            if status == Status::StreamEnd {
                // A final deflate block ends the stream: the next message starts a new one.
                self.inflater.reset(false);
                break;
            }
            let room_left = output.len() < output.capacity();
            if consumed == input.len() && room_left {
                break;
            }
            if read == 0 && made == 0 && room_left {
                return Err(corrupt("the compressed data ends in the middle".to_owned()));
            }
        }
        if self.negotiated.server_no_context_takeover {
            self.inflater.reset(false);
        }
        Ok(output.into())
    }

    pub(super) fn start_send(&mut self, message: Message) -> Result<(), Error> {
        if let Message::Close(frame) = message {
            // A second Close, or one after the server's, does nothing.
            if self.close_sent || self.close_received {
                return Ok(());
            }
            self.close_sent = true;
            let close = frame.map(|frame| tungstenite::protocol::CloseFrame {
                code: frame.code.0.into(),
                reason: tungstenite::Utf8Bytes::from(frame.reason.as_str()),
            });
            return self.write_frame(Frame::close(close));
        }
        if self.close_sent || self.close_received {
            return Err(Error::Closed);
        }
        let frame = match message {
            Message::Text(text) => self.data_frame(Data::Text, text.into()),
            Message::Binary(bytes) => self.data_frame(Data::Binary, bytes),
            Message::Ping(payload) => Frame::ping(payload),
            Message::Pong(payload) => Frame::pong(payload),
            Message::Close(_) => return Ok(()),
        };
        self.write_frame(frame)
    }

    /// A data message's frame: compressed, RSV1 set, when the deflater wants it.
    fn data_frame(&mut self, data: Data, payload: Bytes) -> Frame {
        let compressed =
            if self.deflater.wants(payload.len()) { self.deflater.compress(&payload) } else { None };
        match compressed {
            Some(compressed) => {
                let mut frame = Frame::message(compressed, OpCode::Data(data), true);
                frame.header_mut().rsv1 = true;
                frame
            }
            None => Frame::message(payload, OpCode::Data(data), true),
        }
    }

    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.frames.get_mut().waker = cx.waker().clone();
        match self.frames.flush() {
            Ok(()) => {
                self.unflushed = false;
                Poll::Ready(Ok(()))
            }
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) => Poll::Ready(Err(from_tungstenite_error(e))),
        }
    }

    /// Sends a Close without a code (unless one went out) and flushes it.
    pub(super) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.close_sent && !self.close_received {
            self.start_send(Message::Close(None))?;
        }
        self.poll_flush(cx)
    }
}

fn protocol(problem: &str) -> Error {
    Error::Protocol(problem.to_owned())
}

/// A Close frame's payload (RFC 6455 §5.5.1): empty, or a code that may be sent and a UTF-8
/// reason.
fn parse_close(payload: Bytes) -> Result<Option<CloseFrame>, Error> {
    match payload.len() {
        0 => return Ok(None),
        1 => return Err(protocol("a Close payload of 1 byte")),
        _ => {}
    }
    let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
    if !code.is_sendable() {
        return Err(protocol(&format!("close code {code} may not be sent")));
    }
    let reason = Utf8Bytes::try_from(payload.slice(2..)).map_err(|_| Error::InvalidUtf8)?;
    Ok(Some(CloseFrame::new(code, reason)))
}
