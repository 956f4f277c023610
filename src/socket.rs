//! [`WebSocket`]: an accepted connection, with keep-alive, limits and a clean close.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker, ready},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::HeaderValue;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWrite;
use tokio::{
    sync::futures::OwnedNotified,
    time::{Instant, Sleep},
};
use tokio_tungstenite::{WebSocketStream, tungstenite::protocol::Role};

use crate::{
    config::SocketConfig,
    error::Error,
    lifecycle::OpenSocket,
    message::{CloseCode, CloseFrame, Message, Utf8Bytes},
};

type Inner = WebSocketStream<TokioIo<Upgraded>>;

/// How long [`WebSocket::close`] waits for the peer's Close after sending its own.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// `None` once the connection has been released.
    inner: Option<Inner>,
    protocol: Option<HeaderValue>,
    keep_alive: Option<KeepAlive>,
    /// Something read while only sending, for the next `recv`.
    pending: Option<Result<Message, Error>>,
    /// The waker of the last `recv`, so that work done while sending wakes the receiver.
    recv_waker: Option<Waker>,
    /// Frames are queued that a flush still has to write.
    flush_pending: bool,
    /// The peer's side has ended: no more messages will come.
    ended: bool,
    /// The layer's hold on this socket (counts, slot, shutdown); `None` for client sockets.
    open: Option<OpenSocket>,
    /// Completes when the layer shuts down; `None` once acted on.
    shutdown: Option<ShutdownWatch>,
    /// The code of the last Close sent or received, for the log.
    close_code: Option<CloseCode>,
}

struct ShutdownWatch {
    signal: Pin<Box<OwnedNotified>>,
    /// The waker the signal was last polled with: polled again only for another waker.
    registered: Option<Waker>,
}

struct KeepAlive {
    interval: Duration,
    timeout: Option<Duration>,
    timer: Pin<Box<Sleep>>,
    /// When a frame last came from the peer.
    last_seen: Instant,
    /// When the last keep-alive Ping went out.
    last_ping: Option<Instant>,
    /// A keep-alive Ping is waiting for an answer (only with a timeout).
    awaiting_answer: bool,
    /// The waker the timer was last polled with: it is polled again only for another waker,
    /// or once it has fired (a poll per message would re-register the same waker each time).
    registered: Option<Waker>,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("protocol", &self.protocol)
            .field("open", &self.inner.is_some())
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
        open: Option<OpenSocket>,
    ) -> Self {
        // Take the signal before anything can check the flag, so that no shutdown is missed.
        let shutdown = open.as_ref().map(|open| ShutdownWatch {
            signal: Box::pin(open.tracker().shutdown_signal()),
            registered: None,
        });
        let stream =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), role, Some(config.to_tungstenite()))
                .await;
        let keep_alive = (!config.keep_alive_interval.is_zero()).then(|| {
            let now = Instant::now();
            KeepAlive {
                interval: config.keep_alive_interval,
                timeout: config.keep_alive_timeout,
                timer: Box::pin(tokio::time::sleep_until(now + config.keep_alive_interval)),
                last_seen: now,
                last_ping: None,
                awaiting_answer: false,
                registered: None,
            }
        });
        Self {
            inner: Some(stream),
            protocol,
            keep_alive,
            pending: None,
            recv_waker: None,
            flush_pending: false,
            ended: false,
            open,
            shutdown,
            close_code: None,
        }
    }

    /// The subprotocol chosen in the handshake, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_ref().and_then(|p| p.to_str().ok())
    }

    /// Receives the next message. `None` once the connection is closed.
    ///
    /// An error ends the stream: the next call returns `None`.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.next().await
    }

    /// Sends a message and flushes it to the connection.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the socket is closed, [`Error::KeepAliveTimeout`] when the peer was
    /// found dead, [`Error::WriteBufferFull`] when the peer does not read, or an I/O error.
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

    /// Starts the closing handshake with `code` and `reason`, and waits for the peer's Close: 10
    /// seconds at most for the whole handshake, sending included. Messages that arrive meanwhile
    /// are discarded. The connection is released when this returns.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidClose`] for a code that may not be sent (below 1000, 1004 to 1006, 1015,
    /// 1016 to 2999, 5000 and up) or a reason longer than 123 bytes; [`Error::CloseTimeout`] when
    /// the peer did not answer in time; the error that ended the connection otherwise.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let sendable = matches!(code.0, 1000..=1003 | 1007..=1014 | 3000..=4999);
        if !sendable {
            return Err(Error::InvalidClose(format!("close code {code} may not be sent")));
        }
        if reason.len() > 123 {
            return Err(Error::InvalidClose(format!(
                "close reason is {} bytes; the limit is 123",
                reason.len()
            )));
        }
        let frame = CloseFrame::new(code, Utf8Bytes::from(reason));
        let handshake = async {
            match SinkExt::send(&mut *self, Message::Close(Some(frame))).await {
                Ok(()) | Err(Error::Closed) => {}
                Err(e) => return Err(e),
            }
            while let Some(item) = self.next().await {
                item?;
            }
            Ok(())
        };
        let result = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, handshake).await;
        self.release();
        result.unwrap_or(Err(Error::CloseTimeout))
    }

    /// Shuts the write side of the connection down (errors are of no interest: the connection
    /// is being released either way).
    fn poll_shutdown_transport(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(()) };
        Pin::new(inner.get_mut()).poll_shutdown(cx).map(|_| ())
    }

    /// Drops the connection.
    fn release(&mut self) {
        self.inner = None;
        self.ended = true;
        self.pending = None;
        self.flush_pending = false;
    }

    /// Runs the keep-alive clock: sends a Ping when one is due, and drops the peer when it
    /// did not answer in time. Registers `cx` with the timer.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let Some(ka) = self.keep_alive.as_mut() else { return Ok(()) };
        if self.inner.is_none() {
            return Ok(());
        }
        let same_waker = ka.registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker()));
        if same_waker && !ka.timer.is_elapsed() {
            return Ok(());
        }
        if !same_waker {
            ka.registered = Some(cx.waker().clone());
        }
        while ka.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            if ka.awaiting_answer {
                let answered = ka.last_ping.is_some_and(|ping| ka.last_seen >= ping);
                // A message parked for a handler that only sends hides what came after it (the
                // answer, most likely): the peer did send something, so it is not counted dead.
                let unknown = self.pending.is_some();
                if !answered && !unknown {
                    let timeout = ka.timeout.unwrap_or_default();
                    tracing::debug!(?timeout, "WebSocket keep-alive timeout: dropping the peer");
                    if let Some(open) = &self.open {
                        open.tracker().count_keep_alive_timeout();
                    }
                    self.release();
                    return Err(Error::KeepAliveTimeout { timeout });
                }
                ka.awaiting_answer = false;
            }
            let quiet_since = ka.last_ping.map_or(ka.last_seen, |ping| ping.max(ka.last_seen));
            let due = quiet_since + ka.interval;
            if now < due {
                ka.timer.as_mut().reset(due);
                continue;
            }
            ka.last_ping = Some(now);
            match ka.timeout {
                Some(timeout) => {
                    ka.awaiting_answer = true;
                    ka.timer.as_mut().reset(now + timeout);
                }
                None => ka.timer.as_mut().reset(now + ka.interval),
            }
            let inner = self.inner.as_mut().expect("checked above");
            match Pin::new(&mut *inner).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    Pin::new(&mut *inner)
                        .start_send(Message::Ping(Bytes::new()).into_tungstenite())
                        .map_err(Error::from_tungstenite)?;
                    self.flush_pending = true;
                }
                Poll::Ready(Err(e)) => return Err(Error::from_tungstenite(e)),
                // Writes are blocked; the timeout, if any, still runs.
                Poll::Pending => {}
            }
            return self.poll_flush_queued(cx);
        }
        Ok(())
    }

    /// Writes out frames queued by the socket itself (keep-alive Pings, Pong and Close replies).
    fn poll_flush_queued(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        if !self.flush_pending {
            return Ok(());
        }
        let Some(inner) = self.inner.as_mut() else { return Ok(()) };
        match Pin::new(inner).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.flush_pending = false;
                Ok(())
            }
            Poll::Ready(Err(e)) => {
                self.flush_pending = false;
                Err(Error::from_tungstenite(e))
            }
            Poll::Pending => Ok(()),
        }
    }

    /// Reads one item from the connection, doing the socket's own bookkeeping. `Pending` when
    /// nothing is there.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
            if self.ended {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut *inner).poll_next(cx)) {
                Some(Ok(message)) => {
                    if let Some(ka) = self.keep_alive.as_mut() {
                        ka.last_seen = Instant::now();
                    }
                    let Some(message) = Message::from_tungstenite(message) else { continue };
                    if let Message::Close(frame) = &message {
                        self.close_code = Some(frame.as_ref().map_or(CloseCode(1005), |f| f.code));
                    }
                    if matches!(message, Message::Ping(_) | Message::Close(_)) {
                        // tungstenite queued the Pong or the Close reply: send it now, so that
                        // a handler that stops reading here still answers.
                        self.flush_pending = true;
                        let _ = self.poll_flush_queued(cx);
                    }
                    if message.is_close() {
                        // The closing handshake is complete (the peer's Close, answered; or the
                        // answer to ours): the next poll finishes writing and, as RFC 6455 §7.1.1
                        // asks of a server, closes the TCP connection first.
                        self.ended = true;
                    }
                    return Poll::Ready(Some(Ok(message)));
                }
                Some(Err(e)) => {
                    self.ended = true;
                    let error = Error::from_tungstenite(e);
                    if let Some(frame) = error.close_frame() {
                        tracing::debug!(%error, code = %frame.code, "closing WebSocket on a peer error");
                        self.queue_close(frame, cx);
                    }
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
            }
        }
    }

    /// Sends a Close frame the socket decided on itself (a peer error, a shutdown), and starts
    /// writing it out.
    fn queue_close(&mut self, frame: CloseFrame, cx: &mut Context<'_>) {
        let Some(inner) = self.inner.as_mut() else { return };
        self.close_code = Some(frame.code);
        if Pin::new(inner).start_send(Message::Close(Some(frame)).into_tungstenite()).is_ok() {
            self.flush_pending = true;
            let _ = self.poll_flush_queued(cx);
        }
    }

    /// Closes with 1001 once the layer shuts down. With `register`, makes sure `cx` is woken
    /// when that happens.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>, register: bool) {
        let Some(watch) = self.shutdown.as_mut() else { return };
        let Some(open) = &self.open else { return };
        let mut triggered = open.tracker().is_shutting_down();
        if !triggered && register && !watch.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            triggered = watch.signal.as_mut().poll(cx).is_ready();
            watch.registered = Some(cx.waker().clone());
        }
        if triggered {
            self.shutdown = None;
            tracing::debug!("WebSocket shutdown: closing with 1001");
            self.queue_close(CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down"), cx);
        }
    }

    /// Work the send path does for a handler that may never call `recv`: keep-alive, and, while
    /// a keep-alive Ping waits for its answer, reading what the peer sent.
    fn poll_background(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        // Wake the receiver, if one is waiting, rather than the sender.
        let recv_waker = self.recv_waker.take();
        let mut background = Context::from_waker(recv_waker.as_ref().unwrap_or(cx.waker()));
        let awaiting = self.keep_alive.as_ref().is_some_and(|ka| ka.awaiting_answer);
        if awaiting && self.pending.is_none() {
            while let Poll::Ready(item) = self.poll_read(&mut background) {
                match item {
                    Some(Ok(Message::Pong(_) | Message::Ping(_))) => continue,
                    Some(item) => {
                        self.pending = Some(item);
                        if let Some(waker) = &recv_waker {
                            waker.wake_by_ref();
                        }
                    }
                    None => {}
                }
                break;
            }
        }
        self.poll_shutdown(&mut background, true);
        let result = self.poll_keep_alive(&mut background);
        self.recv_waker = recv_waker;
        result
    }
}

/// The messages from the peer, as [`recv`](WebSocket::recv) returns them: Pings, Pongs and the
/// peer's Close included. After an error, or once the connection is closed, the stream ends.
impl Stream for WebSocket {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.pending.take() {
            return Poll::Ready(Some(item));
        }
        match &this.recv_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => this.recv_waker = Some(cx.waker().clone()),
        }
        if let Err(e) = this.poll_flush_queued(cx) {
            this.release();
            return Poll::Ready(Some(Err(e)));
        }
        if this.ended {
            // Write out what is queued (a Close reply, or our Close after a peer error), then
            // shut our side down (a TCP FIN, an HTTP/2 END_STREAM) so that it is delivered, and
            // release the connection.
            let flushed = this.poll_flush_queued(cx).is_ok();
            let done = !(flushed && this.flush_pending) && this.poll_shutdown_transport(cx).is_ready();
            if !done {
                // A peer that does not read is still subject to the keep-alive timeout.
                return match this.poll_keep_alive(cx) {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Some(Err(e))),
                };
            }
            this.release();
            return Poll::Ready(None);
        }
        this.poll_shutdown(cx, false);
        match this.poll_read(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Ready(None) => {
                // Same as above: flush, then release.
                Pin::new(this).poll_next(cx)
            }
            Poll::Pending => {
                this.poll_shutdown(cx, true);
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
        this.poll_background(cx)?;
        let inner = this.inner.as_mut().ok_or(Error::Closed)?;
        Pin::new(inner).poll_ready(cx).map_err(Error::from_tungstenite)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        if let Message::Close(frame) = &message {
            this.close_code = Some(frame.as_ref().map_or(CloseCode(1005), |f| f.code));
        }
        let inner = this.inner.as_mut().ok_or(Error::Closed)?;
        Pin::new(inner).start_send(message.into_tungstenite()).map_err(Error::from_tungstenite)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(Err(Error::Closed)) };
        match Pin::new(inner).poll_flush(cx) {
            Poll::Ready(result) => {
                this.flush_pending = false;
                Poll::Ready(result.map_err(Error::from_tungstenite))
            }
            // The peer is not reading: keep-alive (and shutdown) still run while we wait.
            Poll::Pending => {
                this.poll_background(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        // A Sink close sends a Close without a code: the peer sees 1005.
        this.close_code.get_or_insert(CloseCode(1005));
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(Ok(())) };
        let result = ready!(Pin::new(inner).poll_close(cx)).map_err(Error::from_tungstenite);
        Poll::Ready(result)
    }
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
