//! Fan-out: one message to many sockets, encoded once.
//!
//! - [`PreparedMessage`] (`src/prepared.rs`, beside `message.rs`): a message encoded once, sent with
//!   [`WebSocket::send_prepared`](crate::WebSocket::send_prepared), for your own fan-out;
//! - [`Hub`] (`hub.rs`): topics, a [`Subscriber`] per socket with a bounded queue, and
//!   [`Hub::publish`] from anywhere;
//! - the backplane seam (`backplane.rs`): what a hub asks of a broker that carries its topics
//!   to other instances, and [`BackplaneError`];
//! - `RedisBackplane` (`redis.rs`, with the `redis` feature): that broker is Redis pub/sub.
//!
//! # The handler's shape
//!
//! Two parts, in two places:
//!
//! 1. **In the handler that accepts the socket**, before
//!    [`on_upgrade`](crate::WebSocketUpgrade::on_upgrade): make the socket's [`Subscriber`],
//!    subscribe it, and move it into the callback. The subscription then exists before the 101
//!    response goes out, so a client whose connect has returned gets everything published
//!    after that. (The callback runs on a task of its own once the 101 has gone out: a
//!    subscription made there may come after a message the client was meant to get.)
//! 2. **In the socket's callback**: wait on two things at once, in one `tokio::select!`:
//!    [`WebSocket::recv`](crate::WebSocket::recv) for what the client sends, and
//!    [`Subscriber::ready`] for what is published to its topics, which
//!    [`Subscriber::forward_to`] then writes: everything queued (up to 256 messages) with one
//!    flush, one write for a burst rather than one per message (at 100 clients that is the
//!    difference between 0.5× and over 3× the rate of uWebSockets' pub/sub in
//!    `scripts/bench.sh`'s fan-out). `recv` and `ready` are cancel safe, so the branch that
//!    loses loses nothing.
//!
//! Why this shape rather than a socket split into send and receive halves: the socket's
//! keep-alive, its replies to Pings, the closing handshake and the layer's shutdown all run
//! while the handler awaits the socket, on the handler's own task, and the socket needs no task
//! or lock of its own. Halves would need both (a lock around the connection, or a writer task
//! and a channel), and the close rules would then be split between two owners. Here the
//! handler stays the one owner of its socket, a slow client only slows its own handler, and the
//! publisher only touches queues.
//!
//! ```
//! use tower_websockets::{
//!     Message, WebSocket, WebSocketUpgrade, broadcast::{Hub, Subscriber}, handshake::HandshakeBody,
//! };
//!
//! /// Accepts a socket into the lobby (the request handler, with axum or without).
//! fn join_lobby(upgrade: WebSocketUpgrade, hub: Hub) -> http::Response<HandshakeBody> {
//!     // Subscribed now, before the 101 goes out.
//!     let mut subscriber = hub.subscriber();
//!     subscriber.subscribe("lobby");
//!     upgrade.on_upgrade(move |socket| chat(socket, hub, subscriber))
//! }
//!
//! async fn chat(mut socket: WebSocket, hub: Hub, mut subscriber: Subscriber) {
//!     loop {
//!         tokio::select! {
//!             incoming = socket.recv() => match incoming {
//!                 Some(Ok(Message::Text(text))) => {
//!                     hub.publish("lobby", text);
//!                 }
//!                 Some(Ok(_)) => {}
//!                 // The socket is closed, or failed: the subscriber leaves "lobby" on drop.
//!                 Some(Err(_)) | None => break,
//!             },
//!             // What was published: everything queued, in one write.
//!             () = subscriber.ready() => match subscriber.forward_to(&mut socket).await {
//!                 // It fell behind (LagPolicy::Close): forward_to has closed the socket.
//!                 Ok(forwarded) if forwarded.close.is_some() => break,
//!                 Ok(forwarded) if forwarded.missed > 0 => {
//!                     let notice = format!("(missed {} messages)", forwarded.missed);
//!                     if socket.send(notice).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!                 Ok(_) => {}
//!                 Err(_) => break,
//!             },
//!         }
//!     }
//! }
//! ```
//!
//! [`Hub::publish_except`] publishes to everyone but one subscriber: in a chat, everyone but the
//! one who spoke.
//!
//! # Delivery guarantees
//!
//! - A message published to a topic is queued, at once and in publishing order, for every
//!   subscriber in the topic at that moment; [`Hub::publish`] returns how many. Messages from
//!   one publisher reach each subscriber in the order they were published.
//! - **A subscriber receives from the moment [`Subscriber::subscribe`] returns:** every
//!   message published to the topic after that, none published before. Subscribed in the
//!   request handler (above), that moment comes before the 101, and so before the client's
//!   connect returns; what is published until the callback starts waits in the subscriber's
//!   queue. (If the upgrade fails, the callback is dropped, and the subscriber with it.)
//! - Publishing never waits for a socket. Each subscriber's queue holds at most
//!   [`max_queued_bytes`](HubBuilder::max_queued_bytes) (payload bytes plus
//!   [`QUEUED_MESSAGE_OVERHEAD`] per message; a single larger message still reaches an empty
//!   queue). A subscriber that would pass it is dealt with by the [`LagPolicy`]: its oldest
//!   messages are dropped and it is told how many ([`Delivery::Missed`]), or it is told to
//!   close ([`Delivery::Close`]). The others are not affected.
//! - Delivery is at most once: a message is gone once dropped by the policy, or once taken by a
//!   handler whose socket then fails.
//! - Messages are shared, not copied: a queue holds a reference to the one prepared message.
//! - A subscriber leaves all its topics when it is dropped (when its handler ends), and a topic
//!   with no subscriber left is removed.
//!
//! # Across instances: a backplane
//!
//! With the `redis` feature, `RedisBackplane::attach(url, &hub)` links the hub to every other
//! instance attached to the same Redis (and channel prefix). Nothing else changes in the
//! handlers: [`Hub::publish`], [`Hub::publish_except`] and [`Hub::publish_confirmed`] reach the
//! subscribers of every instance (`publish_except` skips its subscriber on its own instance;
//! the others deliver to all theirs). So what each instance publishes for itself, a clock
//! ticking on every instance say, goes out with [`Hub::publish_local`]: published with
//! `publish`, each subscriber would get it once per instance. The backplane stays attached
//! until the last handle to the hub is dropped; dropping the `RedisBackplane` handle does not
//! detach it.
//!
//! - **Exactly once, while Redis is up.** A message published on an instance is queued for its
//!   own subscribers at once, as without a backplane, and goes to Redis (channel
//!   `tower-websockets:<topic>`) for the others. Each message carries its instance's random id,
//!   so the copy Redis sends back to the publishing instance is skipped: no subscriber gets a
//!   message twice. Messages from one publisher keep their order on every instance.
//! - **At most once, across an outage.** Redis pub/sub keeps nothing: while an instance's
//!   connections are down, what it publishes reaches only its own subscribers
//!   ([`Hub::publish_confirmed`] says so with [`BackplaneError::Unavailable`], and
//!   [`HubStats::relay_failures`] counts it), and what other instances publish meanwhile never
//!   reaches it. Nothing is replayed later. Sockets stay open throughout; the backplane
//!   reconnects with back-off (100 ms doubling to 10 s by default) and subscribes to its topics
//!   again.
//! - **Joining a topic takes a round trip.** The first local subscriber of a topic makes the
//!   instance subscribe to its channel; messages other instances publish before Redis confirms
//!   it are not received here (`RedisBackplane::is_subscribed` tells when it has).
//! - **Start-up errors are clear.** A URL that is not Redis's, a server that does not answer,
//!   or a wrong password fail `attach` with a [`BackplaneError`] that says which, and names the
//!   URL without its password.

mod backplane;
mod forward;
mod hub;
#[cfg(feature = "redis")]
mod redis;

pub use backplane::BackplaneError;

pub use crate::prepared::PreparedMessage;
pub use hub::{
    Delivery, Forwarded, Hub, HubBuilder, HubStats, LAG_CLOSE_REASON, LagPolicy, QUEUED_MESSAGE_OVERHEAD,
    Subscriber,
};

#[cfg(feature = "redis")]
pub use redis::{DEFAULT_CHANNEL_PREFIX, RedisBackplane, RedisBackplaneBuilder};
