//! The life of accepted sockets: [`WebSocketStats`], the layer's counters, and graceful
//! shutdown with a [`ShutdownHandle`] and its [`ShutdownReport`]. Get them from the layer:
//! [`WebSocketLayer::stats`](crate::WebSocketLayer::stats) and
//! [`WebSocketLayer::shutdown_handle`](crate::WebSocketLayer::shutdown_handle).
//!
//! Once hyper hands a connection over for a WebSocket, the server no longer tracks it: its own
//! graceful shutdown returns while sockets are still open. The layer sees every socket it lets
//! in, so it tracks them here. Counting is done with atomics; the one lock (a table of the
//! handler tasks, to cut them at a shutdown deadline) is taken once when a socket opens and once
//! when it ends, never per request or per message.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Waker},
    time::Duration,
};

use tokio::{
    sync::{Notify, futures::OwnedNotified},
    task::AbortHandle,
};

use crate::{config::Config, message::CloseCode};

/// State shared by a layer, its clones, the requests it lets through and their sockets.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) tracker: Tracker,
}

impl Shared {
    /// Counts one more socket for the client `key` if
    /// [`max_connections_per_client`](crate::WebSocketLayerBuilder::max_connections_per_client)
    /// allows. `None` when the client is at the limit.
    pub(crate) fn reserve_client(self: &Arc<Self>, key: ClientKey, limit: usize) -> Option<ClientSlot> {
        let mut clients = self.tracker.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = clients.entry(key.clone()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot { shared: self.clone(), key })
    }

    /// Takes a connection slot if the limit allows, holding `client`'s count with it. `None`
    /// when the limit is reached (`client` is then released).
    pub(crate) fn reserve_with(self: &Arc<Self>, client: Option<ClientSlot>) -> Option<Slot> {
        let mut slot = self.reserve()?;
        slot.client = client;
        Some(slot)
    }

    /// Takes a connection slot if the limit allows. `None` when the limit is reached.
    pub(crate) fn reserve(self: &Arc<Self>) -> Option<Slot> {
        let limit = self.config.max_connections;
        if let Some(limit) = limit {
            let reserved = &self.tracker.reserved;
            let mut current = reserved.load(Ordering::Relaxed);
            loop {
                if current >= limit {
                    return None;
                }
                match reserved.compare_exchange_weak(
                    current,
                    current + 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(actual) => current = actual,
                }
            }
        }
        Some(Slot { shared: self.clone(), limited: limit.is_some(), client: None })
    }

    /// Spawns a socket's handler task and keeps its abort handle until it ends.
    pub(crate) fn spawn<F>(self: &Arc<Self>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut table = self.tracker.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let id = table.next_id;
        table.next_id += 1;
        let shared = self.clone();
        // Boxed: an `async` block keeps what it captures and, beside it, the future it awaits,
        // so the handler's future (the socket and the handler's state, ~1 KiB for an echo loop)
        // would be in the task twice for the socket's whole life. Boxed, the task holds two
        // pointers to it instead: one allocation more per socket, ~1 KiB less.
        let task = Box::pin(task);
        let handle = tokio::spawn(async move {
            let _forget = ForgetTask { shared, id };
            task.await;
        });
        table.tasks.insert(id, handle.abort_handle());
    }
}

/// Counts and shutdown state.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Slots taken by requests on their way to becoming sockets, and by open sockets.
    reserved: AtomicUsize,
    open: AtomicUsize,
    accepted: AtomicU64,
    refused_by_origin: AtomicU64,
    refused_by_limit: AtomicU64,
    refused_by_auth: AtomicU64,
    rate_limit_throttled: AtomicU64,
    rate_limit_closed: AtomicU64,
    keep_alive_timeouts: AtomicU64,
    /// Set once the shutdown has begun: read by every socket, so an atomic.
    shutting_down: AtomicBool,
    /// Wakes every socket when the shutdown begins.
    shutdown_signal: Arc<Notify>,
    /// Woken whenever a socket ends.
    socket_ended: Notify,
    /// The handler task of each open socket, to cut at a shutdown deadline.
    tasks: Mutex<TaskTable>,
    /// Sockets (and requests on their way to becoming sockets) per client key, for
    /// `max_connections_per_client`. A key is removed with its last socket, so the map holds at
    /// most one entry per socket.
    clients: Mutex<HashMap<ClientKey, usize>>,
    refused_by_client_limit: AtomicU64,
    /// Set once a request had no client key (logged once).
    warned_no_client_key: AtomicBool,
    /// Counted per message: on a cache line of their own, away from the counts above.
    traffic: Traffic,
    /// Sockets ended, by close code: 1000–1015, then the rest.
    closes: [AtomicU64; CLOSE_SLOTS],
}

/// The codes [`CloseCounts`] counts one by one: 1000 to 1015.
const NAMED_CLOSES: usize = 16;
const CLOSE_SLOTS: usize = NAMED_CLOSES + 1;

/// The data messages of every socket, counted as they pass.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Traffic {
    received: AtomicU64,
    sent: AtomicU64,
}

/// Who a client is, for `max_connections_per_client`: its IP address (an IPv6 address by its
/// /64, which one host usually holds whole), or the key of the application's function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    Ip(std::net::IpAddr),
    Custom(Box<str>),
}

impl ClientKey {
    /// The key of a peer address: the IPv4 address, or the /64 of an IPv6 one (an IPv4-mapped
    /// IPv6 address counts as the IPv4 one).
    pub(crate) fn of_ip(ip: std::net::IpAddr) -> Self {
        use std::net::IpAddr;
        match ip {
            IpAddr::V4(v4) => Self::Ip(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::Ip(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self::Ip(IpAddr::V6(std::net::Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// One socket's count for its client key; dropping it forgets the key with its last socket.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    shared: Arc<Shared>,
    key: ClientKey,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut clients = self.shared.tracker.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = clients.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                clients.remove(&self.key);
            }
        }
    }
}

#[derive(Debug, Default)]
struct TaskTable {
    next_id: u64,
    tasks: HashMap<u64, AbortHandle>,
}

impl Tracker {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// A future that completes when the shutdown begins (or at once, if it has). Take it before
    /// checking [`is_shutting_down`](Self::is_shutting_down), so that no shutdown is missed.
    pub(crate) fn shutdown_signal(&self) -> OwnedNotified {
        self.shutdown_signal.clone().notified_owned()
    }

    fn trigger_shutdown(&self) -> bool {
        let first = !self.shutting_down.swap(true, Ordering::AcqRel);
        if first {
            self.shutdown_signal.notify_waiters();
        }
        first
    }

    pub(crate) fn count_refused_by_origin(&self) {
        self.refused_by_origin.fetch_add(1, Ordering::Relaxed);
        crate::metrics::handshake_refused("origin", http::StatusCode::FORBIDDEN);
    }

    pub(crate) fn count_refused_by_limit(&self) {
        self.refused_by_limit.fetch_add(1, Ordering::Relaxed);
        crate::metrics::handshake_refused("connection_limit", http::StatusCode::SERVICE_UNAVAILABLE);
    }

    pub(crate) fn count_refused_by_client_limit(&self) {
        self.refused_by_client_limit.fetch_add(1, Ordering::Relaxed);
        crate::metrics::handshake_refused("client_limit", http::StatusCode::TOO_MANY_REQUESTS);
    }

    /// A data message from a peer.
    pub(crate) fn count_received(&self) {
        self.traffic.received.fetch_add(1, Ordering::Relaxed);
    }

    /// A data message to a peer.
    pub(crate) fn count_sent(&self) {
        self.traffic.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A socket ended with `code` (1006 when no Close was exchanged).
    pub(crate) fn count_close(&self, code: CloseCode) {
        self.closes[close_slot(code)].fetch_add(1, Ordering::Relaxed);
    }

    /// `true` the first time a request has no client key.
    pub(crate) fn first_without_client_key(&self) -> bool {
        !self.warned_no_client_key.swap(true, Ordering::Relaxed)
    }

    pub(crate) fn count_refused_by_auth(&self, status: http::StatusCode) {
        self.refused_by_auth.fetch_add(1, Ordering::Relaxed);
        crate::metrics::handshake_refused("auth", status);
    }

    pub(crate) fn count_keep_alive_timeout(&self) {
        self.keep_alive_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> WebSocketStats {
        WebSocketStats {
            open: self.open.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            refused_by_origin: self.refused_by_origin.load(Ordering::Relaxed),
            refused_by_limit: self.refused_by_limit.load(Ordering::Relaxed),
            refused_by_auth: self.refused_by_auth.load(Ordering::Relaxed),
            refused_by_client_limit: self.refused_by_client_limit.load(Ordering::Relaxed),
            tracked_clients: self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len(),
            rate_limit_throttled: self.rate_limit_throttled.load(Ordering::Relaxed),
            rate_limit_closed: self.rate_limit_closed.load(Ordering::Relaxed),
            keep_alive_timeouts: self.keep_alive_timeouts.load(Ordering::Relaxed),
            messages_received: self.traffic.received.load(Ordering::Relaxed),
            messages_sent: self.traffic.sent.load(Ordering::Relaxed),
            closes: CloseCounts { slots: self.closes.each_ref().map(|count| count.load(Ordering::Relaxed)) },
        }
    }
}

/// The slot of `code` in the close counts.
fn close_slot(code: CloseCode) -> usize {
    match code.0 {
        1000..=1015 => usize::from(code.0 - 1000),
        _ => NAMED_CLOSES,
    }
}

/// The rate limits' counters.
impl crate::rate_limit::Counts for Tracker {
    fn count_rate_limit_throttled(&self) {
        self.rate_limit_throttled.fetch_add(1, Ordering::Relaxed);
    }

    fn count_rate_limit_closed(&self) {
        self.rate_limit_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Removes a finished (or aborted, or panicked) task from the table.
struct ForgetTask {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ForgetTask {
    fn drop(&mut self) {
        let mut table = self.shared.tracker.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        table.tasks.remove(&self.id);
    }
}

/// A connection slot, held from the layer's decision until the socket ends.
#[derive(Debug)]
pub(crate) struct Slot {
    shared: Arc<Shared>,
    limited: bool,
    /// The client's count, with `max_connections_per_client`.
    client: Option<ClientSlot>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.limited {
            self.shared.tracker.reserved.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Held by an open socket: counts it as open, holds its slot, and watches for the shutdown.
#[derive(Debug)]
pub(crate) struct OpenSocket {
    shared: Arc<Shared>,
    _slot: Arc<Slot>,
    /// What the layer's authentication function returned for this socket's handshake.
    identity: Option<crate::auth::Identity>,
    /// Completes when the layer shuts down; `None` once the socket was told.
    shutdown: Option<ShutdownWatch>,
}

struct ShutdownWatch {
    signal: Pin<Box<OwnedNotified>>,
    /// The waker the signal was last polled with: polled again only for another waker.
    registered: Option<Waker>,
}

impl std::fmt::Debug for ShutdownWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownWatch").finish_non_exhaustive()
    }
}

impl OpenSocket {
    pub(crate) fn new(slot: Arc<Slot>, identity: Option<crate::auth::Identity>) -> Self {
        let shared = slot.shared.clone();
        // Take the signal before anything can check the flag, so that no shutdown is missed.
        let signal = Box::pin(shared.tracker.shutdown_signal());
        shared.tracker.open.fetch_add(1, Ordering::AcqRel);
        shared.tracker.accepted.fetch_add(1, Ordering::Relaxed);
        Self { shared, _slot: slot, identity, shutdown: Some(ShutdownWatch { signal, registered: None }) }
    }

    pub(crate) fn tracker(&self) -> &Tracker {
        &self.shared.tracker
    }

    pub(crate) fn identity(&self) -> Option<&crate::auth::Identity> {
        self.identity.as_ref()
    }

    /// Has the layer's shutdown begun? `true` once, the first time it is seen; `false` after.
    /// With `register`, makes sure `cx` is woken when the shutdown begins.
    ///
    /// Called a few times per message, so the common case (no shutdown, `cx` already
    /// registered) is inlined: a flag and a waker comparison.
    #[inline]
    pub(crate) fn poll_shutdown_begun(&mut self, cx: &mut Context<'_>, register: bool) -> bool {
        let Some(watch) = self.shutdown.as_ref() else { return false };
        let begun = self.shared.tracker.is_shutting_down();
        let registered = !register || watch.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if !begun && registered {
            return false;
        }
        self.poll_shutdown_signal(cx, begun)
    }

    /// [`poll_shutdown_begun`](Self::poll_shutdown_begun) once the shutdown has begun or `cx` is
    /// new: polls the signal with `cx` (registering it) unless it has begun.
    #[cold]
    #[inline(never)]
    fn poll_shutdown_signal(&mut self, cx: &mut Context<'_>, mut begun: bool) -> bool {
        if let (false, Some(watch)) = (begun, self.shutdown.as_mut()) {
            begun = watch.signal.as_mut().poll(cx).is_ready();
            watch.registered = Some(cx.waker().clone());
        }
        if begun {
            self.shutdown = None;
        }
        begun
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        let tracker = &self.shared.tracker;
        if tracker.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            tracker.socket_ended.notify_waiters();
        }
    }
}

/// Counters of a [`WebSocketLayer`](crate::WebSocketLayer) and its clones, read with
/// [`WebSocketLayer::stats`](crate::WebSocketLayer::stats) or [`ShutdownHandle::stats`].
///
/// A snapshot: each read copies the counters as they are at that moment.
///
/// ```
/// # #[cfg(feature = "test-util")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use hyper::body::Incoming;
/// use tower::ServiceBuilder;
/// use tower_websockets::{WebSocketLayer, WebSocketUpgrade, test::TestClient};
///
/// let layer = WebSocketLayer::builder().allowed_origins(["https://example.com"]).build()?;
/// let stack = ServiceBuilder::new().layer(layer.clone());
/// let client = TestClient::new(stack.service_fn(|mut req: http::Request<Incoming>| async move {
///     let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
///     Ok::<_, Infallible>(upgrade.on_upgrade(|mut socket| async move {
///         let _ = socket.send("welcome").await;
///         while let Some(Ok(_)) = socket.recv().await {}
///     }))
/// }));
///
/// let mut socket = client.connect("/ws").origin("https://example.com").await?;
/// assert_eq!(socket.recv_text().await?, "welcome");
/// assert!(client.connect("/ws").origin("https://evil.example").await.is_err());
///
/// let stats = layer.stats();
/// assert_eq!((stats.open, stats.accepted, stats.refused_by_origin), (1, 1, 1));
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "test-util"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WebSocketStats {
    /// Sockets open now.
    pub open: usize,
    /// Sockets accepted in total.
    pub accepted: u64,
    /// WebSocket requests refused by the origin policy (403).
    pub refused_by_origin: u64,
    /// WebSocket requests refused by [`max_connections`](crate::WebSocketLayerBuilder::max_connections)
    /// (503).
    pub refused_by_limit: u64,
    /// WebSocket requests refused by the
    /// [`authenticate`](crate::WebSocketLayerBuilder::authenticate) function (401 or 403).
    pub refused_by_auth: u64,
    /// WebSocket requests refused by
    /// [`max_connections_per_client`](crate::WebSocketLayerBuilder::max_connections_per_client)
    /// (429).
    pub refused_by_client_limit: u64,
    /// Client keys with at least one socket now, for
    /// [`max_connections_per_client`](crate::WebSocketLayerBuilder::max_connections_per_client):
    /// a key is forgotten when its last socket ends, so this is never more than the sockets.
    pub tracked_clients: usize,
    /// Sockets that their [`RateLimit`](crate::rate_limit::RateLimit) throttled at least once.
    pub rate_limit_throttled: u64,
    /// Sockets closed with 1008 by their [`RateLimit`](crate::rate_limit::RateLimit).
    pub rate_limit_closed: u64,
    /// Sockets dropped by the keep-alive timeout.
    pub keep_alive_timeouts: u64,
    /// Data messages (Text and Binary) received from peers, counted as the sockets read them.
    pub messages_received: u64,
    /// Data messages (Text and Binary) sent to peers: queued by [`send`](crate::WebSocket::send),
    /// [`feed`](crate::WebSocket::feed), a [`WebSocketSender`](crate::WebSocketSender) or a
    /// prepared message (Pings, Pongs and Closes are not counted).
    pub messages_sent: u64,
    /// Sockets ended, by close code.
    pub closes: CloseCounts,
}

/// Sockets ended so far, by the close code each ended with: the code of the first Close
/// exchanged (the peer's, or the server's), or 1006 (abnormal closure) when the connection ended
/// without one. In [`WebSocketStats::closes`].
///
/// Codes 1000 to 1015 are counted one by one; the application's codes (3000–4999) together, in
/// [`other`](Self::other).
///
/// ```
/// # #[cfg(feature = "test-util")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use hyper::body::Incoming;
/// use tower::ServiceBuilder;
/// use tower_websockets::{CloseCode, WebSocketLayer, WebSocketUpgrade, test::TestClient};
///
/// let layer = WebSocketLayer::new();
/// let stack = ServiceBuilder::new().layer(layer.clone());
/// let client = TestClient::new(stack.service_fn(|mut req: http::Request<Incoming>| async move {
///     let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
///     Ok::<_, Infallible>(upgrade.on_upgrade(|mut socket| async move {
///         while let Some(Ok(_)) = socket.recv().await {}
///     }))
/// }));
/// client.connect("/ws").await?.close().await?;
/// # tokio::time::sleep(std::time::Duration::from_millis(50)).await;
///
/// let closes = layer.stats().closes;
/// assert_eq!(closes.get(CloseCode::NORMAL), 1);
/// assert_eq!(closes.iter().collect::<Vec<_>>(), [(CloseCode::NORMAL, 1)]);
/// assert_eq!((closes.other(), closes.total()), (0, 1));
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "test-util"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CloseCounts {
    slots: [u64; CLOSE_SLOTS],
}

impl CloseCounts {
    /// Sockets that ended with `code`; for a code outside 1000–1015, those of [`other`](Self::other).
    pub fn get(&self, code: CloseCode) -> u64 {
        self.slots[close_slot(code)]
    }

    /// Sockets that ended with a code outside 1000–1015 (an application's 3000–4999).
    pub fn other(&self) -> u64 {
        self.slots[NAMED_CLOSES]
    }

    /// Sockets ended, whatever their code.
    pub fn total(&self) -> u64 {
        self.slots.iter().sum()
    }

    /// The codes from 1000 to 1015 that some socket ended with, and how many, in the codes'
    /// order.
    pub fn iter(&self) -> impl Iterator<Item = (CloseCode, u64)> + '_ {
        (1000u16..)
            .zip(&self.slots[..NAMED_CLOSES])
            .filter(|(_, count)| **count > 0)
            .map(|(code, count)| (CloseCode(code), *count))
    }
}

/// Shuts the sockets of a [`WebSocketLayer`](crate::WebSocketLayer) down gracefully, and reads
/// its counters. Get one with [`WebSocketLayer::shutdown_handle`](crate::WebSocketLayer::shutdown_handle);
/// clones control the same sockets.
///
/// ```
/// use std::time::Duration;
/// use tower_websockets::WebSocketLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = WebSocketLayer::new();
/// let shutdown = layer.shutdown_handle();
/// // ... serve with `layer`; then, on Ctrl-C or SIGTERM:
/// let report = shutdown.shutdown(Duration::from_secs(10)).await;
/// assert_eq!(report.cut, 0);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

/// What a graceful shutdown came to, as returned by [`ShutdownHandle::shutdown`].
///
/// ```
/// # #[cfg(feature = "test-util")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::{convert::Infallible, time::Duration};
/// use hyper::body::Incoming;
/// use tower::ServiceBuilder;
/// use tower_websockets::{WebSocketLayer, WebSocketUpgrade, test::TestClient};
///
/// let layer = WebSocketLayer::new();
/// let stack = ServiceBuilder::new().layer(layer.clone());
/// let client = TestClient::new(stack.service_fn(|mut req: http::Request<Incoming>| async move {
///     let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
///     Ok::<_, Infallible>(upgrade.on_upgrade(|mut socket| async move {
///         let _ = socket.send("welcome").await;
///         std::future::pending::<()>().await; // stuck: never sees the shutdown
///     }))
/// }));
/// let mut socket = client.connect("/ws").await?;
/// assert_eq!(socket.recv_text().await?, "welcome");
///
/// let report = layer.shutdown_handle().shutdown(Duration::from_millis(100)).await;
/// assert_eq!((report.open_at_start, report.cut), (1, 1));
/// assert!(socket.is_closed().await); // the stuck handler's connection was dropped
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "test-util"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Sockets open when the shutdown began.
    pub open_at_start: usize,
    /// Sockets still open at the deadline, whose handler tasks were then aborted and whose
    /// connections were dropped.
    pub cut: usize,
}

impl ShutdownHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Begins the shutdown, and returns at once: every open socket sends a Close with 1001
    /// (Going Away) the next time its handler awaits `recv` or `send` (at once for one that is
    /// waiting in `recv`), and new WebSocket requests get `503 Service Unavailable` with
    /// `Retry-After`. Ordinary requests are not affected. Calling it again does nothing.
    pub fn trigger(&self) {
        if self.shared.tracker.trigger_shutdown() {
            tracing::debug!(open = self.stats().open, "WebSocket shutdown: closing every socket with 1001");
        }
    }

    /// Has the shutdown begun?
    pub fn is_triggered(&self) -> bool {
        self.shared.tracker.is_shutting_down()
    }

    /// [`trigger`](Self::trigger)s the shutdown, then waits until every socket has ended (their
    /// closing handshakes done and their handlers returned), or until `timeout` has passed. At
    /// the timeout the handler tasks of the sockets that remain are aborted, which drops their
    /// connections; the report says how many.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let open_at_start = self.stats().open;
        self.trigger();
        let tracker = &self.shared.tracker;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ended = tracker.socket_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if tracker.open.load(Ordering::Acquire) == 0 {
                return ShutdownReport { open_at_start, cut: 0 };
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        let tasks: Vec<AbortHandle> = {
            let mut table = tracker.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            table.tasks.drain().map(|(_, handle)| handle).collect()
        };
        let cut = tracker.open.load(Ordering::Acquire);
        tracing::debug!(cut, "WebSocket shutdown deadline: dropping the sockets that remain");
        for task in &tasks {
            task.abort();
        }
        ShutdownReport { open_at_start, cut }
    }

    /// The layer's counters.
    pub fn stats(&self) -> WebSocketStats {
        self.shared.tracker.stats()
    }
}

/// The peer's address, when the server put it in the request: axum's `ConnectInfo<SocketAddr>`
/// or `MockConnectInfo<SocketAddr>` (with the `axum` feature), or a plain `SocketAddr`.
pub(crate) fn peer_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    #[cfg(feature = "axum")]
    {
        use ::axum::extract::{ConnectInfo, connect_info::MockConnectInfo};
        // As axum's `ConnectInfo` extractor does: the real one, else the one tests mock.
        if let Some(ConnectInfo(addr)) = extensions.get::<ConnectInfo<std::net::SocketAddr>>() {
            return Some(*addr);
        }
        if let Some(MockConnectInfo(addr)) = extensions.get::<MockConnectInfo<std::net::SocketAddr>>() {
            return Some(*addr);
        }
    }
    extensions.get::<std::net::SocketAddr>().copied()
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn shared(max_connections: Option<usize>) -> Arc<Shared> {
        Arc::new(Shared {
            config: Config { max_connections, ..Config::default() },
            tracker: Tracker::default(),
        })
    }

    #[test]
    fn slots_are_limited_and_freed_when_dropped() {
        let shared = shared(Some(2));
        let first = shared.reserve().expect("a slot");
        let second = shared.reserve().expect("a slot");
        assert!(shared.reserve().is_none(), "the limit is 2");
        drop(first);
        let third = shared.reserve().expect("a freed slot");
        drop((second, third));
        assert_eq!(shared.tracker.reserved.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn without_a_limit_slots_are_not_counted() {
        let shared = shared(None);
        let slots: Vec<_> = (0..100).map(|_| shared.reserve().expect("no limit")).collect();
        assert_eq!(shared.tracker.reserved.load(Ordering::Relaxed), 0);
        drop(slots);
    }

    #[test]
    fn open_sockets_are_counted_and_told_of_the_shutdown_once() {
        let shared = shared(None);
        let mut open = OpenSocket::new(Arc::new(shared.reserve().unwrap()), None);
        let stats = ShutdownHandle::new(shared.clone()).stats();
        assert_eq!((stats.open, stats.accepted), (1, 1));

        let mut cx = Context::from_waker(Waker::noop());
        assert!(!open.poll_shutdown_begun(&mut cx, true));
        ShutdownHandle::new(shared.clone()).trigger();
        assert!(open.poll_shutdown_begun(&mut cx, false), "seen even without polling the signal");
        assert!(!open.poll_shutdown_begun(&mut cx, true), "told once");

        drop(open);
        let stats = ShutdownHandle::new(shared).stats();
        assert_eq!((stats.open, stats.accepted), (0, 1));
    }

    #[tokio::test]
    async fn a_shutdown_with_no_sockets_returns_at_once() {
        let handle = ShutdownHandle::new(shared(None));
        assert!(!handle.is_triggered());
        let report = handle.shutdown(Duration::from_secs(3600)).await;
        assert_eq!(report, ShutdownReport { open_at_start: 0, cut: 0 });
        assert!(handle.is_triggered());
    }

    #[test]
    fn client_keys_are_ipv4_or_the_ipv6_slash_64() {
        let key = |ip: &str| ClientKey::of_ip(ip.parse().unwrap());
        assert_eq!(key("192.0.2.7"), ClientKey::Ip("192.0.2.7".parse().unwrap()));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"), "IPv4-mapped");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"), "one /64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn client_counts_are_limited_and_forgotten_with_the_last_socket() {
        let shared = shared(Some(3));
        let a = || ClientKey::Custom("a".into());
        let first = shared.reserve_client(a(), 2).expect("under the limit");
        let second = shared.reserve_client(a(), 2).expect("under the limit");
        assert!(shared.reserve_client(a(), 2).is_none(), "a's limit is 2");
        let other = shared.reserve_client(ClientKey::Custom("b".into()), 2).expect("b is another client");
        assert_eq!(ShutdownHandle::new(shared.clone()).stats().tracked_clients, 2);
        // A client slot travels with a connection slot, and is released with it or without it.
        let slot = shared.reserve_with(Some(first)).expect("a connection slot");
        drop(slot);
        assert!(shared.reserve_client(a(), 2).is_some_and(|third| {
            drop(third);
            true
        }));
        drop((second, other));
        assert_eq!(ShutdownHandle::new(shared.clone()).stats().tracked_clients, 0);
        // At the connection limit, the client's count is given back.
        let held: Vec<_> = (0..3).map(|_| shared.reserve().unwrap()).collect();
        let client = shared.reserve_client(a(), 2).unwrap();
        assert!(shared.reserve_with(Some(client)).is_none());
        assert_eq!(ShutdownHandle::new(shared).stats().tracked_clients, 0);
        drop(held);
    }
}
