//! Options shared by the layer, the extractor and the socket.
//!
//! The builder ([`WebSocketLayerBuilder`](crate::WebSocketLayerBuilder)) collects options, checks
//! them once in `build()`, and freezes them behind an `Arc` that every request and every socket
//! then shares.

use std::time::Duration;

use crate::{deflate::Compression, error::ConfigError, origin::OriginPolicy};

/// Default keep-alive interval: two minutes, as in ASP.NET Core. See
/// [`keep_alive_interval`](crate::WebSocketLayerBuilder::keep_alive_interval).
pub(crate) const DEFAULT_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(120);
/// Default receive buffer size: 4 KiB, as in ASP.NET Core. See
/// [`receive_buffer_size`](crate::WebSocketLayerBuilder::receive_buffer_size).
pub(crate) const DEFAULT_RECEIVE_BUFFER_SIZE: usize = 4 * 1024;
/// Default largest incoming message: 64 MiB. See
/// [`max_message_size`](crate::WebSocketLayerBuilder::max_message_size).
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Default largest incoming frame payload: 16 MiB. See
/// [`max_frame_size`](crate::WebSocketLayerBuilder::max_frame_size).
pub(crate) const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;
/// Default write buffer size: 128 KiB. Outgoing frames gather up to this size before a write
/// to the connection (a flush always writes everything). See
/// [`write_buffer_size`](crate::WebSocketLayerBuilder::write_buffer_size).
pub(crate) const DEFAULT_WRITE_BUFFER_SIZE: usize = 128 * 1024;
/// Default [`max_buffered_amount`](crate::WebSocketLayerBuilder::max_buffered_amount): 1 MiB
/// queued by a socket's [`WebSocketSender`](crate::WebSocketSender)s and its write buffer.
pub(crate) const DEFAULT_MAX_BUFFERED_AMOUNT: usize = 1 << 20;
/// Largest WebSocket frame header, in bytes.
const MAX_FRAME_HEADER: usize = 14;

/// What a [`WebSocketSender`](crate::WebSocketSender) does with a message that would take the
/// socket's [buffered amount](crate::WebSocketSender::buffered_amount) past
/// [`max_buffered_amount`](crate::WebSocketLayerBuilder::max_buffered_amount).
///
/// One vocabulary with the hub's [`LagPolicy`](crate::broadcast::LagPolicy): `Drop…` names the
/// message that is dropped (the hub's `DropOldest`, the newest here), and `Close(code)` closes
/// the socket with that code (usually 1008 or 1013) in both. The hub has no `Wait` (a publish
/// never blocks on one slow subscriber) and the sender no `DropOldest` (a message whose `send`
/// returned `Ok` is never dropped silently; its sender may rely on it).
///
/// ```
/// use tower_websockets::{CloseCode, WebSocketLayer, sender::SendPolicy};
///
/// let layer = WebSocketLayer::builder()
///     .max_buffered_amount(256 * 1024)
///     .on_buffer_full(SendPolicy::Close(CloseCode::TRY_AGAIN_LATER))
///     .build()?;
/// # Ok::<(), tower_websockets::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SendPolicy {
    /// [`send`](crate::WebSocketSender::send) waits for room;
    /// [`try_send`](crate::WebSocketSender::try_send) fails with
    /// [`SendError::Full`](crate::sender::SendError::Full). The default.
    #[default]
    Wait,
    /// The new message is refused at once with [`SendError::Full`](crate::sender::SendError::Full)
    /// (the message inside); what is queued stays.
    DropNewest,
    /// The socket closes with this code (and the reason
    /// [`BUFFER_FULL_CLOSE_REASON`](crate::sender::BUFFER_FULL_CLOSE_REASON)): usually 1008
    /// ([`CloseCode::POLICY_VIOLATION`](crate::CloseCode::POLICY_VIOLATION)) or 1013
    /// ([`CloseCode::TRY_AGAIN_LATER`](crate::CloseCode::TRY_AGAIN_LATER)). The message is
    /// refused with [`SendError::Closed`](crate::sender::SendError::Closed), and so is every later one.
    Close(crate::CloseCode),
}

/// Everything a [`WebSocket`](crate::WebSocket) needs to run: keep-alive and limits.
///
/// Copied into each socket, so that per-accept overrides do not touch the shared options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketConfig {
    pub(crate) keep_alive_interval: Duration,
    pub(crate) keep_alive_timeout: Option<Duration>,
    pub(crate) receive_buffer_size: usize,
    pub(crate) write_buffer_size: usize,
    /// `None`: derived, room for the write buffer plus one largest message.
    pub(crate) max_write_buffer_size: Option<usize>,
    pub(crate) max_message_size: Option<usize>,
    pub(crate) max_frame_size: Option<usize>,
    pub(crate) compression: Compression,
    pub(crate) rate_limit: crate::rate_limit::RateLimit,
    pub(crate) max_buffered_amount: usize,
    pub(crate) on_buffer_full: SendPolicy,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            keep_alive_interval: DEFAULT_KEEP_ALIVE_INTERVAL,
            keep_alive_timeout: None,
            receive_buffer_size: DEFAULT_RECEIVE_BUFFER_SIZE,
            write_buffer_size: DEFAULT_WRITE_BUFFER_SIZE,
            max_write_buffer_size: None,
            max_message_size: Some(DEFAULT_MAX_MESSAGE_SIZE),
            max_frame_size: Some(DEFAULT_MAX_FRAME_SIZE),
            compression: Compression::disabled(),
            rate_limit: crate::rate_limit::RateLimit::new(),
            max_buffered_amount: DEFAULT_MAX_BUFFERED_AMOUNT,
            on_buffer_full: SendPolicy::Wait,
        }
    }
}

impl SocketConfig {
    /// The frame limit the decoder applies: with no frame limit of its own, a frame is still
    /// bounded by the message limit (the decoder reserves a frame's announced length before
    /// reading it, so an unbounded header, 2^40 bytes say, must not be believed).
    pub(crate) fn effective_max_frame_size(&self) -> Option<usize> {
        self.max_frame_size.or(self.max_message_size)
    }

    /// The write buffer's hard limit: the configured one, or room for the write buffer plus one
    /// message of the largest size the socket accepts.
    pub(crate) fn effective_max_write_buffer_size(&self) -> usize {
        self.max_write_buffer_size.unwrap_or_else(|| {
            self.max_message_size.map_or(usize::MAX, |max| {
                self.write_buffer_size.saturating_add(max).saturating_add(MAX_FRAME_HEADER)
            })
        })
    }

    /// Sets the keep-alive interval; a zero interval turns keep-alive off, and with it any
    /// keep-alive timeout.
    pub(crate) fn set_keep_alive_interval(&mut self, interval: Duration) {
        self.keep_alive_interval = interval;
        if interval.is_zero() {
            self.keep_alive_timeout = None;
        }
    }

    /// Checks every combination that makes no sense (or that the socket could not honour).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(timeout) = self.keep_alive_timeout {
            if self.keep_alive_interval.is_zero() {
                return Err(ConfigError::new(
                    "keep_alive_timeout",
                    "a keep-alive timeout needs keep-alive pings: set keep_alive_interval above zero",
                ));
            }
            if timeout.is_zero() {
                return Err(ConfigError::new(
                    "keep_alive_timeout",
                    "must be above zero (leave it unset to turn the timeout off)",
                ));
            }
        }
        if self.receive_buffer_size == 0 {
            return Err(ConfigError::new("receive_buffer_size", "must be at least 1 byte"));
        }
        if self.max_message_size == Some(0) {
            return Err(ConfigError::new("max_message_size", "must be at least 1 byte"));
        }
        if self.max_frame_size == Some(0) {
            return Err(ConfigError::new("max_frame_size", "must be at least 1 byte"));
        }
        if self.effective_max_write_buffer_size() <= self.write_buffer_size {
            return Err(ConfigError::new("max_write_buffer_size", "must be greater than write_buffer_size"));
        }
        if self.max_buffered_amount == 0 {
            return Err(ConfigError::new("max_buffered_amount", "must be at least 1 byte"));
        }
        if let SendPolicy::Close(code) = self.on_buffer_full {
            if !code.is_sendable() {
                return Err(ConfigError::new("on_buffer_full", "the close code may not be sent"));
            }
        }
        self.rate_limit.validate()?;
        self.compression.validate()
    }
}

/// The options a [`WebSocketLayer`](crate::WebSocketLayer) was built with, shared by every
/// request and socket behind one `Arc`.
#[derive(Debug, Default)]
pub(crate) struct Config {
    pub(crate) socket: SocketConfig,
    pub(crate) origins: OriginPolicy,
    /// The most sockets open at once; `None` for no limit.
    pub(crate) max_connections: Option<usize>,
    /// The authentication function for upgrade requests, if any.
    pub(crate) authenticator: Option<crate::auth::Authenticator>,
    /// The query parameter that carries a token, removed before the inner service sees the URI.
    pub(crate) token_query_param: Option<std::borrow::Cow<'static, str>>,
    /// The most sockets open at once per client; `None` for no limit.
    pub(crate) max_connections_per_client: Option<usize>,
    /// The application's client key; `None`: the peer's IP address.
    pub(crate) client_key: Option<ClientKeyFn>,
}

type KeyFunction = dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync;

/// The application's function from a request head to a client key.
#[derive(Clone)]
pub(crate) struct ClientKeyFn(pub(crate) std::sync::Arc<KeyFunction>);

impl std::fmt::Debug for ClientKeyFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKeyFn(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounded() {
        let config = SocketConfig::default();
        config.validate().unwrap();
        let max = config.effective_max_write_buffer_size();
        assert_eq!(max, DEFAULT_WRITE_BUFFER_SIZE + DEFAULT_MAX_MESSAGE_SIZE + MAX_FRAME_HEADER);
    }

    #[test]
    fn without_a_frame_limit_frames_are_held_to_the_message_limit() {
        let config =
            SocketConfig { max_frame_size: None, max_message_size: Some(1 << 20), ..SocketConfig::default() };
        assert_eq!(config.effective_max_frame_size(), Some(1 << 20));
        let unlimited =
            SocketConfig { max_frame_size: None, max_message_size: None, ..SocketConfig::default() };
        assert_eq!(unlimited.effective_max_frame_size(), None);
        assert_eq!(SocketConfig::default().effective_max_frame_size(), Some(DEFAULT_MAX_FRAME_SIZE));
    }

    #[test]
    fn unlimited_messages_leave_the_write_buffer_unlimited() {
        let config = SocketConfig { max_message_size: None, ..SocketConfig::default() };
        assert_eq!(config.effective_max_write_buffer_size(), usize::MAX);
    }

    #[test]
    fn write_buffer_limit_below_write_buffer_is_refused() {
        let config = SocketConfig {
            write_buffer_size: 1024,
            max_write_buffer_size: Some(1024),
            ..SocketConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().option(), "max_write_buffer_size");
    }
}
