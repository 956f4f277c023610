//! [`RedisBackplane`]: a [`Hub`]'s topics across server instances, through Redis pub/sub.
//!
//! Two connections and two tasks per backplane:
//! - the subscriber task holds a pub/sub connection, subscribed to the channels of the topics
//!   that have local subscribers, and gives what arrives to the hub; when the connection breaks,
//!   it reconnects with back-off and subscribes again;
//! - the publisher task holds a command connection and sends what the hub publishes, in
//!   order, as pipelined `PUBLISH`es; while Redis is down it fails each message at once, and
//!   tries to reconnect with back-off.

use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use redis::{
    AsyncConnectionConfig, Client, RedisError,
    aio::{MultiplexedConnection, PubSub, PubSubSink, PubSubStream},
};
use tokio::{
    sync::mpsc,
    time::{Instant, timeout},
};

use super::{
    BackplaneError, Hub, PreparedMessage,
    backplane::{Backplane, Confirm, Envelope, decode_envelope, encode_envelope, random_origin},
    hub::WeakHub,
};

/// The Redis channel of a topic is this prefix followed by the topic, unless
/// [`RedisBackplaneBuilder::channel_prefix`] says otherwise.
pub const DEFAULT_CHANNEL_PREFIX: &str = "tower-websockets:";

/// Builds a [`RedisBackplane`]: the URL, the channel prefix, the timeouts, the back-off and the
/// queue of messages waiting for Redis.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_websockets::broadcast::{Hub, RedisBackplane};
///
/// # async fn run() -> Result<(), tower_websockets::broadcast::BackplaneError> {
/// let hub = Hub::new();
/// let backplane = RedisBackplane::builder("redis://:secret@127.0.0.1:6379/")
///     .channel_prefix("chat:")
///     .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(5))
///     .attach(&hub)
///     .await?;
/// assert!(backplane.is_connected());
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Clone)]
pub struct RedisBackplaneBuilder {
    url: String,
    channel_prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
    max_pending: usize,
}

impl fmt::Debug for RedisBackplaneBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackplaneBuilder")
            .field("url", &redact(&self.url))
            .field("channel_prefix", &self.channel_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_pending", &self.max_pending)
            .finish()
    }
}

impl RedisBackplaneBuilder {
    /// The prefix of every topic's Redis channel (default [`DEFAULT_CHANNEL_PREFIX`]). Instances
    /// that share topics must use the same prefix; applications that share one Redis use
    /// different ones.
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.channel_prefix = prefix.into();
        self
    }

    /// How long connecting to Redis may take, at start-up and when reconnecting (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long Redis may take to answer a command (default 5 s); past it, the connection is
    /// taken for broken.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The wait before the first reconnection attempt, doubled after each failure up to `max`
    /// (defaults 100 ms and 10 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// How many published messages may wait for Redis (default 4,096). Past it,
    /// publishing fails with [`BackplaneError::Overloaded`] for the other instances; local
    /// subscribers still get the message.
    pub fn max_pending(mut self, messages: usize) -> Self {
        self.max_pending = messages;
        self
    }

    /// Connects to Redis, checks that it answers (and accepts the password in the URL, if any),
    /// and attaches the backplane to `hub`: from now on, what the hub publishes goes to the
    /// other instances too, and what they publish to the hub's topics reaches its subscribers.
    ///
    /// # Errors
    ///
    /// - [`BackplaneError::InvalidUrl`]: the URL is not a Redis URL, or an option is out of
    ///   range (a zero timeout or queue, a `min` back-off above `max`);
    /// - [`BackplaneError::Unreachable`]: nothing answers there within the connect timeout;
    /// - [`BackplaneError::Refused`]: Redis refused us (a wrong password, or one missing);
    /// - [`BackplaneError::AlreadyAttached`]: the hub has a backplane already.
    pub async fn attach(self, hub: &Hub) -> Result<RedisBackplane, BackplaneError> {
        let url = redact(&self.url);
        let invalid =
            |reason: &str| BackplaneError::InvalidUrl { url: url.clone(), reason: reason.to_owned() };
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(invalid("the connect and response timeouts must not be zero"));
        }
        if self.min_backoff.is_zero() || self.min_backoff > self.max_backoff {
            return Err(invalid(
                "the reconnect back-off must be above zero, and its minimum at most its maximum",
            ));
        }
        if self.max_pending == 0 {
            return Err(invalid("max_pending must be at least 1"));
        }
        if hub.has_backplane() {
            return Err(BackplaneError::AlreadyAttached);
        }
        let client = Client::open(self.url.as_str())
            .map_err(|error| BackplaneError::InvalidUrl { url: url.clone(), reason: error.to_string() })?;

        let config = Arc::new(Config {
            url,
            channel_prefix: self.channel_prefix,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            min_backoff: self.min_backoff,
            max_backoff: self.max_backoff,
            client,
        });
        // Both connections now, so that a wrong URL or password fails here, not later.
        let mut publisher =
            config.connect_publisher().await.map_err(|failure| failure.at_start_up(&config.url))?;
        ping(&mut publisher, config.response_timeout)
            .await
            .map_err(|failure| failure.at_start_up(&config.url))?;
        let subscriber =
            config.connect_subscriber().await.map_err(|failure| failure.at_start_up(&config.url))?;

        let origin = random_origin();
        let status = Arc::new(Status::default());
        let (commands, command_queue) = mpsc::unbounded_channel();
        let (outgoing, outgoing_queue) = mpsc::channel(self.max_pending);
        let link = Arc::new(Link {
            origin,
            channel_prefix: config.channel_prefix.clone(),
            commands,
            outgoing,
            hub: hub.downgrade(),
        });
        hub.attach_backplane(link)?;
        status.set_subscriber_connected(true);
        status.set_publisher_connected(true);
        tokio::spawn(
            SubscriberTask {
                config: config.clone(),
                hub: hub.downgrade(),
                commands: command_queue,
                topics: HashSet::new(),
                status: status.clone(),
                origin,
            }
            .run(subscriber),
        );
        tokio::spawn(
            PublisherTask {
                config: config.clone(),
                hub: hub.downgrade(),
                outgoing: outgoing_queue,
                status: status.clone(),
            }
            .run(publisher),
        );
        tracing::info!(url = %config.url, prefix = %config.channel_prefix, "Redis backplane attached");
        Ok(RedisBackplane { status, url: config.url.clone() })
    }
}

/// A [`Hub`]'s link to the other server instances through Redis pub/sub: every instance
/// subscribes to the Redis channels of the topics its sockets are in, and what is published on
/// any instance reaches the subscribers of all of them, each once.
///
/// Attach one to the hub at start-up; the hub's [`publish`](Hub::publish) and
/// [`publish_confirmed`](Hub::publish_confirmed) then reach the other instances too. The
/// backplane runs until the last handle to its hub is dropped; this handle only reports on it.
///
/// See [the module](super#across-instances-a-backplane) for the delivery guarantees, and what
/// is lost while Redis is down.
///
/// ```no_run
/// use tower_websockets::broadcast::{Hub, RedisBackplane};
///
/// # async fn run() -> Result<(), tower_websockets::broadcast::BackplaneError> {
/// let hub = Hub::new();
/// // Fails here, with a message that says why, for a wrong URL or password.
/// let backplane = RedisBackplane::attach("redis://127.0.0.1:6379/", &hub).await?;
/// let mut subscriber = hub.subscriber();
/// subscriber.subscribe("lobby");
/// // Reaches "lobby" on this instance and on every other one.
/// hub.publish_confirmed("lobby", "hello, everyone").await?;
/// # drop(backplane);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisBackplane {
    status: Arc<Status>,
    url: String,
}

impl fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("url", &self.url)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl RedisBackplane {
    /// A builder, for options other than the defaults.
    pub fn builder(url: impl Into<String>) -> RedisBackplaneBuilder {
        RedisBackplaneBuilder {
            url: url.into(),
            channel_prefix: DEFAULT_CHANNEL_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_pending: 4096,
        }
    }

    /// Connects to Redis at `url` with the default options and attaches the backplane to
    /// `hub`; see [`RedisBackplaneBuilder::attach`].
    ///
    /// # Errors
    ///
    /// As [`RedisBackplaneBuilder::attach`].
    pub async fn attach(url: &str, hub: &Hub) -> Result<Self, BackplaneError> {
        Self::builder(url).attach(hub).await
    }

    /// Are both connections to Redis up (with every topic subscribed again after a
    /// reconnection)?
    pub fn is_connected(&self) -> bool {
        self.status.subscriber_connected() && self.status.publisher_connected()
    }

    /// Has Redis confirmed this instance's subscription to `topic`'s channel? Until it has,
    /// messages published to `topic` on other instances do not reach this one. A topic is
    /// subscribed when its first local subscriber joins it.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.status.subscribed.lock().is_ok_and(|subscribed| subscribed.contains(topic))
    }

    /// The Redis URL, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The options, and the client that connects.
struct Config {
    url: String,
    channel_prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
    client: Client,
}

impl Config {
    fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.channel_prefix)
    }

    async fn connect_publisher(&self) -> Result<MultiplexedConnection, Failure> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        match timeout(self.connect_timeout, self.client.get_multiplexed_async_connection_with_config(&config))
            .await
        {
            Ok(connected) => connected.map_err(Failure::Redis),
            Err(_) => Err(Failure::TimedOut(self.connect_timeout)),
        }
    }

    async fn connect_subscriber(&self) -> Result<PubSub, Failure> {
        match timeout(self.connect_timeout, self.client.get_async_pubsub()).await {
            Ok(connected) => connected.map_err(Failure::Redis),
            Err(_) => Err(Failure::TimedOut(self.connect_timeout)),
        }
    }

    fn next_backoff(&self, backoff: Duration) -> Duration {
        backoff.saturating_mul(2).min(self.max_backoff)
    }
}

/// A failed exchange with Redis.
enum Failure {
    Redis(RedisError),
    TimedOut(Duration),
}

impl Failure {
    /// The start-up error: unreachable, or refused.
    fn at_start_up(self, url: &str) -> BackplaneError {
        let url = url.to_owned();
        match self {
            Self::TimedOut(after) => {
                BackplaneError::Unreachable { url, reason: format!("no answer within {after:?}") }
            }
            Self::Redis(error)
                if error.is_io_error() || error.is_connection_refusal() || error.is_timeout() =>
            {
                BackplaneError::Unreachable { url, reason: error.to_string() }
            }
            Self::Redis(error) => BackplaneError::Refused { url, reason: error.to_string() },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(error) => error.fmt(f),
            Self::TimedOut(after) => write!(f, "no answer within {after:?}"),
        }
    }
}

async fn ping(connection: &mut MultiplexedConnection, within: Duration) -> Result<(), Failure> {
    match timeout(within, redis::cmd("PING").query_async::<String>(connection)).await {
        Ok(answer) => answer.map(drop).map_err(Failure::Redis),
        Err(_) => Err(Failure::TimedOut(within)),
    }
}

/// What the tasks report.
#[derive(Default)]
struct Status {
    subscriber: std::sync::atomic::AtomicBool,
    publisher: std::sync::atomic::AtomicBool,
    /// The topics whose channels Redis has confirmed.
    subscribed: Mutex<HashSet<String>>,
    /// How many times the subscriber's connection broke. The publisher learns of an outage only
    /// when it next publishes; when this has moved since it connected, it reconnects first
    /// rather than lose a message to a connection that is most likely dead too.
    outages: std::sync::atomic::AtomicU64,
}

impl Status {
    fn subscriber_connected(&self) -> bool {
        self.subscriber.load(std::sync::atomic::Ordering::Acquire)
    }

    fn publisher_connected(&self) -> bool {
        self.publisher.load(std::sync::atomic::Ordering::Acquire)
    }

    fn set_subscriber_connected(&self, connected: bool) {
        self.subscriber.store(connected, std::sync::atomic::Ordering::Release);
    }

    fn set_publisher_connected(&self, connected: bool) {
        self.publisher.store(connected, std::sync::atomic::Ordering::Release);
    }

    fn outages(&self) -> u64 {
        self.outages.load(std::sync::atomic::Ordering::Acquire)
    }

    fn with_subscribed(&self, change: impl FnOnce(&mut HashSet<String>)) {
        let mut subscribed = self.subscribed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut subscribed);
    }
}

/// The hub's side: queues work for the two tasks, never waits.
struct Link {
    origin: u64,
    channel_prefix: String,
    commands: mpsc::UnboundedSender<Command>,
    outgoing: mpsc::Sender<Outgoing>,
    hub: WeakHub,
}

enum Command {
    Subscribe(String),
    Unsubscribe(String),
}

/// A message on its way to Redis.
struct Outgoing {
    topic: String,
    channel: String,
    envelope: Bytes,
    confirm: Option<Confirm>,
}

impl Backplane for Link {
    fn topic_added(&self, topic: &str) {
        // Fails only once the subscriber task has ended, when nothing is left to tell.
        let _ = self.commands.send(Command::Subscribe(topic.to_owned()));
    }

    fn topic_removed(&self, topic: &str) {
        let _ = self.commands.send(Command::Unsubscribe(topic.to_owned()));
    }

    fn relay(&self, topic: &str, message: &PreparedMessage, confirm: Option<Confirm>) {
        let outgoing = Outgoing {
            topic: topic.to_owned(),
            channel: format!("{}{topic}", self.channel_prefix),
            envelope: encode_envelope(self.origin, message),
            confirm,
        };
        let error = match self.outgoing.try_send(outgoing) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(outgoing)) => (BackplaneError::Overloaded, outgoing),
            Err(mpsc::error::TrySendError::Closed(outgoing)) => (BackplaneError::Stopped, outgoing),
        };
        let (error, outgoing) = error;
        let failed = Err(error);
        if let Some(hub) = self.hub.upgrade() {
            hub.record_relay(topic, &failed);
        }
        if let Some(confirm) = outgoing.confirm {
            let _ = confirm.send(failed);
        }
    }
}

/// Keeps the pub/sub connection subscribed to the hub's topics, and hands the hub what arrives.
struct SubscriberTask {
    config: Arc<Config>,
    hub: WeakHub,
    commands: mpsc::UnboundedReceiver<Command>,
    /// The topics with local subscribers, as the hub last said.
    topics: HashSet<String>,
    status: Arc<Status>,
    origin: u64,
}

/// Why the subscriber stopped serving a connection.
enum Ended {
    /// The hub is gone: the task ends.
    HubGone,
    /// The connection broke: reconnect.
    Broken(String),
}

impl SubscriberTask {
    async fn run(mut self, first: PubSub) {
        let mut connection = Some(first);
        let mut backoff = self.config.min_backoff;
        let mut reconnecting = false;
        loop {
            let connected = match connection.take() {
                Some(connection) => Ok(connection),
                None => self.config.connect_subscriber().await,
            };
            let reason = match connected {
                Ok(connection) => {
                    let (mut sink, mut stream) = connection.split();
                    match self.subscribe_all(&mut sink).await {
                        Ok(()) => {
                            self.status.set_subscriber_connected(true);
                            if reconnecting {
                                tracing::info!(
                                    url = %self.config.url,
                                    topics = self.topics.len(),
                                    "Redis backplane: subscriber reconnected, topics subscribed again"
                                );
                            }
                            backoff = self.config.min_backoff;
                            reconnecting = false;
                            match self.serve(&mut sink, &mut stream).await {
                                Ended::HubGone => return,
                                Ended::Broken(reason) => reason,
                            }
                        }
                        Err(failure) => failure.to_string(),
                    }
                }
                Err(failure) => failure.to_string(),
            };
            self.status.set_subscriber_connected(false);
            self.status.with_subscribed(HashSet::clear);
            if !reconnecting {
                self.status.outages.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
            if reconnecting {
                tracing::debug!(url = %self.config.url, %reason, ?backoff, "Redis backplane: subscriber still disconnected");
            } else {
                tracing::warn!(
                    url = %self.config.url,
                    %reason,
                    "Redis backplane: subscriber disconnected; messages from other instances are lost until it reconnects"
                );
            }
            reconnecting = true;
            if !self.wait(backoff).await {
                return;
            }
            backoff = self.config.next_backoff(backoff);
        }
    }

    /// Sleeps for `backoff` while keeping track of the hub's topics; `false` if the hub is
    /// gone.
    async fn wait(&mut self, backoff: Duration) -> bool {
        let deadline = Instant::now() + backoff;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return true,
                command = self.commands.recv() => match command {
                    Some(Command::Subscribe(topic)) => {
                        self.topics.insert(topic);
                    }
                    Some(Command::Unsubscribe(topic)) => {
                        self.topics.remove(&topic);
                    }
                    None => return false,
                },
            }
        }
    }

    async fn subscribe_all(&self, sink: &mut PubSubSink) -> Result<(), Failure> {
        for topic in &self.topics {
            self.request(sink.subscribe(self.config.channel(topic))).await?;
            self.status.with_subscribed(|subscribed| {
                subscribed.insert(topic.clone());
            });
        }
        Ok(())
    }

    async fn request(&self, request: impl Future<Output = redis::RedisResult<()>>) -> Result<(), Failure> {
        match timeout(self.config.response_timeout, request).await {
            Ok(answer) => answer.map_err(Failure::Redis),
            Err(_) => Err(Failure::TimedOut(self.config.response_timeout)),
        }
    }

    async fn serve(&mut self, sink: &mut PubSubSink, stream: &mut PubSubStream) -> Ended {
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else {
                        return Ended::Broken("the connection to Redis closed".to_owned());
                    };
                    let Some(hub) = self.hub.upgrade() else { return Ended::HubGone };
                    let channel = message.get_channel_name();
                    let Some(topic) = channel.strip_prefix(self.config.channel_prefix.as_str()) else {
                        continue;
                    };
                    match decode_envelope(self.origin, message.get_payload_bytes()) {
                        Ok(Envelope::Foreign(message)) => {
                            hub.deliver_from_backplane(topic, &message);
                        }
                        Ok(Envelope::Own) => {}
                        Err(reason) => {
                            tracing::warn!(channel, %reason, "Redis backplane: ignored a message that is not ours");
                        }
                    }
                }
                command = self.commands.recv() => {
                    let answered = match command {
                        None => return Ended::HubGone,
                        Some(Command::Subscribe(topic)) => {
                            if !self.topics.insert(topic.clone()) {
                                continue;
                            }
                            let answered = self.request(sink.subscribe(self.config.channel(&topic))).await;
                            if answered.is_ok() {
                                self.status.with_subscribed(|subscribed| {
                                    subscribed.insert(topic);
                                });
                            }
                            answered
                        }
                        Some(Command::Unsubscribe(topic)) => {
                            if !self.topics.remove(&topic) {
                                continue;
                            }
                            self.status.with_subscribed(|subscribed| {
                                subscribed.remove(&topic);
                            });
                            self.request(sink.unsubscribe(self.config.channel(&topic))).await
                        }
                    };
                    if let Err(failure) = answered {
                        return Ended::Broken(failure.to_string());
                    }
                }
            }
        }
    }
}

/// Sends what the hub publishes to Redis, in order.
struct PublisherTask {
    config: Arc<Config>,
    hub: WeakHub,
    outgoing: mpsc::Receiver<Outgoing>,
    status: Arc<Status>,
}

/// At most this many messages go to Redis in one pipeline.
const MAX_BATCH: usize = 256;

impl PublisherTask {
    async fn run(mut self, first: MultiplexedConnection) {
        let mut connection = Some(first);
        let mut connected_after = self.status.outages();
        let mut backoff = self.config.min_backoff;
        let mut retry_at = Instant::now();
        let mut last_failure = String::new();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while self.outgoing.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if connection.is_some() && self.status.outages() != connected_after {
                tracing::debug!(url = %self.config.url, "Redis backplane: the subscriber saw an outage; the publisher reconnects");
                connection = None;
                self.status.set_publisher_connected(false);
                last_failure = "the connection to Redis broke".to_owned();
                retry_at = Instant::now();
            }
            if connection.is_none() && Instant::now() >= retry_at {
                let outages = self.status.outages();
                match self.config.connect_publisher().await {
                    Ok(connected) => {
                        tracing::info!(url = %self.config.url, "Redis backplane: publisher reconnected");
                        connection = Some(connected);
                        connected_after = outages;
                        backoff = self.config.min_backoff;
                        self.status.set_publisher_connected(true);
                    }
                    Err(failure) => {
                        last_failure = failure.to_string();
                        retry_at = Instant::now() + backoff;
                        backoff = self.config.next_backoff(backoff);
                    }
                }
            }
            let sent = match connection.as_mut() {
                None => Err(last_failure.clone()),
                Some(live) => self.publish(live, &batch).await.map_err(|failure| failure.to_string()),
            };
            if let Err(reason) = &sent {
                if connection.take().is_some() {
                    tracing::warn!(
                        url = %self.config.url,
                        %reason,
                        "Redis backplane: publisher disconnected; messages reach this instance only until it reconnects"
                    );
                    self.status.set_publisher_connected(false);
                    last_failure.clone_from(reason);
                    retry_at = Instant::now() + backoff;
                    backoff = self.config.next_backoff(backoff);
                }
            }
            let hub = self.hub.upgrade();
            for outgoing in batch.drain(..) {
                let relayed = sent.clone().map_err(|reason| BackplaneError::Unavailable { reason });
                if let Some(hub) = &hub {
                    hub.record_relay(&outgoing.topic, &relayed);
                }
                if let Some(confirm) = outgoing.confirm {
                    let _ = confirm.send(relayed);
                }
            }
        }
    }

    async fn publish(
        &self,
        connection: &mut MultiplexedConnection,
        batch: &[Outgoing],
    ) -> Result<(), Failure> {
        let mut pipeline = redis::pipe();
        for outgoing in batch {
            pipeline.cmd("PUBLISH").arg(&outgoing.channel).arg(&outgoing.envelope[..]).ignore();
        }
        match timeout(self.config.response_timeout, pipeline.exec_async(connection)).await {
            Ok(answer) => answer.map_err(Failure::Redis),
            Err(_) => Err(Failure::TimedOut(self.config.response_timeout)),
        }
    }
}

/// The URL with its password, if any, replaced by `***`, for logs and errors.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_owned() };
    let user_info = &rest[..at];
    match user_info.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_do_not_reach_logs_or_errors() {
        assert_eq!(redact("redis://:secret@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
        assert_eq!(redact("redis://alice:secret@host/"), "redis://alice:***@host/");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("redis://alice@host"), "redis://alice@host");
        assert_eq!(redact("not a url"), "not a url");
        let builder = RedisBackplane::builder("redis://:hunter2@localhost/");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn bad_options_and_urls_are_refused_before_connecting() {
        let hub = Hub::new();
        let error = RedisBackplane::attach("http://:pw@127.0.0.1/", &hub).await.unwrap_err();
        assert!(matches!(error, BackplaneError::InvalidUrl { .. }), "{error}");
        assert!(!error.to_string().contains(":pw@"), "{error}");

        let error = RedisBackplane::builder("redis://127.0.0.1/")
            .reconnect_backoff(Duration::from_secs(2), Duration::from_secs(1))
            .attach(&hub)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("back-off"), "{error}");

        let error =
            RedisBackplane::builder("redis://127.0.0.1/").max_pending(0).attach(&hub).await.unwrap_err();
        assert!(error.to_string().contains("max_pending"), "{error}");
        assert!(!hub.has_backplane());
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_start_up_error() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let hub = Hub::new();
        let error = RedisBackplane::builder(format!("redis://127.0.0.1:{port}/"))
            .connect_timeout(Duration::from_secs(2))
            .attach(&hub)
            .await
            .unwrap_err();
        assert!(matches!(error, BackplaneError::Unreachable { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot reach the backplane at redis://127.0.0.1:{port}/")),
            "{error}"
        );
        assert!(!hub.has_backplane());
    }
}
