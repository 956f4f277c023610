//! [`WebSocket`]: an accepted connection, with keep-alive, limits and a clean close.
//!
//! - `mod.rs` (here): the socket's state machine, receiving ([`Stream`]) and sending ([`Sink`]);
//! - [`read`]: the adaptive staging buffer and the reads that feed the protocol core's decoder;
//! - [`write`]: the write queue (coalesced small frames, large payloads written from their own
//!   `Bytes`, vectored where the IO allows) and its bounds;
//! - [`sender`]: [`WebSocketSender`], the byte-bounded queue other tasks send into, and the
//!   owner's side of it ([`WebSocket::sender`], [`WebSocket::closed`]);
//! - [`keep_alive`]: the clock that decides when to Ping and when to give the peer up;
//! - [`close`]: closing, the closing handshake, and the Closes the socket sends itself.
//!
//! The protocol is the crate's own sans-IO core (`crate::proto`): the decoder (framing,
//! unmasking, UTF-8, limits, inflation, the RFC 6455 checks), the encoder and the closing
//! handshake's rules; this module does the IO around it. The socket runs no task of its own:
//! keep-alive, shutdown and the replies to the peer's Pings and Close run while the handler
//! awaits `recv`, `send`, a flush or `closed`; so does writing out what senders queued.

mod close;
mod keep_alive;
mod prepared;
mod read;
mod sender;
mod summary;
mod write;

#[cfg(feature = "test-util")]
pub(crate) use close::check_sendable;
#[cfg(feature = "test-util")]
pub(crate) use sender::live_queues;
pub use sender::{BUFFER_FULL_CLOSE_REASON, SocketClosed, WebSocketSender};

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, Waker, ready},
};

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::HeaderValue;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWrite;

use self::{
    keep_alive::{Decision, KeepAliveClock},
    read::{ReadError, Reader},
    summary::{ClosedBy, Closing, Traffic},
    write::Writer,
};
use crate::{
    config::{SendPolicy, SocketConfig},
    deflate::{Deflater, MessageInflater, NegotiatedCompression},
    error::Error,
    lifecycle::OpenSocket,
    message::{CloseCode, CloseFrame, Message, Utf8Bytes},
    proto::{
        close::{CloseState, OnPeerClose, failure_code},
        decoder::{Decoder, DecoderConfig, Event},
        encoder::{EncodedFrame, Encoder},
        error::ProtocolError,
        frame::{OpCode, Role},
    },
};

/// An open WebSocket connection, handed to your
/// [`on_upgrade`](crate::WebSocketUpgrade::on_upgrade) callback.
///
/// Receive with [`recv`](Self::recv) (or as a [`Stream`]), send with [`send`](Self::send) (or as
/// a [`Sink`]), or [`feed`](Self::feed) several messages and [`flush`](Self::flush) once so that
/// they share one write, and end with [`close`](Self::close).
///
/// While your handler awaits `recv` or `send`, the socket also:
/// - answers the peer's Pings;
/// - sends a keep-alive Ping whenever the peer has been silent for the keep-alive interval and,
///   with a keep-alive timeout, drops a peer that sends nothing back in time: the next `recv`
///   then yields [`Error::KeepAliveTimeout`];
/// - closes with 1009 on a message over the size limit, 1007 on invalid UTF-8 and 1002 on a
///   protocol error, and yields the matching [`Error`];
/// - completes a closing handshake the peer starts: `recv` yields the peer's
///   [`Message::Close`], and the stream ends once the connection is closed.
///
/// Read until the stream ends (`while let Some(msg) = socket.recv().await`) so that the closing
/// handshake completes cleanly.
///
/// To send from other tasks, hand them a [`WebSocketSender`] from [`sender`](Self::sender); a
/// handler that only sends through senders awaits [`closed`](Self::closed).
///
/// ```
/// use tower_websockets::{Message, WebSocket};
///
/// async fn echo(mut socket: WebSocket) {
///     while let Some(Ok(message)) = socket.recv().await {
///         if matches!(message, Message::Text(_) | Message::Binary(_)) {
///             if socket.send(message).await.is_err() {
///                 break;
///             }
///         }
///     }
/// }
///
/// # #[cfg(feature = "test-util")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Try it with the in-memory test client (feature `test-util`).
/// use std::convert::Infallible;
/// use tower::ServiceBuilder;
/// use tower_websockets::{WebSocketLayer, WebSocketUpgrade, test::TestClient};
///
/// let stack = ServiceBuilder::new().layer(WebSocketLayer::new());
/// let service = stack.service_fn(|mut req: http::Request<hyper::body::Incoming>| async move {
///     let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
///     Ok::<_, Infallible>(upgrade.on_upgrade(echo))
/// });
/// let mut client = TestClient::new(service).connect("/echo").await?;
/// client.send_text("hello").await?;
/// assert_eq!(client.recv_text().await?, "hello");
/// client.close().await?;
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "test-util"))]
/// # fn main() {}
/// ```
pub struct WebSocket {
    state: State,
    protocol: Option<HeaderValue>,
    /// `None` with keep-alive off.
    keep_alive: Option<KeepAliveClock>,
    /// The waker of the last `recv`, so that work done while sending wakes the receiver.
    recv_waker: Option<Waker>,
    /// The layer's hold on this socket (counts, slot, shutdown); `None` for client sockets.
    open: Option<OpenSocket>,
    /// The first Close sent or received (or the end without one), for the summary.
    closing: Option<Closing>,
    /// Messages and bytes so far, for the summary.
    traffic: Traffic,
    /// The `metrics` feature's handles (nothing without it).
    metrics: crate::metrics::SocketMetrics,
    /// permessage-deflate's send side, when negotiated (the receive side is the decoder's
    /// inflate step).
    deflater: Option<Box<Deflater>>,
    /// The rate limit on what the peer sends; `None` without one.
    rate_limit: Option<Box<crate::rate_limit::Gate>>,
    /// The queue of the [`WebSocketSender`]s, once [`sender`](Self::sender) was called.
    senders: Option<sender::SenderQueue>,
    /// The senders' queue's bound (`max_buffered_amount`) and what happens past it.
    buffer_limit: usize,
    buffer_policy: SendPolicy,
}

/// Where the connection is in its life.
enum State {
    /// Messages flow both ways.
    Open(Box<Connection>),
    /// The peer's side has ended (a closing handshake completed, a peer error, or the end of
    /// the stream): what is queued is written out, our side is shut down (a TCP FIN, an HTTP/2
    /// END_STREAM, as RFC 6455 §7.1.1 asks of a server), and the connection is released.
    Ending(Box<Connection>),
    /// The connection is released: nothing more is read or written.
    Released,
}

/// The connection while it is held.
struct Connection {
    io: TokioIo<Upgraded>,
    /// The staging buffer and the decoder.
    reader: Reader,
    /// The frames waiting to be written.
    writer: Writer,
    encoder: Encoder,
    role: Role,
    /// The closing handshake so far: never two Closes, no data after ours.
    close: CloseState,
    /// Frames the socket queued itself (Pong and Close replies, keep-alive Pings, its own
    /// Closes) are waiting for a flush.
    unflushed: bool,
    /// An item read while the handler was only sending, for its next `recv`.
    parked: Option<Result<Message, Error>>,
}

impl Connection {
    /// Queues a frame the socket sends itself (a Pong, a Ping); dropped when the write buffer
    /// is full (the peer is not reading) or our Close has gone out.
    fn queue_own(&mut self, opcode: OpCode, payload: Bytes) {
        if !self.close.may_send_data() {
            return;
        }
        if let Ok(frame) = self.encoder.control(opcode, payload) {
            if self.writer.push(&frame).is_ok() {
                self.unflushed = true;
            }
        }
    }

    /// Queues our Close, unless one went out already. A Close is queued past the write
    /// buffer's bound (it is at most 131 bytes).
    fn queue_close(&mut self, frame: EncodedFrame) -> bool {
        if !self.close.start_close() {
            return false;
        }
        self.writer.push_unbounded(&frame);
        self.unflushed = true;
        true
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.poll_flush(&mut self.io, cx)
    }
}

impl State {
    fn connection_mut(&mut self) -> Option<&mut Connection> {
        match self {
            Self::Open(connection) | Self::Ending(connection) => Some(connection),
            Self::Released => None,
        }
    }

    /// Open becomes Ending; the others stay as they are.
    fn end(&mut self) {
        if let Self::Open(_) = self {
            let Self::Open(connection) = std::mem::replace(self, Self::Released) else { return };
            *self = Self::Ending(connection);
        }
    }
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Open(_) => "open",
            State::Ending(_) => "ending",
            State::Released => "released",
        };
        f.debug_struct("WebSocket")
            .field("protocol", &self.protocol)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl WebSocket {
    /// Runs the WebSocket protocol over an upgraded connection.
    pub(crate) async fn from_upgraded(
        upgraded: Upgraded,
        role: Role,
        protocol: Option<HeaderValue>,
        config: &SocketConfig,
        compression: Option<NegotiatedCompression>,
        open: Option<OpenSocket>,
    ) -> Self {
        let server = role == Role::Server;
        let decoder_config = DecoderConfig {
            role,
            max_frame_size: config.effective_max_frame_size(),
            max_message_size: config.max_message_size,
        };
        let decoder = match compression {
            Some(negotiated) => {
                // The peer's side of the context takeover decides when our inflater starts
                // afresh.
                let reset_after_message = if server {
                    negotiated.client_no_context_takeover
                } else {
                    negotiated.server_no_context_takeover
                };
                Decoder::with_inflater(decoder_config, Box::new(MessageInflater::new(reset_after_message)))
            }
            None => Decoder::new(decoder_config),
        };
        let deflater =
            compression.map(|negotiated| Box::new(Deflater::new(&config.compression, negotiated, server)));
        let connection = Connection {
            io: TokioIo::new(upgraded),
            reader: Reader::new(decoder, config.receive_buffer_size),
            writer: Writer::new(config.write_buffer_size, config.effective_max_write_buffer_size()),
            encoder: Encoder::new(role),
            role,
            close: CloseState::default(),
            unflushed: false,
            parked: None,
        };
        Self {
            state: State::Open(Box::new(connection)),
            protocol,
            keep_alive: KeepAliveClock::new(config.keep_alive_interval, config.keep_alive_timeout),
            recv_waker: None,
            metrics: if open.is_some() {
                crate::metrics::SocketMetrics::open()
            } else {
                crate::metrics::SocketMetrics::none()
            },
            open,
            closing: None,
            traffic: Traffic::new(),
            deflater,
            rate_limit: crate::rate_limit::Gate::new(&config.rate_limit),
            senders: None,
            buffer_limit: config.max_buffered_amount,
            buffer_policy: config.on_buffer_full,
        }
    }

    /// What was agreed for permessage-deflate (RFC 7692) in the handshake, or `None` when the
    /// socket does not compress (compression off, or not offered by the client).
    ///
    /// ```
    /// use tower_websockets::WebSocket;
    ///
    /// async fn handler(socket: WebSocket) {
    ///     match socket.compression() {
    ///         Some(deflate) => tracing::debug!(
    ///             server_no_context_takeover = deflate.server_no_context_takeover(),
    ///             "compressed socket"
    ///         ),
    ///         None => tracing::debug!("plain socket"),
    ///     }
    /// }
    /// ```
    pub fn compression(&self) -> Option<&NegotiatedCompression> {
        self.deflater.as_deref().map(Deflater::negotiated)
    }

    /// Sends a message uncompressed, whatever was negotiated: for a message that carries a
    /// secret beside data an attacker may choose (CRIME/BREACH; see `docs/security.md`), like
    /// .NET's `WebSocketMessageFlags.DisableCompression`. Otherwise as [`send`](Self::send).
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_uncompressed(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        if let Some(deflater) = self.deflater.as_mut() {
            deflater.set_skip_next(true);
        }
        let result = SinkExt::send(&mut *self, message.into()).await;
        if let Some(deflater) = self.deflater.as_mut() {
            deflater.set_skip_next(false);
        }
        result
    }

    /// The identity the layer's [`authenticate`](crate::WebSocketLayerBuilder::authenticate)
    /// function returned for this socket's handshake, if it is an `I`. `None` without
    /// authentication, and on client sockets.
    ///
    /// ```
    /// use tower_websockets::WebSocket;
    ///
    /// #[derive(Clone)]
    /// struct User(String);
    ///
    /// async fn handler(mut socket: WebSocket) {
    ///     let greeting = match socket.identity::<User>() {
    ///         Some(user) => format!("hello {}", user.0),
    ///         None => "hello".to_owned(),
    ///     };
    ///     let _ = socket.send(greeting).await;
    /// }
    /// ```
    pub fn identity<I: 'static>(&self) -> Option<&I> {
        self.open.as_ref()?.identity()?.get()
    }

    /// The subprotocol chosen in the handshake, if any.
    ///
    /// ```
    /// use tower_websockets::{WebSocket, WebSocketUpgrade};
    ///
    /// fn accept(upgrade: WebSocketUpgrade) -> http::Response<tower_websockets::handshake::HandshakeBody> {
    ///     upgrade.protocols(["chat.v2", "chat.v1"]).on_upgrade(|socket: WebSocket| async move {
    ///         match socket.protocol() {
    ///             Some("chat.v2") => { /* the new format */ }
    ///             _ => { /* the old one */ }
    ///         }
    ///     })
    /// }
    /// ```
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_ref().and_then(|p| p.to_str().ok())
    }

    /// Receives the next message. `None` once the connection is closed.
    ///
    /// An error ends the stream: the next call returns `None`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future (in a `select!` branch that lost, say) loses no message;
    /// the next `recv` returns it.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.next().await
    }

    /// Sends a message and flushes it to the connection.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the socket is closed, [`Error::KeepAliveTimeout`] when the peer was
    /// found dead, [`Error::WriteBufferFull`] when the peer does not read, or an I/O error.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: once the future has been polled, the message may be queued, partly
    /// written or wholly sent when it is dropped. A message that was queued goes out with the
    /// next send or flush.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        SinkExt::send(self, message.into()).await
    }

    /// Queues a message without flushing it: several `feed`s and one [`flush`](Self::flush)
    /// share one write to the connection. The queue is also written out once it passes the
    /// write buffer size.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn feed(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        SinkExt::feed(self, message.into()).await
    }

    /// Writes out every queued message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn flush(&mut self) -> Result<(), Error> {
        SinkExt::flush(self).await
    }

    /// Drops the connection.
    fn release(&mut self) {
        self.keep_wire_bytes();
        self.state = State::Released;
        self.end_senders();
    }

    /// Shuts the write side of the connection down (errors are of no interest: the connection
    /// is being released either way).
    fn poll_shutdown_write_side(connection: &mut Connection, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut connection.io).poll_shutdown(cx).map(|_| ())
    }

    /// Runs the keep-alive clock, and acts on its decision: sends a Ping when one is due, drops
    /// the peer when it did not answer in time. Registers `cx` with the clock.
    #[inline]
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        match &self.keep_alive {
            Some(clock) if !clock.is_waiting(cx) => self.poll_keep_alive_decision(cx),
            _ => Ok(()),
        }
    }

    /// [`poll_keep_alive`](Self::poll_keep_alive) once the clock may have something to say.
    #[inline(never)]
    fn poll_keep_alive_decision(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let Some(clock) = self.keep_alive.as_mut() else { return Ok(()) };
        let Some(connection) = self.state.connection_mut() else { return Ok(()) };
        match clock.poll_decide(cx, connection.parked.is_some()) {
            Decision::Wait => Ok(()),
            Decision::TimedOut(timeout) => {
                tracing::debug!(?timeout, "WebSocket keep-alive timeout: dropping the peer");
                if let Some(open) = &self.open {
                    open.tracker().count_keep_alive_timeout();
                }
                Closing::remember(
                    &mut self.closing,
                    CloseCode::ABNORMAL_CLOSURE,
                    ClosedBy::Nobody,
                    Utf8Bytes::from_static("keep-alive timeout"),
                );
                self.release();
                Err(Error::KeepAliveTimeout { timeout })
            }
            Decision::SendPing => {
                // Queued unless the write buffer is full (writes are blocked; the timeout, if
                // any, still runs).
                connection.queue_own(OpCode::Ping, Bytes::new());
                self.poll_flush_own_frames(cx)
            }
        }
    }

    /// Writes out the frames the socket queued itself.
    fn poll_flush_own_frames(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let Some(connection) = self.state.connection_mut() else { return Ok(()) };
        if !connection.unflushed {
            return Ok(());
        }
        match connection.poll_flush(cx) {
            Poll::Ready(result) => {
                connection.unflushed = false;
                result.map_err(Error::Io)
            }
            Poll::Pending => Ok(()),
        }
    }

    /// Reads one item from an open connection, doing the socket's own bookkeeping. `Pending`
    /// when nothing is there; `Ready(None)` once the connection is no longer open.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let State::Open(connection) = &mut self.state else { return Poll::Ready(None) };
        // A throttled socket does not read (TCP pushes back on its peer alone).
        if let Some(gate) = self.rate_limit.as_deref_mut() {
            let counts = self.open.as_ref().map(|open| open.tracker() as &dyn crate::rate_limit::Counts);
            ready!(gate.poll_read_allowed(cx, counts));
        }
        let event = match connection.reader.poll_event(&mut connection.io, cx) {
            Poll::Ready(event) => event,
            Poll::Pending => {
                // A quiet connection holds no buffers (the reader has let its own go).
                if connection.reader.is_quiet() {
                    connection.writer.release_spare();
                }
                return Poll::Pending;
            }
        };
        let event = match event {
            Ok(Some(event)) => event,
            // The end of the stream without a closing handshake (RFC 6455 §7.1.5: 1006).
            Ok(None) => {
                Closing::remember(
                    &mut self.closing,
                    CloseCode::ABNORMAL_CLOSURE,
                    ClosedBy::Nobody,
                    Utf8Bytes::from_static("connection reset"),
                );
                self.state.end();
                return Poll::Ready(Some(Err(Error::ConnectionReset)));
            }
            Err(ReadError::Io(e)) => {
                Closing::remember(
                    &mut self.closing,
                    CloseCode::ABNORMAL_CLOSURE,
                    ClosedBy::Nobody,
                    Utf8Bytes::from_static("I/O error"),
                );
                self.state.end();
                return Poll::Ready(Some(Err(Error::Io(e))));
            }
            Err(ReadError::Protocol(e)) => return self.fail(e, cx),
        };
        if let Some(clock) = self.keep_alive.as_mut() {
            clock.saw_peer();
        }
        let message = match event {
            Event::Text(text) => match Utf8Bytes::try_from(text) {
                Ok(text) => {
                    self.count_message(crate::metrics::Direction::Receive, false, text.len());
                    Message::Text(text)
                }
                // The decoder checked it already.
                Err(_) => return self.fail(ProtocolError::InvalidUtf8, cx),
            },
            Event::Binary(bytes) => {
                self.count_message(crate::metrics::Direction::Receive, true, bytes.len());
                Message::Binary(bytes)
            }
            Event::Pong(payload) => Message::Pong(payload),
            Event::Ping(payload) => {
                // Answered now, so that a handler that stops reading here still answers.
                connection.queue_own(OpCode::Pong, payload.clone());
                let _ = self.poll_flush_own_frames(cx);
                Message::Ping(payload)
            }
            Event::Close(received) => {
                let outcome = connection.close.on_peer_close(received.as_ref());
                let complete = connection.close.is_complete();
                let frame = received.map(|frame| {
                    let reason = Utf8Bytes::try_from(frame.reason).unwrap_or(Utf8Bytes::from_static(""));
                    CloseFrame::new(CloseCode(frame.code), reason)
                });
                let code = frame.as_ref().map_or(CloseCode::NO_STATUS_RECEIVED, |f| f.code);
                let reason = frame.as_ref().map_or(Utf8Bytes::from_static(""), |f| f.reason.clone());
                Closing::remember(&mut self.closing, code, ClosedBy::Peer, reason);
                // The reply echoes the peer's code and reason, or is empty for an empty Close
                // (RFC 6455 §5.5.1); there is none when ours went first.
                if let OnPeerClose::Reply(code) = outcome {
                    let reason = frame.as_ref().map_or("", |f| f.reason.as_str());
                    if let Ok(reply) = connection.encoder.close(code.map(|code| (code, reason))) {
                        connection.writer.push_unbounded(&reply);
                        connection.unflushed = true;
                    }
                    let _ = self.poll_flush_own_frames(cx);
                }
                // The closing handshake is complete (the peer's Close, answered; or the answer
                // to ours): the connection ends.
                if complete {
                    self.state.end();
                }
                Message::Close(frame)
            }
        };
        // Every message but the peer's Close (its closing handshake always completes).
        if let Some(gate) = self.rate_limit.as_deref_mut() {
            let counts = self.open.as_ref().map(|open| open.tracker() as &dyn crate::rate_limit::Counts);
            if !message.is_close() && gate.charge(message.len(), counts).is_err() {
                self.state.end();
                let error = Error::RateLimited;
                if let Some(frame) = error.close_frame() {
                    self.queue_close(frame, cx);
                }
                return Poll::Ready(Some(Err(error)));
            }
        }
        Poll::Ready(Some(Ok(message)))
    }

    /// Fails the connection on the peer's error (RFC 6455 §7.1.7): the Close with its code is
    /// queued and the error returned; nothing more is read.
    fn fail(&mut self, e: ProtocolError, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        self.state.end();
        let code = CloseCode(failure_code(&e));
        let error = Error::from(e);
        if let Some(frame) = error.close_frame() {
            tracing::debug!(%error, %code, "closing WebSocket on a peer error");
            self.queue_close(CloseFrame::new(code, frame.reason), cx);
        }
        Poll::Ready(Some(Err(error)))
    }

    /// Finishes an ending connection: writes out what is queued, shuts our side down, and
    /// releases it. `Pending` while that waits on the peer, which is still subject to the
    /// keep-alive timeout.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let flushed = self.poll_flush_own_frames(cx).is_ok();
        let Some(connection) = self.state.connection_mut() else { return Poll::Ready(None) };
        // A failed flush gives up on what was queued; shut down all the same.
        let done =
            !(flushed && connection.unflushed) && Self::poll_shutdown_write_side(connection, cx).is_ready();
        if done {
            self.release();
            return Poll::Ready(None);
        }
        match self.poll_keep_alive(cx) {
            Ok(()) => Poll::Pending,
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    /// What the send path does for a handler that may never call `recv`: keep-alive and the
    /// shutdown and, while a keep-alive Ping waits for its answer, reading what the peer sent
    /// (parked for the next `recv`).
    fn poll_duties_while_sending(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        // Wake the receiver, if one is waiting, rather than the sender.
        let recv_waker = self.recv_waker.take();
        let mut background = Context::from_waker(recv_waker.as_ref().unwrap_or(cx.waker()));
        let awaiting = self.keep_alive.as_ref().is_some_and(KeepAliveClock::is_awaiting_answer);
        let nothing_parked = matches!(&self.state, State::Open(c) if c.parked.is_none());
        if awaiting && nothing_parked {
            loop {
                let item = match self.poll_read(&mut background) {
                    Poll::Ready(Some(Ok(Message::Pong(_) | Message::Ping(_)))) => continue,
                    Poll::Ready(Some(item)) => item,
                    Poll::Ready(None) | Poll::Pending => break,
                };
                if let Some(connection) = self.state.connection_mut() {
                    connection.parked = Some(item);
                }
                if let Some(waker) = &recv_waker {
                    waker.wake_by_ref();
                }
                break;
            }
        }
        self.close_if_shutting_down(&mut background, true);
        self.pump_senders(&mut background);
        let result = self.poll_keep_alive(&mut background);
        self.recv_waker = recv_waker;
        result
    }

    /// Remembers the waker of `recv`, unless it is the one already kept.
    fn remember_recv_waker(&mut self, cx: &Context<'_>) {
        match &self.recv_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => self.recv_waker = Some(cx.waker().clone()),
        }
    }

    /// The connection to send on, while data may still be sent: it is open and our Close has
    /// not gone out.
    fn sending(&mut self) -> Result<&mut Connection, Error> {
        match &mut self.state {
            State::Open(connection) if connection.close.may_send_data() => Ok(connection),
            _ => Err(Error::Closed),
        }
    }

    /// Queues a frame of the handler's.
    fn queue(&mut self, frame: &EncodedFrame) -> Result<(), Error> {
        self.sending()?.writer.push(frame).map_err(|_| Error::WriteBufferFull)
    }
}
/// The messages from the peer, as [`recv`](WebSocket::recv) returns them: Pings, Pongs and the
/// peer's Close included. After an error, or once the connection is closed, the stream ends.
impl Stream for WebSocket {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.state.connection_mut().and_then(|c| c.parked.take()) {
            return Poll::Ready(Some(item));
        }
        this.remember_recv_waker(cx);
        this.pump_senders(cx);
        if let Err(e) = this.poll_flush_own_frames(cx) {
            this.release();
            return Poll::Ready(Some(Err(e)));
        }
        match this.state {
            State::Released => return Poll::Ready(None),
            State::Ending(_) => return this.poll_finish(cx),
            State::Open(_) => {}
        }
        this.close_if_shutting_down(cx, false);
        match this.poll_read(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            // The connection is no longer open: finish it.
            Poll::Ready(None) => this.poll_finish(cx),
            Poll::Pending => {
                this.close_if_shutting_down(cx, true);
                match this.poll_keep_alive(cx) {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Some(Err(e))),
                }
            }
        }
    }
}

/// Sending, as [`feed`](WebSocket::feed) (`start_send`) and [`flush`](WebSocket::flush) do, with
/// keep-alive still running while a flush waits. `poll_close` sends a Close without a code and
/// does not wait for the peer's answer: prefer [`close`](WebSocket::close), which sends a code
/// and reason and completes the closing handshake.
impl Sink<Message> for WebSocket {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.poll_duties_while_sending(cx)?;
        let connection = this.sending()?;
        // Over `write_buffer_size`, the queue is written out first.
        match connection.writer.poll_ready(&mut connection.io, cx) {
            Poll::Ready(result) => Poll::Ready(result.map_err(Error::Io)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        let frame = match message {
            Message::Close(frame) => return this.start_close(frame),
            Message::Ping(payload) => this.sending()?.encoder.control(OpCode::Ping, payload),
            Message::Pong(payload) => this.sending()?.encoder.control(OpCode::Pong, payload),
            Message::Text(text) => {
                let len = text.len();
                let frame = this.data_frame(OpCode::Text, text.into())?;
                this.queue(&frame)?;
                this.count_message(crate::metrics::Direction::Transmit, false, len);
                return Ok(());
            }
            Message::Binary(bytes) => {
                let len = bytes.len();
                let frame = this.data_frame(OpCode::Binary, bytes)?;
                this.queue(&frame)?;
                this.count_message(crate::metrics::Direction::Transmit, true, len);
                return Ok(());
            }
        };
        let frame =
            frame.map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
        this.queue(&frame)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        // What the senders queued goes out with this flush.
        this.pump_senders(cx);
        let Some(connection) = this.state.connection_mut() else { return Poll::Ready(Err(Error::Closed)) };
        match connection.poll_flush(cx) {
            Poll::Ready(result) => {
                connection.unflushed = false;
                this.sync_senders();
                Poll::Ready(result.map_err(Error::Io))
            }
            // The peer is not reading: keep-alive (and shutdown) still run while we wait.
            Poll::Pending => {
                this.poll_duties_while_sending(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        // A Sink close sends a Close without a code: the peer sees 1005.
        Closing::remember(
            &mut this.closing,
            CloseCode::NO_STATUS_RECEIVED,
            ClosedBy::Server,
            Utf8Bytes::from_static(""),
        );
        let Some(connection) = this.state.connection_mut() else { return Poll::Ready(Ok(())) };
        if let Ok(close) = connection.encoder.close(None) {
            connection.queue_close(close);
        }
        let result = ready!(connection.poll_flush(cx));
        connection.unflushed = false;
        Poll::Ready(result.map_err(Error::Io))
    }
}

impl WebSocket {
    /// A data message's frame: compressed (RSV1 set) when the deflater wants it.
    fn data_frame(&mut self, opcode: OpCode, payload: Bytes) -> Result<EncodedFrame, Error> {
        let compressed = self.deflater.as_deref_mut().and_then(|deflater| {
            if deflater.wants(payload.len()) { deflater.compress(&payload) } else { None }
        });
        let connection = self.sending()?;
        Ok(match compressed {
            Some(compressed) => connection.encoder.frame(opcode, true, true, compressed),
            None => connection.encoder.frame(opcode, true, false, payload),
        })
    }

    /// A Close the handler sends through the `Sink` (or [`close`](Self::close)): queued once;
    /// a second one, or one after the peer's, does nothing.
    fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if let Some(frame) = &frame {
            close::check_sendable(frame.code, &frame.reason)?;
        }
        match &frame {
            Some(f) => Closing::remember(&mut self.closing, f.code, ClosedBy::Server, f.reason.clone()),
            None => Closing::remember(
                &mut self.closing,
                CloseCode::NO_STATUS_RECEIVED,
                ClosedBy::Server,
                Utf8Bytes::from_static(""),
            ),
        }
        let Some(connection) = self.state.connection_mut() else { return Err(Error::Closed) };
        let close = connection
            .encoder
            .close(frame.as_ref().map(|f| (f.code.0, f.reason.as_str())))
            .map_err(|e| Error::InvalidClose(e.to_string()))?;
        connection.queue_close(close);
        Ok(())
    }
}

impl Drop for WebSocket {
    fn drop(&mut self) {
        self.summarize();
    }
}
