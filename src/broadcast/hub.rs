//! [`Hub`]: topics, subscribers with bounded queues, and publishing from anywhere.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt,
    sync::{
        Arc, Mutex, OnceLock, RwLock, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use tokio::sync::Notify;

use super::{BackplaneError, PreparedMessage, backplane::Backplane};
use crate::{
    error::ConfigError,
    message::{CloseCode, CloseFrame},
};

/// The default budget of a subscriber's queue: 1 MiB.
pub(crate) const DEFAULT_MAX_QUEUED_BYTES: usize = 1 << 20;

/// What a queued message costs beyond its payload, in bytes: its place in the queue and its
/// share of the bookkeeping. It keeps a flood of empty messages bounded too.
pub const QUEUED_MESSAGE_OVERHEAD: usize = 64;

/// The reason sent with a [`LagPolicy::Close`].
pub const LAG_CLOSE_REASON: &str = "subscriber fell behind";

/// What the hub does with a subscriber whose queue would pass
/// [`max_queued_bytes`](HubBuilder::max_queued_bytes).
///
/// ```
/// use tower_websockets::{CloseCode, broadcast::{Hub, LagPolicy}};
///
/// let hub = Hub::builder().on_lag(LagPolicy::Close(CloseCode::TRY_AGAIN_LATER)).build()?;
/// # drop(hub);
/// # Ok::<_, tower_websockets::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LagPolicy {
    /// Drop the subscriber's oldest queued messages to make room, and tell it how many it
    /// missed ([`Delivery::Missed`]) before its next message. The default.
    DropOldest,
    /// Empty the subscriber's queue, take it out of all its topics, and tell it to close its
    /// socket with this code ([`Delivery::Close`]): usually 1008
    /// ([`CloseCode::POLICY_VIOLATION`]) or 1013 ([`CloseCode::TRY_AGAIN_LATER`]).
    Close(CloseCode),
}

/// What [`Subscriber::recv`] hands the socket's handler.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Delivery {
    /// A message published to one of the subscriber's topics: send it with
    /// [`WebSocket::send_prepared`](crate::WebSocket::send_prepared).
    Message(PreparedMessage),
    /// This many messages were dropped ([`LagPolicy::DropOldest`]) because the subscriber fell
    /// behind; they came before the messages still queued. Tell the client, if it cares.
    Missed(u64),
    /// The subscriber fell behind under [`LagPolicy::Close`]: it has left all its topics, and
    /// its socket should close with this code (and [`LAG_CLOSE_REASON`]), as
    /// [`Subscriber::forward_to`] does by itself.
    Close(CloseCode),
}

/// What [`Subscriber::forward_to`] did.
///
/// ```
/// use tower_websockets::broadcast::Forwarded;
///
/// let nothing = Forwarded::default();
/// assert_eq!((nothing.sent, nothing.missed, nothing.close), (0, 0, None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Forwarded {
    /// Messages written to the socket and flushed.
    pub sent: usize,
    /// The subscriber fell behind ([`LagPolicy::DropOldest`]): this many messages were dropped
    /// before the ones still queued. Nothing was written in this call; tell the client now if
    /// it cares.
    pub missed: u64,
    /// The subscriber fell behind under [`LagPolicy::Close`]: it has left all its topics, and
    /// the socket has been closed with this frame (the policy's code and
    /// [`LAG_CLOSE_REASON`]). End the handler.
    pub close: Option<CloseFrame>,
}

/// The hub's counts, from [`Hub::stats`].
///
/// ```
/// use tower_websockets::broadcast::Hub;
///
/// let hub = Hub::new();
/// let mut alice = hub.subscriber();
/// alice.subscribe("lobby");
/// assert_eq!(hub.publish("lobby", "hello"), 1);
/// let stats = hub.stats();
/// assert_eq!((stats.topics, stats.subscribers, stats.subscriptions), (1, 1, 1));
/// assert_eq!((stats.published, stats.queued, stats.dropped), (1, 1, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HubStats {
    /// Topics with at least one subscriber.
    pub topics: usize,
    /// Live [`Subscriber`]s, subscribed to anything or not.
    pub subscribers: usize,
    /// Subscriptions: (subscriber, topic) pairs.
    pub subscriptions: usize,
    /// Calls to [`Hub::publish`] and its variants (`publish_except`, `publish_local`,
    /// `publish_confirmed`) here so far.
    pub published: u64,
    /// Messages put in a subscriber's queue so far (one per subscriber reached).
    pub queued: u64,
    /// Messages dropped from a queue because its subscriber fell behind (both policies).
    pub dropped: u64,
    /// Subscribers told to close because they fell behind ([`LagPolicy::Close`]).
    pub closed_for_lag: u64,
    /// Messages published here and handed to the backplane for the other instances.
    pub relayed: u64,
    /// Messages published here that the backplane could not take or carry (it was down,
    /// overloaded or stopped): they reached this instance's subscribers only.
    pub relay_failures: u64,
    /// Messages from other instances, through the backplane (each counted once, however many
    /// local subscribers it reached).
    pub from_backplane: u64,
}

/// Builds a [`Hub`]: the budget of each subscriber's queue and the policy for one that falls
/// behind.
///
/// ```
/// use tower_websockets::broadcast::{Hub, LagPolicy};
///
/// let hub = Hub::builder().max_queued_bytes(256 * 1024).on_lag(LagPolicy::DropOldest).build()?;
/// # drop(hub);
/// assert_eq!(Hub::builder().max_queued_bytes(0).build().unwrap_err().option(), "max_queued_bytes");
/// # Ok::<_, tower_websockets::ConfigError>(())
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct HubBuilder {
    max_queued_bytes: usize,
    on_lag: LagPolicy,
}

impl HubBuilder {
    /// The most a subscriber may have queued and not yet taken, in bytes: payloads (before
    /// compression) plus [`QUEUED_MESSAGE_OVERHEAD`] per message. Default 1 MiB.
    /// A message larger than the whole budget still reaches a
    /// subscriber whose queue is empty.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// What to do with a subscriber that falls behind (default [`LagPolicy::DropOldest`]).
    pub fn on_lag(mut self, policy: LagPolicy) -> Self {
        self.on_lag = policy;
        self
    }

    /// The hub.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a zero `max_queued_bytes`, or a close code that may not be sent
    /// (see [`CloseCode::is_sendable`]).
    pub fn build(self) -> Result<Hub, ConfigError> {
        if self.max_queued_bytes == 0 {
            return Err(ConfigError::new("max_queued_bytes", "must be at least 1 byte"));
        }
        if let LagPolicy::Close(code) = self.on_lag {
            if !code.is_sendable() {
                return Err(ConfigError::new("on_lag", format!("close code {code} may not be sent")));
            }
        }
        Ok(self.into_hub())
    }

    /// The hub, options already checked.
    fn into_hub(self) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                max_queued_bytes: self.max_queued_bytes,
                on_lag: self.on_lag,
                topics: RwLock::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                subscribers: AtomicUsize::new(0),
                subscriptions: AtomicUsize::new(0),
                published: AtomicU64::new(0),
                queued: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                closed_for_lag: AtomicU64::new(0),
                backplane: OnceLock::new(),
                relayed: AtomicU64::new(0),
                relay_failures: AtomicU64::new(0),
                from_backplane: AtomicU64::new(0),
                metrics: crate::metrics::HubMetrics::new(),
            }),
        }
    }
}

/// Topics and their subscribers, in one process: publish a message to a topic, and every
/// subscriber of it gets it, encoded once.
///
/// A `Hub` is a cheap handle (an `Arc`): clone it into handlers, background tasks and other
/// services, and [`publish`](Self::publish) from any of them. Publishing never waits: it puts
/// the message in each subscriber's bounded queue and wakes its handler, which writes it to
/// its socket. See [the module](super) for the handler's shape and the delivery guarantees.
///
/// ```
/// use tower_websockets::broadcast::{Delivery, Hub};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let hub = Hub::new();
/// let mut alice = hub.subscriber();
/// alice.subscribe("news");
/// hub.publish("news", "extra! extra!");
/// let Delivery::Message(message) = alice.recv().await else { panic!("a message") };
/// assert_eq!(message.to_message().as_text(), Some("extra! extra!"));
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    max_queued_bytes: usize,
    on_lag: LagPolicy,
    topics: RwLock<Topics>,
    next_id: AtomicU64,
    subscribers: AtomicUsize,
    subscriptions: AtomicUsize,
    published: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    closed_for_lag: AtomicU64,
    /// Set once, by a backplane's `attach`.
    backplane: OnceLock<Arc<dyn Backplane>>,
    relayed: AtomicU64,
    relay_failures: AtomicU64,
    from_backplane: AtomicU64,
    /// The `metrics` feature's handles (nothing without it).
    metrics: crate::metrics::HubMetrics,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("max_queued_bytes", &self.inner.max_queued_bytes)
            .field("on_lag", &self.inner.on_lag)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// A hub with the default options: 1 MiB per subscriber, [`LagPolicy::DropOldest`].
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// assert_eq!(hub.stats().topics, 0);
    /// ```
    pub fn new() -> Self {
        Self::builder().into_hub()
    }

    /// A builder for a hub with other options.
    ///
    /// ```
    /// use tower_websockets::broadcast::Hub;
    ///
    /// let hub = Hub::builder().max_queued_bytes(64 * 1024).build()?;
    /// # drop(hub);
    /// # Ok::<_, tower_websockets::ConfigError>(())
    /// ```
    pub fn builder() -> HubBuilder {
        HubBuilder { max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES, on_lag: LagPolicy::DropOldest }
    }

    /// A new subscriber, in no topic yet: one per socket, held by its handler. Dropping it
    /// leaves all its topics.
    ///
    /// Make a socket's subscriber, and subscribe it, in the request handler, before
    /// [`on_upgrade`](crate::WebSocketUpgrade::on_upgrade), and move it into the callback: it
    /// receives from the moment it subscribes, and the callback only runs after the 101 has
    /// gone out, when the client may already have been told of messages it would then miss.
    /// See [the module](super) for the whole handler.
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// let subscriber = hub.subscriber();
    /// assert_eq!(hub.stats().subscribers, 1);
    /// drop(subscriber);
    /// assert_eq!(hub.stats().subscribers, 0);
    /// ```
    pub fn subscriber(&self) -> Subscriber {
        self.inner.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscriber {
            hub: self.inner.clone(),
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            mailbox: Arc::new(Mailbox::default()),
            topics: HashSet::new(),
        }
    }

    /// Publishes a message to every subscriber of `topic`, and returns how many it was queued
    /// for here. Never waits: a subscriber that falls behind is dealt with by the
    /// [`LagPolicy`], and does not slow the publisher or the others.
    ///
    /// With a backplane (`RedisBackplane`, feature `redis`), the message also goes to
    /// the other instances, in the background; if the backplane cannot take it (the broker is
    /// down), that is logged and counted in [`HubStats::relay_failures`]. Use
    /// [`publish_confirmed`](Self::publish_confirmed) to learn of it.
    ///
    /// ```
    /// use tower_websockets::broadcast::{Hub, PreparedMessage};
    ///
    /// let hub = Hub::new();
    /// assert_eq!(hub.publish("empty room", "anyone?"), 0);
    /// // One encoding for every subscriber, and for several topics.
    /// let message = PreparedMessage::binary(vec![1, 2, 3]);
    /// hub.publish("a", message.clone());
    /// hub.publish("b", message);
    /// ```
    pub fn publish(&self, topic: &str, message: impl Into<PreparedMessage>) -> usize {
        let message = message.into();
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.published();
        let reached = self.deliver(topic, &message, None);
        if let Some(backplane) = self.inner.backplane.get() {
            backplane.relay(topic, &message, None);
        }
        reached
    }

    /// Publishes a message like [`publish`](Self::publish) to every subscriber of `topic` but
    /// `except`: in a chat, everyone but the one who said it (who already knows). Returns how
    /// many subscribers it was queued for here.
    ///
    /// With a backplane, the other instances deliver it to all their subscribers of `topic`:
    /// `except` is a subscriber of this instance, and a socket is subscribed on one instance
    /// only.
    ///
    /// ```
    /// use tower_websockets::broadcast::{Delivery, Hub};
    ///
    /// let hub = Hub::new();
    /// let (mut alice, mut bob) = (hub.subscriber(), hub.subscriber());
    /// alice.subscribe("lobby");
    /// bob.subscribe("lobby");
    /// assert_eq!(hub.publish_except("lobby", "hi, I am alice", &alice), 1);
    /// assert!(alice.try_recv().is_none());
    /// assert!(matches!(bob.try_recv(), Some(Delivery::Message(_))));
    /// ```
    pub fn publish_except(
        &self,
        topic: &str,
        message: impl Into<PreparedMessage>,
        except: &Subscriber,
    ) -> usize {
        let message = message.into();
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.published();
        let reached = self.deliver(topic, &message, Some(except.id));
        if let Some(backplane) = self.inner.backplane.get() {
            backplane.relay(topic, &message, None);
        }
        reached
    }

    /// Publishes a message to this instance's subscribers of `topic` only, even with a
    /// backplane: for what each instance works out for itself (as a chat's list of who is
    /// present, merged from every instance's own), where relaying would deliver it once per
    /// instance. Returns how many subscribers it was queued for.
    ///
    /// ```
    /// use tower_websockets::broadcast::Hub;
    ///
    /// let hub = Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("lobby");
    /// assert_eq!(hub.publish_local("lobby", "only here"), 1);
    /// assert_eq!(hub.stats().relayed, 0);
    /// ```
    pub fn publish_local(&self, topic: &str, message: impl Into<PreparedMessage>) -> usize {
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.published();
        self.deliver(topic, &message.into(), None)
    }

    /// Publishes a message like [`publish`](Self::publish), and with a backplane waits until
    /// the broker has taken it for the other instances. Returns how many subscribers of this
    /// instance it was queued for.
    ///
    /// # Errors
    ///
    /// A [`BackplaneError`] when the backplane could not carry the message (the broker is down
    /// and the backplane is reconnecting, or it is overloaded): this instance's subscribers got
    /// it, the other instances did not. Without a backplane, never.
    ///
    /// ```
    /// use tower_websockets::broadcast::Hub;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let hub = Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("lobby");
    /// // No backplane: the same as `publish`.
    /// assert_eq!(hub.publish_confirmed("lobby", "hi").await, Ok(1));
    /// # }
    /// ```
    pub async fn publish_confirmed(
        &self,
        topic: &str,
        message: impl Into<PreparedMessage>,
    ) -> Result<usize, BackplaneError> {
        let message = message.into();
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.published();
        let reached = self.deliver(topic, &message, None);
        let Some(backplane) = self.inner.backplane.get() else { return Ok(reached) };
        let (confirm, confirmed) = tokio::sync::oneshot::channel();
        backplane.relay(topic, &message, Some(confirm));
        match confirmed.await {
            Ok(relayed) => relayed.map(|()| reached),
            Err(_) => Err(BackplaneError::Stopped),
        }
    }
}

/// What a backplane calls. The seam has one implementation so far, the `redis` feature's.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl Hub {
    /// Counts what became of a message handed to the backplane (called by the backplane).
    pub(crate) fn record_relay(&self, topic: &str, relayed: &Result<(), BackplaneError>) {
        match relayed {
            Ok(()) => {
                self.inner.relayed.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.inner.relay_failures.fetch_add(1, Ordering::Relaxed);
                self.inner.metrics.relay_failure();
                tracing::debug!(topic, %error, "message not relayed to the other instances");
            }
        }
    }

    /// Gives a message from another instance to this instance's subscribers.
    pub(crate) fn deliver_from_backplane(&self, topic: &str, message: &PreparedMessage) -> usize {
        self.inner.from_backplane.fetch_add(1, Ordering::Relaxed);
        self.deliver(topic, message, None)
    }

    /// Attaches a backplane, and tells it the topics that already have subscribers.
    pub(crate) fn attach_backplane(&self, backplane: Arc<dyn Backplane>) -> Result<(), BackplaneError> {
        // Under the write lock, so that no topic appears or goes unannounced meanwhile.
        let topics = self.inner.topics.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for topic in topics.keys() {
            backplane.topic_added(topic);
        }
        self.inner.backplane.set(backplane).map_err(|_| BackplaneError::AlreadyAttached)
    }

    /// Does the hub have a backplane?
    pub(crate) fn has_backplane(&self) -> bool {
        self.inner.backplane.get().is_some()
    }

    /// A handle that does not keep the hub alive (for a backplane's tasks).
    pub(crate) fn downgrade(&self) -> WeakHub {
        WeakHub(Arc::downgrade(&self.inner))
    }
}

impl Hub {
    /// Queues a message for this instance's subscribers of `topic`, but the one whose id is
    /// `except`.
    fn deliver(&self, topic: &str, message: &PreparedMessage, except: Option<u64>) -> usize {
        let inner = &*self.inner;
        let topics = inner.topics.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(subscribers) = topics.get(topic) else { return 0 };
        let mut reached = 0;
        for (id, mailbox) in subscribers {
            if Some(*id) != except && mailbox.push(message, inner) {
                reached += 1;
            }
        }
        inner.queued.fetch_add(reached as u64, Ordering::Relaxed);
        reached
    }

    /// How many subscribers `topic` has.
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("lobby");
    /// assert_eq!(hub.subscriber_count("lobby"), 1);
    /// assert_eq!(hub.subscriber_count("elsewhere"), 0);
    /// ```
    pub fn subscriber_count(&self, topic: &str) -> usize {
        let topics = self.inner.topics.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        topics.get(topic).map_or(0, HashMap::len)
    }

    /// The hub's counts.
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// assert_eq!(hub.stats().published, 0);
    /// ```
    pub fn stats(&self) -> HubStats {
        let inner = &*self.inner;
        let topics = inner.topics.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len();
        HubStats {
            topics,
            subscribers: inner.subscribers.load(Ordering::Relaxed),
            subscriptions: inner.subscriptions.load(Ordering::Relaxed),
            published: inner.published.load(Ordering::Relaxed),
            queued: inner.queued.load(Ordering::Relaxed),
            dropped: inner.dropped.load(Ordering::Relaxed),
            closed_for_lag: inner.closed_for_lag.load(Ordering::Relaxed),
            relayed: inner.relayed.load(Ordering::Relaxed),
            relay_failures: inner.relay_failures.load(Ordering::Relaxed),
            from_backplane: inner.from_backplane.load(Ordering::Relaxed),
        }
    }
}

/// A [`Hub`] that a backplane's tasks hold without keeping it alive: when the last `Hub` handle
/// goes, they stop.
#[derive(Clone)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct WeakHub(Weak<HubInner>);

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl WeakHub {
    /// The hub, if any handle to it is left.
    pub(crate) fn upgrade(&self) -> Option<Hub> {
        self.0.upgrade().map(|inner| Hub { inner })
    }
}

/// Topic → subscriber id → its queue.
type Topics = HashMap<Arc<str>, HashMap<u64, Arc<Mailbox>>>;

/// One subscriber's queue, shared between its [`Subscriber`] and the topics it is in.
#[derive(Default)]
struct Mailbox {
    queue: Mutex<Queue>,
    /// Wakes the subscriber's handler; a permit is kept when it is not waiting.
    notify: Notify,
}

#[derive(Default)]
struct Queue {
    messages: VecDeque<PreparedMessage>,
    /// What `messages` cost, payloads plus overhead.
    bytes: usize,
    /// Messages dropped since the subscriber last heard of it.
    missed: u64,
    /// Told to close ([`LagPolicy::Close`]): takes nothing more.
    closing: Option<CloseCode>,
}

fn cost(message: &PreparedMessage) -> usize {
    message.len().saturating_add(QUEUED_MESSAGE_OVERHEAD)
}

impl Mailbox {
    /// Queues a message, applying the lag policy. `false` when the subscriber takes nothing
    /// more.
    fn push(&self, message: &PreparedMessage, hub: &HubInner) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.closing.is_some() {
            return false;
        }
        let cost = cost(message);
        if !queue.messages.is_empty() && queue.bytes.saturating_add(cost) > hub.max_queued_bytes {
            match hub.on_lag {
                LagPolicy::DropOldest => {
                    while queue.bytes.saturating_add(cost) > hub.max_queued_bytes {
                        let Some(oldest) = queue.messages.pop_front() else { break };
                        queue.bytes -= self::cost(&oldest);
                        queue.missed += 1;
                        hub.dropped.fetch_add(1, Ordering::Relaxed);
                        hub.metrics.dropped(1);
                    }
                }
                LagPolicy::Close(code) => {
                    hub.dropped.fetch_add(queue.messages.len() as u64 + 1, Ordering::Relaxed);
                    hub.metrics.dropped(queue.messages.len() as u64 + 1);
                    hub.closed_for_lag.fetch_add(1, Ordering::Relaxed);
                    queue.messages.clear();
                    queue.bytes = 0;
                    queue.closing = Some(code);
                    drop(queue);
                    self.notify.notify_one();
                    return false;
                }
            }
        }
        queue.bytes += cost;
        queue.messages.push_back(message.clone());
        drop(queue);
        self.notify.notify_one();
        true
    }

    /// Is a delivery waiting?
    fn has_delivery(&self) -> bool {
        let queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        queue.closing.is_some() || queue.missed > 0 || !queue.messages.is_empty()
    }

    /// The order to close or the count of missed messages, if one comes next.
    fn take_notice(&self) -> Option<Delivery> {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(code) = queue.closing.take() {
            return Some(Delivery::Close(code));
        }
        (queue.missed > 0).then(|| Delivery::Missed(std::mem::take(&mut queue.missed)))
    }

    /// The next message, if one comes next (not after a notice).
    fn take_message(&self) -> Option<PreparedMessage> {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.closing.is_some() || queue.missed > 0 {
            return None;
        }
        let message = queue.messages.pop_front()?;
        queue.bytes -= cost(&message);
        Some(message)
    }

    /// The next delivery, if one is waiting.
    fn take(&self) -> Option<Delivery> {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(code) = queue.closing.take() {
            return Some(Delivery::Close(code));
        }
        if queue.missed > 0 {
            return Some(Delivery::Missed(std::mem::take(&mut queue.missed)));
        }
        let message = queue.messages.pop_front()?;
        queue.bytes -= cost(&message);
        Some(Delivery::Message(message))
    }
}

/// One socket's membership in a [`Hub`]: the topics it is in, and its queue of messages
/// published to them. Made by [`Hub::subscriber`]; dropping it (when the handler ends) leaves
/// every topic.
///
/// ```
/// use tower_websockets::broadcast::Hub;
///
/// let hub = Hub::new();
/// let mut subscriber = hub.subscriber();
/// assert!(subscriber.subscribe("a"));
/// assert!(!subscriber.subscribe("a"), "already in it");
/// subscriber.subscribe("b");
/// assert!(subscriber.unsubscribe("a"));
/// assert_eq!(subscriber.topics().collect::<Vec<_>>(), ["b"]);
/// drop(subscriber);
/// assert_eq!(hub.stats().topics, 0);
/// ```
pub struct Subscriber {
    hub: Arc<HubInner>,
    id: u64,
    mailbox: Arc<Mailbox>,
    topics: HashSet<Arc<str>>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Joins `topic`; `false` if already in it. The subscriber receives every message published
    /// to `topic` from now on, none from before.
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// assert!(subscriber.subscribe("lobby"));
    /// ```
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if self.topics.contains(topic) {
            return false;
        }
        let topic: Arc<str> = Arc::from(topic);
        {
            let mut topics = self.hub.topics.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            let subscribers = topics.entry(topic.clone()).or_default();
            if subscribers.is_empty() {
                if let Some(backplane) = self.hub.backplane.get() {
                    backplane.topic_added(&topic);
                }
            }
            subscribers.insert(self.id, self.mailbox.clone());
        }
        self.hub.subscriptions.fetch_add(1, Ordering::Relaxed);
        self.topics.insert(topic);
        true
    }

    /// Leaves `topic`; `false` if not in it. Messages of the topic already queued are still
    /// delivered.
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("lobby");
    /// assert!(subscriber.unsubscribe("lobby"));
    /// assert!(!subscriber.unsubscribe("lobby"));
    /// ```
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        if !self.topics.remove(topic) {
            return false;
        }
        let mut topics = self.hub.topics.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.leave(&mut topics, topic);
        true
    }

    /// Leaves every topic.
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("a");
    /// subscriber.subscribe("b");
    /// subscriber.unsubscribe_all();
    /// assert_eq!(hub.stats().subscriptions, 0);
    /// ```
    pub fn unsubscribe_all(&mut self) {
        if self.topics.is_empty() {
            return;
        }
        let mut topics = self.hub.topics.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for topic in std::mem::take(&mut self.topics) {
            self.leave(&mut topics, &topic);
        }
    }

    fn leave(&self, topics: &mut Topics, topic: &str) {
        if let Some(subscribers) = topics.get_mut(topic) {
            if subscribers.remove(&self.id).is_some() {
                self.hub.subscriptions.fetch_sub(1, Ordering::Relaxed);
            }
            if subscribers.is_empty() {
                topics.remove(topic);
                if let Some(backplane) = self.hub.backplane.get() {
                    backplane.topic_removed(topic);
                }
            }
        }
    }

    /// The topics this subscriber is in, in no particular order.
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("lobby");
    /// assert!(subscriber.topics().eq(["lobby"]));
    /// ```
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(|topic| &**topic)
    }

    /// Is the subscriber in `topic`?
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("lobby");
    /// assert!(subscriber.is_subscribed("lobby"));
    /// ```
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.topics.contains(topic)
    }

    /// Waits for the next delivery: a message, the count of messages missed, or the order to
    /// close. Waits for ever while the subscriber is in no topic (it is meant to sit in a
    /// `select!` beside [`WebSocket::recv`](crate::WebSocket::recv)).
    ///
    /// After a [`Delivery::Close`] the subscriber is in no topic; it may subscribe again.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a delivery is taken only when the future completes.
    ///
    /// ```
    /// use tower_websockets::broadcast::{Delivery, Hub};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let hub = Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("ticks");
    /// hub.publish("ticks", "1");
    /// assert!(matches!(subscriber.recv().await, Delivery::Message(_)));
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Delivery {
        loop {
            if let Some(delivery) = self.try_recv() {
                return delivery;
            }
            self.mailbox.notify.notified().await;
        }
    }

    /// The next delivery if one is waiting, without waiting.
    ///
    /// ```
    /// let hub = tower_websockets::broadcast::Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// assert!(subscriber.try_recv().is_none());
    /// ```
    pub fn try_recv(&mut self) -> Option<Delivery> {
        let delivery = self.mailbox.take()?;
        if let Delivery::Close(_) = delivery {
            self.unsubscribe_all();
        }
        Some(delivery)
    }

    /// Waits until a delivery is waiting, without taking it: the branch of a `tokio::select!`
    /// beside [`WebSocket::recv`](crate::WebSocket::recv), whose handler then calls [`forward_to`](Self::forward_to).
    /// Waits for ever while the subscriber is in no topic and nothing is queued.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it takes nothing.
    ///
    /// ```
    /// use tower_websockets::broadcast::Hub;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let hub = Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("ticks");
    /// hub.publish("ticks", "1");
    /// subscriber.ready().await;
    /// assert!(subscriber.try_recv().is_some(), "still there: ready took nothing");
    /// # }
    /// ```
    pub async fn ready(&self) {
        while !self.mailbox.has_delivery() {
            self.mailbox.notify.notified().await;
        }
    }

    /// The order to close or the count of missed messages, taken, if one comes next. After
    /// the order to close, the subscriber is in no topic (as after [`try_recv`](Self::try_recv)).
    pub(crate) fn take_notice(&mut self) -> Option<Delivery> {
        let notice = self.mailbox.take_notice()?;
        if let Delivery::Close(_) = notice {
            self.unsubscribe_all();
        }
        Some(notice)
    }

    /// The next message, taken, if one comes next (not after a notice).
    pub(crate) fn take_message(&self) -> Option<PreparedMessage> {
        self.mailbox.take_message()
    }

    /// What the queue holds now, in bytes (payloads plus overhead).
    ///
    /// ```
    /// use tower_websockets::broadcast::{Hub, QUEUED_MESSAGE_OVERHEAD};
    ///
    /// let hub = Hub::new();
    /// let mut subscriber = hub.subscriber();
    /// subscriber.subscribe("t");
    /// hub.publish("t", "four");
    /// assert_eq!(subscriber.queued_bytes(), 4 + QUEUED_MESSAGE_OVERHEAD);
    /// ```
    pub fn queued_bytes(&self) -> usize {
        self.mailbox.queue.lock().map_or_else(|poisoned| poisoned.into_inner().bytes, |queue| queue.bytes)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.hub.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}
