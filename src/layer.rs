//! [`WebSocketLayer`] and its builder: `app.UseWebSockets(options)`, as a tower `Layer`.

use std::{sync::Arc, time::Duration};

use tower_layer::Layer;

use crate::{
    auth::{AuthRejection, Authenticator},
    config::{ClientKeyFn, Config, SendPolicy, SocketConfig},
    deflate::Compression,
    error::ConfigError,
    lifecycle::{Shared, ShutdownHandle, Tracker, WebSocketStats},
    origin::{AllowedOrigins, ForwardedHeader},
    rate_limit::RateLimit,
    service::WebSocketService,
};

/// The WebSocket middleware: classifies every request, applies the origin policy to WebSocket
/// handshakes, and hands the options to [`WebSocketUpgrade`](crate::WebSocketUpgrade) further
/// down the stack.
///
/// Requests that are not WebSocket handshakes pass to the inner service untouched, at the cost
/// of one header look-up. A handshake from an origin that is not allowed gets `403 Forbidden`
/// and never reaches the inner service.
///
/// It also tracks the sockets it lets in: [`stats`](Self::stats) counts them,
/// [`max_connections`](WebSocketLayerBuilder::max_connections) limits them, and
/// [`shutdown_handle`](Self::shutdown_handle) closes them all with 1001 when the server stops.
///
/// Cloning is cheap: the options sit behind an `Arc`. Clones share the options, the counters and
/// the shutdown.
///
/// ```
/// use std::{convert::Infallible, time::Duration};
/// use http_body_util::Full;
/// use tower::ServiceBuilder;
/// use tower_websockets::WebSocketLayer;
///
/// let layer = WebSocketLayer::builder()
///     .keep_alive_interval(Duration::from_secs(30))
///     .keep_alive_timeout(Duration::from_secs(10))
///     .allowed_origins(["https://example.com"])
///     .build()
///     .expect("valid options");
///
/// let service = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<()>| async {
///     Ok::<_, Infallible>(http::Response::new(Full::<bytes::Bytes>::default()))
/// });
/// # drop(service);
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct WebSocketLayer {
    shared: Arc<Shared>,
}

impl Default for WebSocketLayer {
    fn default() -> Self {
        Self::from_config(Config::default())
    }
}

impl WebSocketLayer {
    /// A layer with the default options: keep-alive pings every 2 minutes, no keep-alive
    /// timeout, a 4 KiB receive buffer, same-origin pages only (and clients that send no
    /// `Origin`), 64 MiB messages and 16 MiB frames, no
    /// connection limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder for a layer with other options.
    pub fn builder() -> WebSocketLayerBuilder {
        WebSocketLayerBuilder::default()
    }

    fn from_config(config: Config) -> Self {
        Self { shared: Arc::new(Shared { config, tracker: Tracker::default() }) }
    }

    /// A handle that shuts this layer's sockets down gracefully (see [`ShutdownHandle`]).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(self.shared.clone())
    }

    /// The counters: sockets open now, accepted in total, refused by origin, refused by the
    /// limit, and dropped by the keep-alive timeout.
    pub fn stats(&self) -> WebSocketStats {
        self.shutdown_handle().stats()
    }
}

/// Wraps `inner` in a [`WebSocketService`] that shares this layer's options, counters and
/// shutdown.
impl<S> Layer<S> for WebSocketLayer {
    type Service = WebSocketService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebSocketService::new(inner, self.shared.clone())
    }
}

/// Options for a [`WebSocketLayer`], in the spirit of ASP.NET Core's `WebSocketOptions`.
///
/// Every method takes and returns the builder; [`build`](Self::build) checks the options once
/// and refuses combinations that cannot work, naming the option at fault.
///
/// | ASP.NET Core | here | default |
/// |---|---|---|
/// | `KeepAliveInterval` | [`keep_alive_interval`](Self::keep_alive_interval) | 120 s |
/// | `KeepAliveTimeout` | [`keep_alive_timeout`](Self::keep_alive_timeout) | off |
/// | `ReceiveBufferSize` | [`receive_buffer_size`](Self::receive_buffer_size) | 4 KiB |
/// | `AllowedOrigins` | [`allowed_origins`](Self::allowed_origins) | same origin |
/// | `ForwardedHeadersOptions` | [`forwarded_host`](Self::forwarded_host) | none trusted |
/// | | [`max_message_size`](Self::max_message_size) | 64 MiB |
/// | | [`max_frame_size`](Self::max_frame_size) | 16 MiB |
/// | | [`write_buffer_size`](Self::write_buffer_size) | 128 KiB |
/// | | [`max_write_buffer_size`](Self::max_write_buffer_size) | write buffer + one largest message |
/// | Kestrel `MaxConcurrentUpgradedConnections` | [`max_connections`](Self::max_connections) | no limit |
/// | | [`max_connections_per_client`](Self::max_connections_per_client), [`client_key`](Self::client_key) | no limit; the peer's IP |
/// | | [`rate_limit`](Self::rate_limit) | no limit |
/// | | [`authenticate`](Self::authenticate), [`token_query_param`](Self::token_query_param) | none |
///
/// ```
/// use std::time::Duration;
/// use tower_websockets::WebSocketLayer;
///
/// let layer = WebSocketLayer::builder()
///     .keep_alive_interval(Duration::from_secs(30))
///     .keep_alive_timeout(Duration::from_secs(10))
///     .max_message_size(1 << 20)
///     .max_connections(10_000)
///     .build()?;
/// assert_eq!(layer.stats().open, 0);
///
/// // Options that cannot work together are refused, naming the option at fault.
/// let err = WebSocketLayer::builder().write_buffer_size(4096).max_write_buffer_size(1024).build();
/// assert_eq!(err.unwrap_err().option(), "max_write_buffer_size");
/// # Ok::<(), tower_websockets::ConfigError>(())
/// ```
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct WebSocketLayerBuilder {
    socket: SocketConfig,
    origins: AllowedOrigins,
    forwarded_host: Option<ForwardedHeader>,
    max_connections: Option<usize>,
    authenticator: Option<Authenticator>,
    token_query_param: Option<std::borrow::Cow<'static, str>>,
    max_connections_per_client: Option<usize>,
    client_key: Option<ClientKeyFn>,
}

/// The socket options: each applies to every socket of the layer, and has its default in its
/// docs. [`build`](Self::build) checks them with `SocketConfig::validate`.
///
/// [`WebSocketUpgrade`](crate::WebSocketUpgrade) has a setter of the same name for each, which
/// overrides the layer's value for one socket and links here; `try_on_upgrade`/`on_upgrade`
/// checks the result with the same `validate`.
impl WebSocketLayerBuilder {
    /// How long the peer may stay silent before the socket sends it a Ping. Default 2
    /// minutes, as in ASP.NET Core; `Duration::ZERO` turns keep-alive off, and with it any
    /// keep-alive timeout set before.
    ///
    /// Pings keep proxies from closing idle connections. Add a
    /// [`keep_alive_timeout`](Self::keep_alive_timeout) to also drop peers that stop
    /// answering.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_websockets::WebSocketLayer;
    ///
    /// let layer = WebSocketLayer::builder().keep_alive_interval(Duration::from_secs(30)).build()?;
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.socket.set_keep_alive_interval(interval);
        self
    }

    /// How long to wait for an answer to a keep-alive Ping before the peer is dropped;
    /// `None` turns the timeout off. Off by default (as in ASP.NET Core).
    ///
    /// When the peer sends nothing, no Pong nor anything else, within `timeout` of a
    /// keep-alive Ping, the connection is closed and the handler's next `recv` yields
    /// [`Error::KeepAliveTimeout`](crate::Error::KeepAliveTimeout). Needs keep-alive on:
    /// a timeout with a zero [`keep_alive_interval`](Self::keep_alive_interval), or a zero
    /// timeout, is refused with a [`ConfigError`](crate::ConfigError).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_websockets::WebSocketLayer;
    ///
    /// let layer = WebSocketLayer::builder()
    ///     .keep_alive_interval(Duration::from_secs(30))
    ///     .keep_alive_timeout(Duration::from_secs(10))
    ///     .build()?;
    ///
    /// let refused = WebSocketLayer::builder()
    ///     .keep_alive_interval(Duration::ZERO)
    ///     .keep_alive_timeout(Duration::from_secs(10))
    ///     .build();
    /// assert_eq!(refused.unwrap_err().option(), "keep_alive_timeout");
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn keep_alive_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.socket.keep_alive_timeout = timeout.into();
        self
    }

    /// How many bytes the socket asks the connection for per read while data keeps coming.
    /// Default 4 KiB, as in ASP.NET Core. Must be at least 1 byte.
    ///
    /// The buffer is only held while data arrives: a socket reads small (1 KiB, or this
    /// size if smaller) after a quiet spell, grows to this size while reads fill the buffer,
    /// and lets the buffer go when the connection has nothing more, so an idle socket holds
    /// none of it. Whatever this size, a read asks for enough for a message as large as the
    /// peer's last one (up to 64 KiB), so that messages of a steady size come in one read.
    /// The payload of a larger data frame (uncompressed) is read straight into a buffer of the
    /// frame's size once a read's worth of it is still to come, whatever this option says; so
    /// raising it only helps bursts of small messages. It does not limit
    /// message size: the two `max_*` options do that.
    ///
    /// Sockets with permessage-deflate read the same way, compressed payloads through this
    /// buffer.
    pub fn receive_buffer_size(mut self, bytes: usize) -> Self {
        self.socket.receive_buffer_size = bytes;
        self
    }

    /// The largest incoming message, in bytes, or `None` for no limit. Default 64 MiB. A
    /// larger message closes the socket with 1009 (message too big). Must be at least 1.
    ///
    /// ```
    /// use tower_websockets::WebSocketLayer;
    ///
    /// let layer = WebSocketLayer::builder().max_message_size(1 << 20).build()?;
    /// let unlimited = WebSocketLayer::builder().max_message_size(None).build()?;
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn max_message_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.socket.max_message_size = bytes.into();
        self
    }

    /// The largest incoming frame payload, in bytes, or `None` for no limit of its own (a
    /// frame is then held to [`max_message_size`](Self::max_message_size)). Default 16 MiB.
    /// A larger frame closes the socket with 1009 (message too big). Must be at least 1.
    pub fn max_frame_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.socket.max_frame_size = bytes.into();
        self
    }

    /// How many bytes of outgoing frames gather before they are written to the connection.
    /// Default 128 KiB; `0` writes every message at once. A flush (which
    /// [`WebSocket::send`](crate::WebSocket::send) does) always writes everything.
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.socket.write_buffer_size = bytes;
        self
    }

    /// The hard limit on buffered outgoing bytes: past it, sending fails with
    /// [`Error::WriteBufferFull`](crate::Error::WriteBufferFull) instead of growing memory
    /// for a peer that does not read. Must be greater than
    /// [`write_buffer_size`](Self::write_buffer_size). Default: the write buffer plus one
    /// message of [`max_message_size`](Self::max_message_size).
    ///
    /// ```
    /// use tower_websockets::WebSocketLayer;
    ///
    /// let refused = WebSocketLayer::builder().write_buffer_size(4096).max_write_buffer_size(1024).build();
    /// assert_eq!(refused.unwrap_err().option(), "max_write_buffer_size");
    /// ```
    pub fn max_write_buffer_size(mut self, bytes: usize) -> Self {
        self.socket.max_write_buffer_size = Some(bytes);
        self
    }

    /// permessage-deflate (RFC 7692): off by default, as in ASP.NET Core. With a
    /// [`Compression`] that is enabled, a client's offer is negotiated
    /// and messages are compressed both ways; see `docs/guide.md` for the costs and
    /// `docs/security.md` before compressing secrets.
    ///
    /// ```
    /// use tower_websockets::{Compression, WebSocketLayer};
    ///
    /// let layer = WebSocketLayer::builder()
    ///     .compression(Compression::enabled().server_no_context_takeover(true))
    ///     .build()?;
    ///
    /// let refused = WebSocketLayer::builder().compression(Compression::enabled().server_max_window_bits(8)).build();
    /// assert_eq!(refused.unwrap_err().option(), "compression");
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn compression(mut self, compression: Compression) -> Self {
        self.socket.compression = compression;
        self
    }

    /// Rate limits on what the peer sends: messages and bytes a second, each with a burst,
    /// and what to do past them (throttle, the default, or close with 1008). No limit by
    /// default. See [`RateLimit`].
    ///
    /// ```
    /// use tower_websockets::{WebSocketLayer, rate_limit::RateLimit};
    ///
    /// let layer = WebSocketLayer::builder().rate_limit(RateLimit::new().messages(50, 100)).build()?;
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.socket.rate_limit = limit;
        self
    }

    /// The most bytes a socket's [`WebSocketSender`](crate::WebSocketSender)s may have
    /// buffered (their queue plus the write buffer not yet handed to the OS; see
    /// [`buffered_amount`](crate::WebSocketSender::buffered_amount)) before
    /// [`on_buffer_full`](Self::on_buffer_full)'s policy applies. Default 1 MiB; at least 1.
    ///
    /// ```
    /// use tower_websockets::WebSocketLayer;
    ///
    /// let layer = WebSocketLayer::builder().max_buffered_amount(64 * 1024).build()?;
    ///
    /// let refused = WebSocketLayer::builder().max_buffered_amount(0).build();
    /// assert_eq!(refused.unwrap_err().option(), "max_buffered_amount");
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn max_buffered_amount(mut self, bytes: usize) -> Self {
        self.socket.max_buffered_amount = bytes;
        self
    }

    /// What a [`WebSocketSender`](crate::WebSocketSender) does past
    /// [`max_buffered_amount`](Self::max_buffered_amount): wait (the default), drop the new
    /// message with an error, or close the socket. See [`SendPolicy`].
    ///
    /// ```
    /// use tower_websockets::{CloseCode, WebSocketLayer, sender::SendPolicy};
    ///
    /// let layer = WebSocketLayer::builder().on_buffer_full(SendPolicy::DropNewest).build()?;
    ///
    /// let refused = WebSocketLayer::builder().on_buffer_full(SendPolicy::Close(CloseCode(1005))).build();
    /// assert_eq!(refused.unwrap_err().option(), "on_buffer_full");
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn on_buffer_full(mut self, policy: SendPolicy) -> Self {
        self.socket.on_buffer_full = policy;
        self
    }
}

/// The layer's own options: origins, connection limits, authentication.
impl WebSocketLayerBuilder {
    /// Which origins may open a WebSocket: a list of `scheme://host[:port]` strings, or an
    /// [`AllowedOrigins`]. Default: [`AllowedOrigins::same_origin`], pages of the host the
    /// request was sent to; `.allowed_origins(AllowedOrigins::any())` lets every page in. See
    /// [`AllowedOrigins`] for the rules.
    ///
    /// ```
    /// use tower_websockets::{AllowedOrigins, WebSocketLayer};
    ///
    /// let layer = WebSocketLayer::builder().allowed_origins(["https://app.example.com"]).build()?;
    /// let anyone = WebSocketLayer::builder().allowed_origins(AllowedOrigins::any()).build()?;
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn allowed_origins(mut self, origins: impl Into<AllowedOrigins>) -> Self {
        self.origins = origins.into();
        self
    }

    /// Behind a proxy that rewrites `Host`: the header in which the proxy passes the public host
    /// the browser connected to, for the same-origin check (the default origin policy). When the
    /// header is missing from a request, the request's own authority is used. Default: none,
    /// because a client that reaches the server directly can send any such header; set it only
    /// when every request comes through a proxy that sets (or strips) it.
    ///
    /// ```
    /// use tower_websockets::{WebSocketLayer, origin::ForwardedHeader};
    ///
    /// let layer = WebSocketLayer::builder().forwarded_host(ForwardedHeader::Forwarded).build()?;
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn forwarded_host(mut self, header: ForwardedHeader) -> Self {
        self.forwarded_host = Some(header);
        self
    }

    /// The most WebSockets open at once, like Kestrel's `MaxConcurrentUpgradedConnections`. While
    /// `n` are open, the next WebSocket request gets `503 Service Unavailable` with `Retry-After`,
    /// and the inner service is not called. A slot is taken when the layer lets a request through
    /// and freed when its socket ends, however it ends (or when the request does not become a
    /// socket). Default: no limit.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// Authenticates every WebSocket upgrade request before it reaches your service: `function`
    /// gets the request head and returns a future of the identity (any `Clone + Send + Sync`
    /// type of yours) or an [`AuthRejection`] (401 or 403, with a short reason).
    ///
    /// - It runs for upgrade requests only, after the origin policy and before the connection
    ///   limit's slot is taken and before your service is called. Ordinary requests never reach
    ///   it and cost nothing more.
    /// - A refusal is answered by the layer (`401` or `403`, the reason as the body), logged at
    ///   debug level without the token, and counted in [`WebSocketStats::refused_by_auth`].
    /// - The identity goes into the request's extensions (axum's `Extension<I>` reads it), and
    ///   is readable from [`WebSocketUpgrade::identity`](crate::WebSocketUpgrade::identity) and
    ///   [`WebSocket::identity`](crate::WebSocket::identity).
    /// - With it, an offer of `["bearer", token]` in `Sec-WebSocket-Protocol` is read as a token,
    ///   never as a subprotocol: the answer names `bearer` when your handler chooses no other.
    ///
    /// Read the token from the head in the function itself (it borrows `&Parts`), with the
    /// [`Token`](crate::auth::Token) helpers, and check it in the future it returns. Browsers cannot
    /// set `Authorization` on a WebSocket; a non-browser client can, and the head has it.
    ///
    /// ```
    /// use tower_websockets::{WebSocketLayer, auth::{AuthRejection, Token}};
    ///
    /// #[derive(Clone, Debug)]
    /// struct User {
    ///     name: String,
    /// }
    ///
    /// async fn check(token: &str) -> Option<User> {
    ///     (token == "s3cr3t").then(|| User { name: "ada".into() })
    /// }
    ///
    /// let layer = WebSocketLayer::builder()
    ///     .authenticate(|parts: &http::request::Parts| {
    ///         let token = Token::from_protocol(parts)
    ///             .or_else(|| Token::from_query(parts, "access_token"))
    ///             .or_else(|| Token::from_cookie(parts, "session"))
    ///             .map(str::to_owned);
    ///         async move {
    ///             let token = token.ok_or_else(|| AuthRejection::unauthorized("no token"))?;
    ///             check(&token).await.ok_or_else(|| AuthRejection::unauthorized("bad token"))
    ///         }
    ///     })
    ///     .token_query_param("access_token")
    ///     .build()?;
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn authenticate<F, Fut, I>(mut self, function: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<I, AuthRejection>> + Send + 'static,
        I: Clone + Send + Sync + 'static,
    {
        self.authenticator = Some(Authenticator::new(function));
        self
    }

    /// The query parameter that carries a token (`?access_token=...`): the layer removes it from
    /// the URI of every upgrade request it lets through, so that neither your service nor its
    /// logs see it (the socket's span records the path only). Authentication runs before, on
    /// the whole URI. Default: none.
    ///
    /// ```
    /// use tower_websockets::WebSocketLayer;
    ///
    /// let layer = WebSocketLayer::builder().token_query_param("access_token").build()?;
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn token_query_param(mut self, name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.token_query_param = Some(name.into());
        self
    }

    /// The most WebSockets one client may have open at once. Past it, the client's next
    /// WebSocket request gets `429 Too Many Requests` with `Retry-After`, and the inner service
    /// is not called. Default: no limit.
    ///
    /// A client is its IP address by default (an IPv6 address by its /64), read from the
    /// request's extensions, where the server must put it: hyper does not. axum's
    /// `into_make_service_with_connect_info::<SocketAddr>()` does (`ConnectInfo<SocketAddr>`,
    /// with the `axum` feature); with hyper, insert the `std::net::SocketAddr` that
    /// `TcpListener::accept` returned (`req.extensions_mut().insert(peer)`). Behind a proxy, every
    /// client has the proxy's address: give a [`client_key`](Self::client_key) that reads the
    /// header your proxy sets. A request with no key is let in, uncounted (and a warning is
    /// logged once): counting them all under one key would let one misconfiguration refuse
    /// everyone.
    ///
    /// The count is taken with the connection slot (after the origin policy and authentication)
    /// and released when the socket ends. A client's entry is forgotten with its last socket, so
    /// the layer holds one entry per client with an open socket, and no more.
    ///
    /// ```
    /// use tower_websockets::WebSocketLayer;
    ///
    /// let layer = WebSocketLayer::builder().max_connections_per_client(5).build()?;
    /// assert_eq!(layer.stats().tracked_clients, 0);
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn max_connections_per_client(mut self, n: usize) -> Self {
        self.max_connections_per_client = Some(n);
        self
    }

    /// Who a client is, for [`max_connections_per_client`](Self::max_connections_per_client):
    /// a key from the request head (an account from the authentication's identity in the
    /// extensions, a header your proxy sets), or `None` to let the request in uncounted.
    /// Default: the peer's IP address.
    ///
    /// ```
    /// use tower_websockets::WebSocketLayer;
    ///
    /// // Behind a proxy that sets X-Real-IP (and strips it from what clients send).
    /// let layer = WebSocketLayer::builder()
    ///     .max_connections_per_client(5)
    ///     .client_key(|parts| parts.headers.get("x-real-ip")?.to_str().ok().map(str::to_owned))
    ///     .build()?;
    /// # Ok::<(), tower_websockets::ConfigError>(())
    /// ```
    pub fn client_key<F>(mut self, key: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.client_key = Some(ClientKeyFn(std::sync::Arc::new(key)));
        self
    }

    /// Checks the options and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the option at fault when options do not fit together: a
    /// keep-alive timeout with keep-alive off, a zero buffer or limit, a
    /// `max_write_buffer_size` not above `write_buffer_size`, or an allowed origin that is not of
    /// the form `scheme://host[:port]`.
    pub fn build(self) -> Result<WebSocketLayer, ConfigError> {
        self.socket.validate()?;
        if self.max_connections_per_client == Some(0) {
            return Err(ConfigError::new("max_connections_per_client", "must be at least 1"));
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::new("max_connections", "must be at least 1"));
        }
        let origins = self.origins.into_policy(self.forwarded_host)?;
        if self
            .token_query_param
            .as_deref()
            .is_some_and(|name| name.is_empty() || name.contains(['&', '=', '#']))
        {
            return Err(ConfigError::new(
                "token_query_param",
                "must be a query parameter name, without & = or #",
            ));
        }
        Ok(WebSocketLayer::from_config(Config {
            socket: self.socket,
            origins,
            max_connections: self.max_connections,
            authenticator: self.authenticator,
            token_query_param: self.token_query_param,
            max_connections_per_client: self.max_connections_per_client,
            client_key: self.client_key,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn build_refuses_invalid_options_naming_them() {
        let cases = [
            (
                WebSocketLayer::builder()
                    .keep_alive_interval(Duration::ZERO)
                    .keep_alive_timeout(Duration::from_secs(1)),
                "keep_alive_timeout",
            ),
            (WebSocketLayer::builder().keep_alive_timeout(Duration::ZERO), "keep_alive_timeout"),
            (WebSocketLayer::builder().receive_buffer_size(0), "receive_buffer_size"),
            (WebSocketLayer::builder().max_message_size(0), "max_message_size"),
            (WebSocketLayer::builder().max_frame_size(0), "max_frame_size"),
            (
                WebSocketLayer::builder().write_buffer_size(100).max_write_buffer_size(100),
                "max_write_buffer_size",
            ),
            (WebSocketLayer::builder().allowed_origins(["example.com"]), "allowed_origins"),
            (WebSocketLayer::builder().max_connections(0), "max_connections"),
            (WebSocketLayer::builder().max_connections_per_client(0), "max_connections_per_client"),
            (WebSocketLayer::builder().token_query_param(""), "token_query_param"),
            (WebSocketLayer::builder().token_query_param("a&b"), "token_query_param"),
        ];
        for (builder, option) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.option(), option);
            assert!(err.to_string().contains(option), "{err}");
        }
    }

    #[test]
    fn build_keeps_the_options() {
        let layer = WebSocketLayer::builder()
            .keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(2))
            .receive_buffer_size(1024)
            .max_message_size(None)
            .build()
            .unwrap();
        let socket = layer.shared.config.socket;
        assert_eq!(socket.keep_alive_interval, Duration::from_secs(5));
        assert_eq!(socket.keep_alive_timeout, Some(Duration::from_secs(2)));
        assert_eq!(socket.receive_buffer_size, 1024);
        assert_eq!(socket.max_message_size, None);
    }
}
