//! [`WebSocketSender`]: cloneable handles that queue messages for a socket from any task, the
//! queue they share (bounded in bytes, with a [`SendPolicy`] past the bound), and the owner's
//! side: [`WebSocket::sender`], [`WebSocket::closed`] and the pump that moves the queue into
//! the socket's `Writer` whenever the owner is polled.
//!
//! The socket keeps one owner (the handler's task): the senders never touch the connection.
//! They push into the shared queue and wake the owner, whose `recv`, `send`, `flush` or
//! `closed` frames what is queued through the same `Writer` as its own messages (small frames
//! coalesced into one write).

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Waker},
    time::Duration,
};

use futures_util::{Sink, future::Either};
use tokio::{sync::Notify, time::Instant};

use super::WebSocket;
use crate::{
    config::SendPolicy,
    error::{Error, SendError},
    message::{CloseCode, CloseFrame, Message},
};

/// The reason sent with a Close under [`SendPolicy::Close`].
pub const BUFFER_FULL_CLOSE_REASON: &str = "send buffer full";

/// Every shared queue alive, for the leak tests (`test::live_sender_queues`).
static LIVE_QUEUES: AtomicUsize = AtomicUsize::new(0);

/// How many sender queues are alive in this process (a queue lives while its socket or any of
/// its senders does).
#[cfg(feature = "test-util")]
pub(crate) fn live_queues() -> usize {
    LIVE_QUEUES.load(Ordering::Relaxed)
}

/// The queue the senders and the owner share.
struct Shared {
    inner: Mutex<Inner>,
    /// Woken whenever bytes leave the buffer or the socket ends: senders waiting for room,
    /// `drained`.
    changed: Notify,
    limit: usize,
    policy: SendPolicy,
}

impl Drop for Shared {
    fn drop(&mut self) {
        LIVE_QUEUES.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Message>,
    /// Payload bytes in `queue`.
    queued: usize,
    /// Bytes in the socket's write buffer not yet handed to the OS, as the owner last saw them.
    write_buffered: usize,
    /// The socket has ended (or our Close has gone out): nothing more is taken.
    ended: bool,
    /// A sender passed the limit under `SendPolicy::Close`: the owner closes with this code.
    close: Option<CloseCode>,
    /// The owner's waker, from its last poll.
    owner: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held; a poisoned lock's data is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn end(&self) {
        let mut inner = self.lock();
        inner.ended = true;
        inner.queue.clear();
        inner.queued = 0;
        inner.write_buffered = 0;
        inner.owner = None;
        drop(inner);
        self.changed.notify_waiters();
    }
}

/// What an offer of a message did.
enum Offer {
    Queued,
    /// Full, under [`SendPolicy::Wait`]: the message back, to wait for room.
    Wait(Message),
    Refused(SendError),
}

/// A cloneable handle that sends on a [`WebSocket`] from any task, from
/// [`WebSocket::sender`].
///
/// Messages wait in one queue per socket, bounded in bytes by
/// [`max_buffered_amount`](crate::WebSocketLayerBuilder::max_buffered_amount); the socket's
/// owner (the task that holds the [`WebSocket`]) writes them out whenever it is awaited:
/// [`recv`](WebSocket::recv), [`send`](WebSocket::send), [`flush`](WebSocket::flush) or
/// [`closed`](WebSocket::closed). A handler that only sends through senders awaits
/// [`closed`](WebSocket::closed), so that keep-alive, Pongs, the peer's Close and the
/// shutdown still run.
///
/// Messages from one sender (and its clones, from one task) go out in the order they were
/// queued; messages from the owner's own `send` are not ordered with them.
///
/// What happens when the limit is reached is the socket's [`SendPolicy`]
/// ([`on_buffer_full`](crate::WebSocketLayerBuilder::on_buffer_full)): each method says what it
/// does under each. Once the socket has ended every method returns an error that says so
/// ([`SendError::Closed`], [`Error::Closed`]); none panics.
///
/// Cloning is one reference count; the handle is `Send + Sync`. It keeps only the queue (not
/// the connection) alive.
///
/// ```
/// use std::time::Duration;
/// use tower_websockets::WebSocket;
///
/// async fn clock(mut socket: WebSocket) {
///     let sender = socket.sender();
///     let ticker = tokio::spawn(async move {
///         let mut tick = 0u64;
///         // `send` fails once the socket has ended: the task ends with it.
///         while sender.send(format!("tick {tick}")).await.is_ok() {
///             tick += 1;
///             tokio::time::sleep(Duration::from_secs(1)).await;
///         }
///     });
///     // Drives the socket (keep-alive, Pongs, the close) until it ends.
///     let _ = socket.closed().await;
///     ticker.abort();
/// }
/// ```
#[derive(Clone)]
pub struct WebSocketSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WebSocketSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketSender")
            .field("buffered_amount", &self.buffered_amount())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl WebSocketSender {
    /// Queues a message, waiting for room when the buffer is full.
    ///
    /// When [`buffered_amount`](Self::buffered_amount) plus the message would pass the limit:
    /// - [`SendPolicy::Wait`] (the default): waits until the owner has written enough out;
    /// - [`SendPolicy::DropNewest`]: returns [`SendError::Full`] with the message at once;
    /// - [`SendPolicy::Close`]: the socket closes with the policy's code, and this returns
    ///   [`SendError::Closed`] with the message.
    ///
    /// A message is always taken when nothing is buffered, however large (it is then bounded by
    /// the socket's write buffer limits alone).
    ///
    /// Returning `Ok` means queued, not sent: see [`drained`](Self::drained).
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] once the socket has ended (the message comes back), and the
    /// policy's errors above.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for room drops the message: it was not queued.
    ///
    /// ```
    /// use tower_websockets::WebSocket;
    ///
    /// async fn handler(mut socket: WebSocket) {
    ///     let sender = socket.sender();
    ///     tokio::spawn(async move {
    ///         if let Err(error) = sender.send("from another task").await {
    ///             tracing::debug!(%error, "not sent");
    ///         }
    ///     });
    ///     while let Some(Ok(_)) = socket.recv().await {}
    /// }
    /// ```
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        self.send_until(message.into(), None).await
    }

    /// Queues a message if there is room now; never waits.
    ///
    /// When the message would pass the limit: [`SendError::Full`] with the message under
    /// [`SendPolicy::Wait`] and [`SendPolicy::DropNewest`]; under [`SendPolicy::Close`], the
    /// socket closes with the policy's code and this returns [`SendError::Closed`].
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] once the socket has ended, [`SendError::Full`] as above; the
    /// message is always inside the error ([`SendError::into_message`]).
    ///
    /// ```
    /// use tower_websockets::{WebSocketSender, sender::SendError};
    ///
    /// fn progress(sender: &WebSocketSender, percent: u8) {
    ///     match sender.try_send(format!("{percent}%")) {
    ///         Ok(()) => {}
    ///         // A slow client skips a progress update; the next one says more anyway.
    ///         Err(SendError::Full(_)) => {}
    ///         Err(error) => tracing::debug!(%error, "socket gone"),
    ///     }
    /// }
    /// ```
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        match self.offer(message.into()) {
            Offer::Queued => Ok(()),
            Offer::Wait(message) => Err(SendError::Full(message)),
            Offer::Refused(error) => Err(error),
        }
    }

    /// As [`send`](Self::send), waiting at most `timeout` for room (under
    /// [`SendPolicy::Wait`]; the other policies never wait).
    ///
    /// # Errors
    ///
    /// [`SendError::Timeout`] with the message when there was no room in time; otherwise as
    /// [`send`](Self::send).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_websockets::{WebSocketSender, sender::SendError};
    ///
    /// async fn notify(sender: WebSocketSender) {
    ///     if let Err(SendError::Timeout(message)) =
    ///         sender.send_timeout("update", Duration::from_secs(5)).await
    ///     {
    ///         tracing::debug!(len = message.len(), "client too slow; update skipped");
    ///     }
    /// }
    /// ```
    pub async fn send_timeout(
        &self,
        message: impl Into<Message>,
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.send_until(message.into(), Some(Instant::now() + timeout)).await
    }

    /// Bytes not yet handed to the OS: the messages queued by senders (their payloads) plus the
    /// socket's write buffer as the owner last left it. 0 once the socket has ended (see
    /// [`is_closed`](Self::is_closed)). Like the browser's `bufferedAmount`.
    ///
    /// ```
    /// use tower_websockets::WebSocket;
    ///
    /// fn queue_is_short(socket: &mut WebSocket) -> bool {
    ///     socket.sender().buffered_amount() < 64 * 1024
    /// }
    /// ```
    pub fn buffered_amount(&self) -> usize {
        let inner = self.shared.lock();
        inner.queued + inner.write_buffered
    }

    /// Waits until [`buffered_amount`](Self::buffered_amount) is 0: everything queued, by the
    /// senders and by the owner, has been handed to the OS.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the socket ends before that (what was still buffered may not
    /// have gone out).
    ///
    /// ```
    /// use tower_websockets::WebSocketSender;
    ///
    /// async fn send_batch(sender: WebSocketSender, rows: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    ///     for row in rows {
    ///         sender.send(row).await?;
    ///     }
    ///     // Produce the next batch only once this one has left.
    ///     sender.drained().await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn drained(&self) -> Result<(), Error> {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = self.shared.lock();
                if inner.ended {
                    return Err(Error::Closed);
                }
                if inner.queued + inner.write_buffered == 0 {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// Whether the socket has ended (or sent its Close): every send now fails with
    /// [`SendError::Closed`].
    ///
    /// ```
    /// use tower_websockets::WebSocket;
    ///
    /// fn sender_of(socket: &mut WebSocket) {
    ///     let sender = socket.sender();
    ///     assert!(!sender.is_closed());
    /// }
    /// ```
    pub fn is_closed(&self) -> bool {
        let inner = self.shared.lock();
        inner.ended || inner.close.is_some()
    }

    async fn send_until(&self, mut message: Message, deadline: Option<Instant>) -> Result<(), SendError> {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            message = match self.offer(message) {
                Offer::Queued => return Ok(()),
                Offer::Refused(error) => return Err(error),
                Offer::Wait(message) => message,
            };
            match deadline {
                None => notified.await,
                Some(deadline) => {
                    let sleep = tokio::time::sleep_until(deadline);
                    tokio::pin!(sleep);
                    if let Either::Right(_) = futures_util::future::select(notified, sleep).await {
                        return Err(SendError::Timeout(message));
                    }
                }
            }
        }
    }

    fn offer(&self, message: Message) -> Offer {
        let shared = &*self.shared;
        let mut inner = shared.lock();
        if inner.ended || inner.close.is_some() {
            return Offer::Refused(SendError::Closed(message));
        }
        let buffered = inner.queued + inner.write_buffered;
        let len = message.len();
        if buffered > 0 && buffered.saturating_add(len) > shared.limit {
            return match shared.policy {
                SendPolicy::Wait => Offer::Wait(message),
                SendPolicy::DropNewest => Offer::Refused(SendError::Full(message)),
                SendPolicy::Close(code) => {
                    inner.close = Some(code);
                    if let Some(owner) = inner.owner.take() {
                        owner.wake();
                    }
                    Offer::Refused(SendError::Closed(message))
                }
            };
        }
        inner.queued += len;
        inner.queue.push_back(message);
        if let Some(owner) = inner.owner.take() {
            owner.wake();
        }
        Offer::Queued
    }
}

/// The owner's hold on the queue.
pub(super) struct SenderQueue {
    shared: Arc<Shared>,
}

impl SenderQueue {
    fn new(limit: usize, policy: SendPolicy) -> Self {
        LIVE_QUEUES.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                changed: Notify::new(),
                limit,
                policy,
            }),
        }
    }
}

impl Drop for SenderQueue {
    fn drop(&mut self) {
        self.shared.end();
    }
}

/// What a send-only handler's [`WebSocket::closed`] saw before the socket ended.
///
/// ```
/// use tower_websockets::WebSocket;
///
/// async fn push_only(mut socket: WebSocket) {
///     match socket.closed().await {
///         Ok(closed) => tracing::debug!(
///             code = ?closed.frame.map(|frame| frame.code),
///             discarded = closed.discarded,
///             "client left"
///         ),
///         Err(error) => tracing::debug!(%error, "socket failed"),
///     }
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketClosed {
    /// The peer's Close frame, if it sent one with a code.
    pub frame: Option<CloseFrame>,
    /// Text and Binary messages the peer sent meanwhile, discarded.
    pub discarded: u64,
}

impl WebSocket {
    /// A handle that sends on this socket from any task: see [`WebSocketSender`].
    ///
    /// Every call returns a handle to the same queue (as does cloning one). The queue's limit
    /// and policy are the socket's [`max_buffered_amount`](crate::WebSocketLayerBuilder::max_buffered_amount)
    /// and [`on_buffer_full`](crate::WebSocketLayerBuilder::on_buffer_full).
    ///
    /// ```
    /// use tower_websockets::WebSocket;
    ///
    /// async fn handler(mut socket: WebSocket) {
    ///     let sender = socket.sender();
    ///     tokio::spawn(async move {
    ///         let _ = sender.send("hello from a task").await;
    ///     });
    ///     // The owner's `recv` writes what the task queued.
    ///     while let Some(Ok(_message)) = socket.recv().await {}
    /// }
    /// ```
    pub fn sender(&mut self) -> WebSocketSender {
        let queue = self.senders.get_or_insert_with(|| {
            let queue = SenderQueue::new(self.buffer_limit, self.buffer_policy);
            if !matches!(&self.state, super::State::Open(c) if c.close.may_send_data()) {
                queue.shared.end();
            }
            queue
        });
        WebSocketSender { shared: Arc::clone(&queue.shared) }
    }

    /// Drives the socket while the handler only sends through [`WebSocketSender`]s: writes
    /// their queue, answers Pings, runs keep-alive and the shutdown, and completes the closing
    /// handshake. Resolves when the socket has ended.
    ///
    /// It is for send-only handlers (a feed, a clock, a job's progress), as a server-sent
    /// events stream is: Text and Binary messages the peer sends meanwhile are read and
    /// discarded (counted in [`SocketClosed::discarded`]), so that a chatty client cannot stall the
    /// socket. A handler that wants them calls [`recv`](Self::recv) instead, which drives the
    /// senders' queue just as well.
    ///
    /// # Errors
    ///
    /// The error that ended the socket ([`Error::KeepAliveTimeout`],
    /// [`Error::ConnectionReset`], a protocol error, ...); `Ok` after a closing handshake
    /// (the peer's, the shutdown's 1001, or a [`SendPolicy::Close`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is lost when the future is dropped; `recv` or `closed` carry on.
    ///
    /// ```
    /// use tower_websockets::WebSocket;
    ///
    /// async fn feed(mut socket: WebSocket) {
    ///     let sender = socket.sender();
    ///     tokio::spawn(async move {
    ///         for n in 0.. {
    ///             if sender.send(format!("{n}")).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     });
    ///     let _ = socket.closed().await;
    /// }
    /// ```
    pub async fn closed(&mut self) -> Result<SocketClosed, Error> {
        let mut closed = SocketClosed::default();
        while let Some(item) = self.recv().await {
            match item? {
                Message::Text(_) | Message::Binary(_) => closed.discarded += 1,
                Message::Close(frame) => closed.frame = frame,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        if closed.discarded > 0 {
            tracing::debug!(discarded = closed.discarded, "messages discarded by WebSocket::closed");
        }
        Ok(closed)
    }

    /// Moves what the senders queued into the write buffer, as far as it fits, and starts
    /// writing it; acts on a [`SendPolicy::Close`]; publishes the write buffer's size; and
    /// registers `cx` as the owner's waker. Called on every poll of the owner, so the check for
    /// a socket without senders (most) is inlined.
    #[inline]
    pub(super) fn pump_senders(&mut self, cx: &mut Context<'_>) {
        if self.senders.is_some() {
            self.pump_sender_queue(cx);
        }
    }

    #[inline(never)]
    fn pump_sender_queue(&mut self, cx: &mut Context<'_>) {
        let Some(queue) = self.senders.as_ref() else { return };
        let shared = Arc::clone(&queue.shared);
        let mut inner = shared.lock();
        if inner.ended {
            return;
        }
        match &inner.owner {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.owner = Some(cx.waker().clone()),
        }
        if let Some(code) = inner.close {
            drop(inner);
            tracing::debug!(%code, "WebSocket sender queue over its limit: closing");
            self.queue_close(CloseFrame::new(code, BUFFER_FULL_CLOSE_REASON), cx);
            shared.end();
            return;
        }
        let before = inner.queued + inner.write_buffered;
        let mut moved = false;
        loop {
            let Ok(connection) = self.sending() else {
                drop(inner);
                shared.end();
                return;
            };
            let Some(len) = inner.queue.front().map(Message::len) else { break };
            // Bounded by the frame's largest size (payload + 14), before it is compressed: a
            // compressed frame cannot be taken back.
            if connection.writer.queued() > 0 && !connection.writer.fits(len.saturating_add(14)) {
                break;
            }
            let Some(message) = inner.queue.pop_front() else { break };
            inner.queued -= len;
            // Counted as buffered until the write buffer's own size is published below, so
            // that a sender never sees the bytes vanish in between.
            inner.write_buffered = inner.write_buffered.saturating_add(len);
            match std::pin::Pin::new(&mut *self).start_send(message) {
                Ok(()) => moved = true,
                Err(error) => tracing::debug!(%error, "a sender's message could not be queued"),
            }
        }
        if moved {
            if let Some(connection) = self.state.connection_mut() {
                connection.unflushed = true;
            }
        }
        drop(inner);
        let _ = self.poll_flush_own_frames(cx);
        self.publish_write_buffered(&shared, before);
    }

    /// Tells the senders how much of the write buffer is not yet written.
    pub(super) fn sync_senders(&mut self) {
        let Some(queue) = self.senders.as_ref() else { return };
        let shared = Arc::clone(&queue.shared);
        let before = {
            let inner = shared.lock();
            inner.queued + inner.write_buffered
        };
        self.publish_write_buffered(&shared, before);
    }

    fn publish_write_buffered(&mut self, shared: &Shared, before: usize) {
        let write_buffered = self.state.connection_mut().map_or(0, |c| c.writer.queued());
        let mut inner = shared.lock();
        if inner.ended {
            return;
        }
        inner.write_buffered = write_buffered;
        let now = inner.queued + inner.write_buffered;
        drop(inner);
        if now < before || now == 0 {
            shared.changed.notify_waiters();
        }
    }

    /// The socket has ended: senders fail from now on.
    pub(super) fn end_senders(&mut self) {
        if let Some(queue) = self.senders.as_ref() {
            queue.shared.end();
        }
    }
}
