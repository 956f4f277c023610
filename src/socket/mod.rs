//! [`WebSocket`]: an accepted connection, with keep-alive, limits and a clean close.
//!
//! - `mod.rs` (here): the socket's state machine, receiving ([`Stream`]) and sending ([`Sink`]);
//! - [`transport`]: the IO under tungstenite, over hyper's upgraded connection;
//! - [`keep_alive`]: the clock that decides when to Ping and when to give the peer up;
//! - [`close`]: the close rules, the closing handshake, and the Closes the socket sends itself.
//!
//! tokio-tungstenite's `WebSocketStream` is the protocol engine (framing, masking, UTF-8, the
//! close rules of RFC 6455). The socket runs no task of its own: keep-alive, shutdown and the
//! replies to the peer's Pings and Close run while the handler awaits `recv`, `send` or a flush.

mod close;
mod keep_alive;
mod prepared;
mod rate_limit;

pub(crate) use rate_limit::Counts as RateLimitCounts;
pub use rate_limit::{RateLimit, RateLimitPolicy};
mod transport;

use std::{
    pin::Pin,
    task::{Context, Poll, Waker, ready},
};

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::HeaderValue;
use hyper::upgrade::Upgraded;
use tokio::io::AsyncWrite;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self,
        protocol::{
            Role,
            frame::{
                Frame,
                coding::{Data, OpCode},
            },
        },
    },
};

pub(crate) use self::transport::TransportError;
use self::{
    keep_alive::{Decision, KeepAliveClock},
    transport::{PlainConfig, TUNGSTENITE_READ_BUFFER, Transport},
};
use crate::{
    config::SocketConfig,
    deflate::{Deflater, InflaterConfig, NegotiatedCompression},
    error::Error,
    lifecycle::OpenSocket,
    message::{CloseCode, Message},
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
    /// The code of the last Close sent or received, for the log.
    close_code: Option<CloseCode>,
    /// permessage-deflate's send side, when negotiated (the receive side is in the transport).
    deflater: Option<Box<Deflater>>,
    /// The rate limit on what the peer sends; `None` without one.
    rate_limit: Option<Box<rate_limit::Gate>>,
}

/// Where the connection is in its life.
enum State {
    /// Messages flow both ways.
    Open(Connection),
    /// The peer's side has ended (a closing handshake completed, a peer error, or the end of
    /// the stream): what is queued is written out, our side is shut down (a TCP FIN, an HTTP/2
    /// END_STREAM, as RFC 6455 §7.1.1 asks of a server), and the connection is released.
    Ending(Connection),
    /// The connection is released: nothing more is read or written.
    Released,
}

/// The connection while it is held.
struct Connection {
    stream: WebSocketStream<Transport>,
    /// Frames the socket queued itself (Pong and Close replies, keep-alive Pings, its own
    /// Closes) are waiting for a flush.
    unflushed: bool,
    /// An item read while the handler was only sending, for its next `recv`.
    parked: Option<Result<Message, Error>>,
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
        let inflate = compression.map(|negotiated| InflaterConfig {
            server,
            // The peer's side of the context takeover decides when our inflater starts afresh.
            reset_after_message: if server {
                negotiated.client_no_context_takeover
            } else {
                negotiated.server_no_context_takeover
            },
            max_message_size: config.max_message_size,
            max_frame_size: config.max_frame_size.or(config.max_message_size),
        });
        let deflater =
            compression.map(|negotiated| Box::new(Deflater::new(&config.compression, negotiated, server)));
        // A plain server socket takes large messages off tungstenite's path (the transport's
        // bypass), so tungstenite only needs a small read buffer.
        let bypass = server && inflate.is_none();
        let plain = PlainConfig {
            read_size: config.receive_buffer_size,
            bypass_max: bypass.then(|| {
                let frame = config.max_frame_size.or(config.max_message_size).unwrap_or(usize::MAX);
                let message = config.max_message_size.unwrap_or(usize::MAX);
                u64::try_from(frame.min(message)).unwrap_or(u64::MAX)
            }),
        };
        let read_buffer_size = if bypass {
            config.receive_buffer_size.min(TUNGSTENITE_READ_BUFFER)
        } else {
            config.receive_buffer_size
        };
        let transport = Transport::new(upgraded, inflate, plain);
        let stream =
            WebSocketStream::from_raw_socket(transport, role, Some(config.to_tungstenite(read_buffer_size)))
                .await;
        Self {
            state: State::Open(Connection { stream, unflushed: false, parked: None }),
            protocol,
            keep_alive: KeepAliveClock::new(config.keep_alive_interval, config.keep_alive_timeout),
            recv_waker: None,
            open,
            close_code: None,
            deflater,
            rate_limit: rate_limit::Gate::new(&config.rate_limit),
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
    /// fn accept(upgrade: WebSocketUpgrade) -> http::Response<tower_websockets::TextBody> {
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
        self.state = State::Released;
    }

    /// Shuts the write side of the connection down (errors are of no interest: the connection
    /// is being released either way).
    fn poll_shutdown_write_side(connection: &mut Connection, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(connection.stream.get_mut()).poll_shutdown(cx).map(|_| ())
    }

    /// Runs the keep-alive clock, and acts on its decision: sends a Ping when one is due, drops
    /// the peer when it did not answer in time. Registers `cx` with the clock.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let Some(clock) = self.keep_alive.as_mut() else { return Ok(()) };
        let Some(connection) = self.state.connection_mut() else { return Ok(()) };
        match clock.poll_decide(cx, connection.parked.is_some()) {
            Decision::Wait => Ok(()),
            Decision::TimedOut(timeout) => {
                tracing::debug!(?timeout, "WebSocket keep-alive timeout: dropping the peer");
                if let Some(open) = &self.open {
                    open.tracker().count_keep_alive_timeout();
                }
                self.release();
                Err(Error::KeepAliveTimeout { timeout })
            }
            Decision::SendPing => {
                let stream = Pin::new(&mut connection.stream);
                match stream.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        Pin::new(&mut connection.stream)
                            .start_send(Message::Ping(Bytes::new()).into_tungstenite())
                            .map_err(Error::from_tungstenite)?;
                        connection.unflushed = true;
                    }
                    Poll::Ready(Err(e)) => return Err(Error::from_tungstenite(e)),
                    // Writes are blocked; the timeout, if any, still runs.
                    Poll::Pending => {}
                }
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
        match Pin::new(&mut connection.stream).poll_flush(cx) {
            Poll::Ready(result) => {
                connection.unflushed = false;
                result.map_err(Error::from_tungstenite)
            }
            Poll::Pending => Ok(()),
        }
    }

    /// Reads one item from an open connection, doing the socket's own bookkeeping. `Pending`
    /// when nothing is there; `Ready(None)` once the connection is no longer open.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            let State::Open(connection) = &mut self.state else { return Poll::Ready(None) };
            // A throttled socket does not read (TCP pushes back on its peer alone).
            if let Some(gate) = self.rate_limit.as_deref_mut() {
                let counts = self.open.as_ref().map(|open| open.tracker() as &dyn RateLimitCounts);
                ready!(gate.poll_read_allowed(cx, counts));
            }
            let item = match Pin::new(&mut connection.stream).poll_next(cx) {
                Poll::Ready(item) => item,
                // tungstenite has read every frame before a message the transport took off its
                // path: that message is next. (No waker is needed: it is returned now.)
                Poll::Pending => match connection.stream.get_mut().take_message() {
                    Some(message) => Some(Ok(message)),
                    None => return Poll::Pending,
                },
            };
            // Every message but the peer's Close (its closing handshake always completes).
            if let (Some(gate), Some(Ok(message))) = (self.rate_limit.as_deref_mut(), &item) {
                let counts = self.open.as_ref().map(|open| open.tracker() as &dyn RateLimitCounts);
                if !message.is_close() && gate.charge(message.len(), counts).is_err() {
                    self.state.end();
                    let error = Error::RateLimited;
                    if let Some(frame) = error.close_frame() {
                        self.queue_close(frame, cx);
                    }
                    return Poll::Ready(Some(Err(error)));
                }
            }
            match item {
                Some(Ok(message)) => {
                    if let Some(clock) = self.keep_alive.as_mut() {
                        clock.saw_peer();
                    }
                    let Some(message) = Message::from_tungstenite(message) else { continue };
                    if let Message::Close(frame) = &message {
                        self.close_code =
                            Some(frame.as_ref().map_or(CloseCode::NO_STATUS_RECEIVED, |f| f.code));
                    }
                    if matches!(message, Message::Ping(_) | Message::Close(_)) {
                        // tungstenite queued the Pong or the Close reply: send it now, so that
                        // a handler that stops reading here still answers.
                        connection.unflushed = true;
                        let _ = self.poll_flush_own_frames(cx);
                    }
                    if message.is_close() {
                        // The closing handshake is complete (the peer's Close, answered; or the
                        // answer to ours).
                        self.state.end();
                    }
                    return Poll::Ready(Some(Ok(message)));
                }
                Some(Err(e)) => {
                    self.state.end();
                    let error = Error::from_tungstenite(e);
                    if let Some(frame) = error.close_frame() {
                        tracing::debug!(%error, code = %frame.code, "closing WebSocket on a peer error");
                        self.queue_close(frame, cx);
                    }
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    self.state.end();
                    return Poll::Ready(None);
                }
            }
        }
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

    /// The open stream to send on.
    fn sending_stream(&mut self) -> Result<Pin<&mut WebSocketStream<Transport>>, Error> {
        match self.state.connection_mut() {
            Some(connection) => Ok(Pin::new(&mut connection.stream)),
            None => Err(Error::Closed),
        }
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
        this.sending_stream()?.poll_ready(cx).map_err(Error::from_tungstenite)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        if let Message::Close(frame) = &message {
            this.close_code = Some(frame.as_ref().map_or(CloseCode::NO_STATUS_RECEIVED, |f| f.code));
        }
        let message = match this.deflater.as_mut() {
            Some(deflater) => compress(deflater, message),
            None => message.into_tungstenite(),
        };
        this.sending_stream()?.start_send(message).map_err(Error::from_tungstenite)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let Some(connection) = this.state.connection_mut() else { return Poll::Ready(Err(Error::Closed)) };
        match Pin::new(&mut connection.stream).poll_flush(cx) {
            Poll::Ready(result) => {
                connection.unflushed = false;
                Poll::Ready(result.map_err(Error::from_tungstenite))
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
        this.close_code.get_or_insert(CloseCode::NO_STATUS_RECEIVED);
        let Some(connection) = this.state.connection_mut() else { return Poll::Ready(Ok(())) };
        let result = ready!(Pin::new(&mut connection.stream).poll_close(cx)).map_err(Error::from_tungstenite);
        Poll::Ready(result)
    }
}

/// A data message as a compressed frame (RSV1 set), when the deflater wants it; any other
/// message as it is.
fn compress(deflater: &mut Deflater, message: Message) -> tungstenite::Message {
    let (payload, opcode) = match &message {
        Message::Text(text) => (text.as_bytes(), Data::Text),
        Message::Binary(bytes) => (&bytes[..], Data::Binary),
        _ => return message.into_tungstenite(),
    };
    if !deflater.wants(payload.len()) {
        return message.into_tungstenite();
    }
    let Some(compressed) = deflater.compress(payload) else { return message.into_tungstenite() };
    compressed_frame(compressed, opcode)
}

/// A compressed payload as the one frame of a message, RSV1 set (RFC 7692 §6).
fn compressed_frame(compressed: Bytes, opcode: Data) -> tungstenite::Message {
    let mut frame = Frame::message(compressed, OpCode::Data(opcode), true);
    frame.header_mut().rsv1 = true;
    tungstenite::Message::Frame(frame)
}

impl Drop for WebSocket {
    fn drop(&mut self) {
        if self.open.is_some() {
            match self.close_code {
                Some(code) => tracing::debug!(%code, "WebSocket closed"),
                None => tracing::debug!("WebSocket closed without a closing handshake"),
            }
        }
    }
}
