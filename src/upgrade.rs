//! [`WebSocketUpgrade`]: the extractor that accepts a WebSocket, like ASP.NET Core's
//! `AcceptWebSocketAsync(WebSocketAcceptContext)`.

use std::{borrow::Cow, fmt, future::Future, time::Duration};

use http::{
    Extensions, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
    header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL, UPGRADE},
};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use tracing::Instrument;

use crate::proto::frame::Role;
use crate::{
    config::{SendPolicy, SocketConfig},
    deflate::{self, Compression, NegotiatedCompression},
    error::{ConfigError, Error},
    handshake::{self, Handshake},
    lifecycle::{OpenSocket, peer_addr},
    rate_limit::RateLimit,
    rejection::WebSocketUpgradeRejection,
    response::{HandshakeBody, text_response},
    service::WebSocketContext,
    socket::WebSocket,
};

type OnFailedUpgrade = Box<dyn FnOnce(Error) + Send + 'static>;

/// The parts of a request head the extractor reads, borrowed from an `http::Request` or from
/// axum's `Parts` (whose extensions are borrowed mutably beside them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestHead<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) version: Version,
    pub(crate) headers: &'a HeaderMap,
}

/// Accepts a WebSocket handshake that [`WebSocketLayer`](crate::WebSocketLayer) let through.
///
/// Get one with [`from_request`](Self::from_request) in any tower or hyper service, or as an
/// axum extractor with the `axum` feature. Then choose a subprotocol, override options for this
/// socket if you like, and call [`on_upgrade`](Self::on_upgrade): it returns the `101 Switching
/// Protocols` response and runs your callback with the [`WebSocket`] once the connection is
/// handed over.
///
/// ```
/// use std::convert::Infallible;
/// use tower_websockets::{Message, WebSocket, WebSocketUpgrade, handshake::HandshakeBody};
///
/// async fn handle<B>(mut req: http::Request<B>) -> Result<http::Response<HandshakeBody>, Infallible> {
///     match WebSocketUpgrade::from_request(&mut req) {
///         Ok(ws) => Ok(ws.protocols(["chat.v2", "chat.v1"]).on_upgrade(echo)),
///         Err(rejection) => Ok(rejection.into_http_response()),
///     }
/// }
///
/// async fn echo(mut socket: WebSocket) {
///     while let Some(Ok(message)) = socket.recv().await {
///         if let Message::Text(_) = message {
///             if socket.send(message).await.is_err() {
///                 break;
///             }
///         }
///     }
/// }
/// ```
///
/// # Per-socket options
///
/// Every socket option of [`WebSocketLayerBuilder`](crate::WebSocketLayerBuilder) has a setter of
/// the same name here, from [`keep_alive_interval`](Self::keep_alive_interval) to
/// [`on_buffer_full`](Self::on_buffer_full). It overrides the layer's value for this socket only
/// (as ASP.NET Core's `WebSocketAcceptContext` does), and its documentation is the builder's.
/// [`try_on_upgrade`](Self::try_on_upgrade) checks the result as `build()` would.
///
/// ```
/// use std::time::Duration;
/// use tower_websockets::{ConfigError, WebSocketUpgrade, handshake::HandshakeBody};
///
/// fn accept(upgrade: WebSocketUpgrade) -> Result<http::Response<HandshakeBody>, ConfigError> {
///     upgrade
///         .keep_alive_interval(Duration::from_secs(15))
///         .keep_alive_timeout(Duration::from_secs(5))
///         .max_message_size(1 << 20)
///         .try_on_upgrade(|_socket| async {})
/// }
/// ```
#[must_use = "call `on_upgrade` and return its response"]
pub struct WebSocketUpgrade {
    config: SocketConfig,
    context: WebSocketContext,
    span: tracing::Span,
    /// `Sec-WebSocket-Accept` for an HTTP/1.1 handshake; `None` over HTTP/2.
    accept: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
    requested_protocols: Vec<HeaderValue>,
    selected_protocol: Option<HeaderValue>,
    /// The layer authenticates and the client offered the `bearer` marker: the protocol after
    /// it is a token, never a subprotocol, and the answer names the marker when the
    /// application chose none.
    bearer_offered: bool,
    /// The client's `Sec-WebSocket-Extensions` lines, for permessage-deflate.
    extension_offers: HeaderMap,
    on_failed_upgrade: Option<OnFailedUpgrade>,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("config", &self.config)
            // The offers without a bearer token: never printed.
            .field("requested_protocols", &self.requested_protocols().collect::<Vec<_>>())
            .field("selected_protocol", &self.selected_protocol)
            .finish_non_exhaustive()
    }
}

impl WebSocketUpgrade {
    /// Checks the handshake and takes what accepting it needs from the request (hyper's
    /// `OnUpgrade` among it).
    ///
    /// # Errors
    ///
    /// A [`WebSocketUpgradeRejection`] with the status to answer: 400 for a request that is not a
    /// WebSocket handshake or has a bad key, 405 for a method other than GET, 426 for a version
    /// other than 13 or a connection that cannot be upgraded, 500 when
    /// [`WebSocketLayer`](crate::WebSocketLayer) is missing from the stack.
    pub fn from_request<B>(request: &mut Request<B>) -> Result<Self, WebSocketUpgradeRejection> {
        // Borrow the headers while the extensions are changed: move the extensions out and back.
        let mut extensions = std::mem::take(request.extensions_mut());
        let head = RequestHead {
            method: request.method(),
            uri: request.uri(),
            version: request.version(),
            headers: request.headers(),
        };
        let result = Self::extract(head, &mut extensions);
        *request.extensions_mut() = extensions;
        result
    }

    /// Checks the handshake in `head`, and takes hyper's `OnUpgrade` and the layer's context out
    /// of `extensions`.
    pub(crate) fn extract(
        head: RequestHead<'_>,
        extensions: &mut Extensions,
    ) -> Result<Self, WebSocketUpgradeRejection> {
        let result = Self::check_and_take(head, extensions);
        if let Err(rejection) = &result {
            crate::metrics::handshake_refused(rejection.metric_name(), rejection.status());
        }
        result
    }

    fn check_and_take(
        head: RequestHead<'_>,
        extensions: &mut Extensions,
    ) -> Result<Self, WebSocketUpgradeRejection> {
        let RequestHead { method, uri, version, headers } = head;
        let handshake = handshake::check(method, version, headers, extensions)?;
        if extensions.get::<WebSocketContext>().is_none() {
            return Err(WebSocketUpgradeRejection::LayerMissing);
        }
        if version < Version::HTTP_11 {
            return Err(WebSocketUpgradeRejection::ConnectionNotUpgradable);
        }
        let on_upgrade =
            extensions.remove::<OnUpgrade>().ok_or(WebSocketUpgradeRejection::ConnectionNotUpgradable)?;
        let context =
            extensions.remove::<WebSocketContext>().ok_or(WebSocketUpgradeRejection::LayerMissing)?;
        let accept = match handshake {
            Handshake::Http1 { key } => Some(
                HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
                    .expect("base64 is a valid header value"),
            ),
            Handshake::Http2 => None,
        };
        let span = tracing::debug_span!(
            "websocket",
            path = %uri.path(),
            protocol = tracing::field::Empty,
            http = ?version,
            peer = tracing::field::debug(peer_addr(extensions)),
        );
        let bearer_offered = context.shared.config.authenticator.is_some()
            && crate::auth::offered_protocols(headers)
                .any(|protocol| protocol == crate::auth::BEARER_PROTOCOL);
        Ok(Self {
            config: context.shared.config.socket,
            bearer_offered,
            context,
            accept,
            on_upgrade,
            requested_protocols: headers.get_all(SEC_WEBSOCKET_PROTOCOL).iter().cloned().collect(),
            extension_offers: extension_offers(headers),
            selected_protocol: None,
            on_failed_upgrade: None,
            span,
        })
    }

    /// The subprotocols the client offered in `Sec-WebSocket-Protocol`, in its order.
    ///
    /// With a layer that [authenticates](crate::WebSocketLayerBuilder::authenticate), the
    /// [`bearer`](crate::auth::BEARER_PROTOCOL) marker and the token offered after it are left out:
    /// they are credentials, not subprotocols.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        let mut skip_next = false;
        let bearer = self.bearer_offered;
        self.requested_protocols
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|protocol| !protocol.is_empty())
            .filter(move |protocol| {
                if std::mem::take(&mut skip_next) {
                    return false;
                }
                if bearer && *protocol == crate::auth::BEARER_PROTOCOL {
                    skip_next = true;
                    return false;
                }
                true
            })
    }

    /// The identity the layer's [`authenticate`](crate::WebSocketLayerBuilder::authenticate)
    /// function returned for this handshake, if it is an `I` (the type the function returns).
    /// `None` when the layer does not authenticate.
    ///
    /// ```
    /// use tower_websockets::{WebSocketUpgrade, handshake::HandshakeBody};
    ///
    /// #[derive(Clone)]
    /// struct User(String);
    ///
    /// fn accept(upgrade: WebSocketUpgrade) -> http::Response<HandshakeBody> {
    ///     let name = upgrade.identity::<User>().map(|user| user.0.clone());
    ///     upgrade.on_upgrade(move |mut socket| async move {
    ///         let _ = socket.send(format!("hello {}", name.unwrap_or_default())).await;
    ///     })
    /// }
    /// ```
    pub fn identity<I: 'static>(&self) -> Option<&I> {
        self.context.identity.as_ref()?.get()
    }

    /// The subprotocols this server speaks, in its order of preference. The first one the client
    /// also offered is chosen and sent back in `Sec-WebSocket-Protocol`; when none matches, the
    /// header is left out and the client decides whether to go on. Names compare exactly, as the
    /// RFC's tokens do.
    ///
    /// ```
    /// # #[cfg(feature = "test-util")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::convert::Infallible;
    /// use tower::ServiceBuilder;
    /// use tower_websockets::{WebSocketLayer, WebSocketUpgrade, test::TestClient};
    ///
    /// let service = ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(
    ///     |mut req: http::Request<hyper::body::Incoming>| async move {
    ///         let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
    ///         // The server prefers chat.v2.
    ///         Ok::<_, Infallible>(upgrade.protocols(["chat.v2", "chat.v1"]).on_upgrade(|_socket| async {}))
    ///     },
    /// );
    /// let client = TestClient::new(service);
    /// let socket = client.connect("/ws").protocols(["chat.v1", "chat.v2"]).await?;
    /// assert_eq!(socket.protocol(), Some("chat.v2"));
    /// let socket = client.connect("/ws").protocols(["chat.v3"]).await?;
    /// assert_eq!(socket.protocol(), None);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "test-util"))]
    /// # fn main() {}
    /// ```
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        self.selected_protocol = protocols.into_iter().find_map(|protocol| {
            let protocol = protocol.into();
            if self.requested_protocols().any(|offered| offered == protocol) {
                HeaderValue::from_str(&protocol).ok()
            } else {
                None
            }
        });
        self
    }

    /// The subprotocol chosen by [`protocols`](Self::protocols), if any.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.selected_protocol.as_ref().and_then(|p| p.to_str().ok())
    }

    // The per-socket options: each forwards to the layer builder's option of the same name
    // (documented there, in `config.rs`) and overrides the layer's value for this socket only.
    // `try_on_upgrade` checks the result as `build()` does.

    /// Overrides the layer's [`keep_alive_interval`](crate::WebSocketLayerBuilder::keep_alive_interval) for
    /// this socket: how long the peer may stay silent before a Ping. `Duration::ZERO` turns keep-alive off,
    /// and with it any keep-alive timeout.
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.config.set_keep_alive_interval(interval);
        self
    }

    /// Overrides the layer's [`keep_alive_timeout`](crate::WebSocketLayerBuilder::keep_alive_timeout) for
    /// this socket: how long to wait for an answer to a keep-alive Ping; `None` turns the timeout off.
    pub fn keep_alive_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.keep_alive_timeout = timeout.into();
        self
    }

    /// Overrides the layer's [`receive_buffer_size`](crate::WebSocketLayerBuilder::receive_buffer_size) for
    /// this socket: how many bytes the socket asks for per read while data keeps coming.
    pub fn receive_buffer_size(mut self, bytes: usize) -> Self {
        self.config.receive_buffer_size = bytes;
        self
    }

    /// Overrides the layer's [`max_message_size`](crate::WebSocketLayerBuilder::max_message_size) for this
    /// socket: the largest incoming message, or `None` for no limit.
    pub fn max_message_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.config.max_message_size = bytes.into();
        self
    }

    /// Overrides the layer's [`max_frame_size`](crate::WebSocketLayerBuilder::max_frame_size) for this
    /// socket: the largest incoming frame payload, or `None` for no limit of its own.
    pub fn max_frame_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.config.max_frame_size = bytes.into();
        self
    }

    /// Overrides the layer's [`write_buffer_size`](crate::WebSocketLayerBuilder::write_buffer_size) for this
    /// socket: how many bytes of outgoing frames gather before a write.
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.config.write_buffer_size = bytes;
        self
    }

    /// Overrides the layer's [`max_write_buffer_size`](crate::WebSocketLayerBuilder::max_write_buffer_size)
    /// for this socket: the hard limit on buffered outgoing bytes.
    pub fn max_write_buffer_size(mut self, bytes: usize) -> Self {
        self.config.max_write_buffer_size = Some(bytes);
        self
    }

    /// Overrides the layer's [`compression`](crate::WebSocketLayerBuilder::compression) for this socket:
    /// permessage-deflate.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// Overrides the layer's [`rate_limit`](crate::WebSocketLayerBuilder::rate_limit) for this socket: the
    /// limits on what the peer sends.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = limit;
        self
    }

    /// Overrides the layer's [`max_buffered_amount`](crate::WebSocketLayerBuilder::max_buffered_amount) for
    /// this socket: the most bytes its [`WebSocketSender`](crate::WebSocketSender)s may have buffered.
    pub fn max_buffered_amount(mut self, bytes: usize) -> Self {
        self.config.max_buffered_amount = bytes;
        self
    }

    /// Overrides the layer's [`on_buffer_full`](crate::WebSocketLayerBuilder::on_buffer_full) for this
    /// socket: what its [`WebSocketSender`](crate::WebSocketSender)s do past the buffer limit.
    pub fn on_buffer_full(mut self, policy: SendPolicy) -> Self {
        self.config.on_buffer_full = policy;
        self
    }

    /// Called instead of the `on_upgrade` callback when hyper cannot hand over the connection
    /// after the 101 response (the client went away, or the server does not support upgrades).
    /// By default the failure is logged at debug level.
    ///
    /// ```
    /// use tower_websockets::{WebSocketUpgrade, handshake::HandshakeBody};
    ///
    /// fn accept(upgrade: WebSocketUpgrade) -> http::Response<HandshakeBody> {
    ///     upgrade
    ///         .on_failed_upgrade(|error| tracing::warn!(%error, "the client left before its socket opened"))
    ///         .on_upgrade(|_socket| async {})
    /// }
    /// ```
    pub fn on_failed_upgrade<F>(mut self, callback: F) -> Self
    where
        F: FnOnce(Error) + Send + 'static,
    {
        self.on_failed_upgrade = Some(Box::new(callback));
        self
    }

    /// Accepts the WebSocket: returns the response to send, and runs `callback` on a spawned task
    /// with the [`WebSocket`] once hyper hands the connection over.
    ///
    /// Over HTTP/1.1 the response is `101 Switching Protocols` with `Sec-WebSocket-Accept`; over
    /// HTTP/2 (RFC 8441) it is `200 OK`, and the socket runs on the request's stream. Either way
    /// it carries `Sec-WebSocket-Protocol` when a subprotocol was chosen.
    ///
    /// The callback starts only after that response has gone out, on a task of its own, so the
    /// client's connect may return before it runs. Whatever the client must find in place by
    /// then (a [`Hub`](crate::broadcast::Hub) subscription, say) is set up before this call, in
    /// the handler, and moved into the callback; see [the `broadcast` module](crate::broadcast).
    ///
    /// Per-accept options that do not fit together (see [`try_on_upgrade`](Self::try_on_upgrade))
    /// are not accepted: the response is then a `500 Internal Server Error`, and an error event
    /// is logged with the [`ConfigError`], which names the option as the layer's `build()` would.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_websockets::{WebSocketUpgrade, handshake::HandshakeBody};
    ///
    /// fn accept(upgrade: WebSocketUpgrade) -> http::Response<HandshakeBody> {
    ///     upgrade
    ///         .keep_alive_interval(Duration::from_secs(15))
    ///         .on_upgrade(|mut socket| async move {
    ///             let _ = socket.send("hello").await;
    ///         })
    /// }
    /// ```
    #[must_use = "the response must be sent for the WebSocket to open"]
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response<HandshakeBody>
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.try_on_upgrade(callback).unwrap_or_else(|error| {
            tracing::error!(%error, "refusing WebSocket: invalid per-accept options");
            text_response(StatusCode::INTERNAL_SERVER_ERROR, "invalid WebSocket options for this socket")
        })
    }

    /// [`on_upgrade`](Self::on_upgrade), but per-accept options that do not fit together are
    /// returned as a [`ConfigError`] instead of becoming a 500.
    ///
    /// # Errors
    ///
    /// The same [`ConfigError`] the layer's `build()` gives for the same options, naming the
    /// option at fault. Nothing is accepted then: the connection stays an HTTP request, and the
    /// callback is dropped unrun.
    ///
    /// ```
    /// use tower_websockets::{ConfigError, WebSocketUpgrade, handshake::HandshakeBody};
    ///
    /// fn accept(upgrade: WebSocketUpgrade, limit: usize) -> Result<http::Response<HandshakeBody>, ConfigError> {
    ///     upgrade.max_message_size(limit).try_on_upgrade(|_socket| async {})
    /// }
    /// ```
    #[must_use = "the response must be sent for the WebSocket to open"]
    pub fn try_on_upgrade<F, Fut>(self, callback: F) -> Result<Response<HandshakeBody>, ConfigError>
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.config.validate()?;
        let compression = deflate::negotiate(&self.extension_offers, &self.config.compression);
        let mut response = self.response();
        if let Some(negotiated) = &compression {
            response.headers_mut().insert(SEC_WEBSOCKET_EXTENSIONS, negotiated.header_value());
        }
        let Self { config, context, on_upgrade, selected_protocol, on_failed_upgrade, span, .. } = self;
        if let Some(protocol) = selected_protocol.as_ref().and_then(|p| p.to_str().ok()) {
            span.record("protocol", protocol);
        }
        let shared = context.shared.clone();
        // What opening the socket takes is boxed and consumed by the opening: the task then holds
        // only the callback's future for the socket's whole life (idle memory per socket).
        let opening = Box::new(Opening {
            config,
            slot: context.slot,
            identity: context.identity,
            on_upgrade,
            protocol: selected_protocol,
            compression,
            on_failed_upgrade,
        });
        let task = async move {
            // `let else`, not `if let`: the scrutinee would live beside the callback's future.
            let Some(socket) = Box::pin(opening.open()).await else { return };
            tracing::debug!("WebSocket opened");
            callback(socket).await;
        };
        // A span no subscriber wants is not entered on every poll (with tracing's `log` feature,
        // which axum's default features turn on, each enter and exit of even a disabled span
        // costs a check of the `log` level).
        if span.is_disabled() {
            shared.spawn(task);
        } else {
            shared.spawn(task.instrument(span));
        }
        Ok(response)
    }

    /// The answer to the handshake: 101 with the accept key over HTTP/1.1, 200 over HTTP/2, and
    /// the chosen subprotocol.
    fn response(&self) -> Response<HandshakeBody> {
        let mut response = Response::new(HandshakeBody::empty());
        let headers = response.headers_mut();
        if let Some(accept) = &self.accept {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept.clone());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        }
        if let Some(protocol) = &self.selected_protocol {
            response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, protocol.clone());
        } else if self.bearer_offered {
            // Browsers fail a handshake that offered protocols and got none back: name the
            // marker, never the token.
            response
                .headers_mut()
                .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(crate::auth::BEARER_PROTOCOL));
        }
        response
    }
}

/// What a socket's task needs until the connection is handed over and the socket opened.
struct Opening {
    config: SocketConfig,
    slot: std::sync::Arc<crate::lifecycle::Slot>,
    identity: Option<crate::auth::Identity>,
    on_upgrade: OnUpgrade,
    protocol: Option<HeaderValue>,
    compression: Option<NegotiatedCompression>,
    on_failed_upgrade: Option<OnFailedUpgrade>,
}

impl Opening {
    /// Waits for hyper to hand the connection over, and opens the socket on it; `None` (after
    /// telling `on_failed_upgrade`) when it is not handed over.
    async fn open(self: Box<Self>) -> Option<WebSocket> {
        let Self { config, slot, identity, on_upgrade, protocol, compression, on_failed_upgrade } = *self;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                let error = Error::UpgradeFailed(Box::new(e));
                match on_failed_upgrade {
                    Some(callback) => callback(error),
                    None => tracing::debug!(%error, "WebSocket upgrade failed"),
                }
                return None;
            }
        };
        let open = OpenSocket::new(slot, identity);
        Some(
            WebSocket::from_upgraded(upgraded, Role::Server, protocol, &config, compression, Some(open))
                .await,
        )
    }
}

/// The `Sec-WebSocket-Extensions` lines of a request; an empty map (no allocation) when there
/// are none.
fn extension_offers(headers: &HeaderMap) -> HeaderMap {
    let mut offers = HeaderMap::new();
    for offer in headers.get_all(SEC_WEBSOCKET_EXTENSIONS) {
        offers.append(SEC_WEBSOCKET_EXTENSIONS, offer.clone());
    }
    offers
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::header::{SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION};
    use hyper::ext::Protocol;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::WebSocketLayer;

    /// Runs `request` through the layer and a handler that accepts with `protocols`, and
    /// returns the handler's response.
    async fn accept(mut request: Request<()>, protocols: &'static [&'static str]) -> Response<HandshakeBody> {
        // hyper puts an `OnUpgrade` in every request it serves; this one never completes.
        let on_upgrade = hyper::upgrade::on(Request::new(()));
        request.extensions_mut().insert(on_upgrade);
        let handler = service_fn(move |mut req: Request<()>| async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a valid handshake");
            Ok::<_, Infallible>(upgrade.protocols(protocols.iter().copied()).on_upgrade(|_socket| async {}))
        });
        let response = WebSocketLayer::new().layer(handler).oneshot(request).await.unwrap();
        response.map(|_| HandshakeBody::empty())
    }

    #[tokio::test]
    async fn http1_is_answered_101_with_the_accept_key_and_the_chosen_protocol() {
        let request = Request::get("/ws")
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "Upgrade")
            .header(SEC_WEBSOCKET_VERSION, "13")
            .header(SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .header(SEC_WEBSOCKET_PROTOCOL, "a, b")
            .body(())
            .unwrap();
        let response = accept(request, &["b", "a"]).await;
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455 §1.3's own example.
        assert_eq!(response.headers()[SEC_WEBSOCKET_ACCEPT], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(response.headers()[UPGRADE], "websocket");
        assert_eq!(response.headers()[SEC_WEBSOCKET_PROTOCOL], "b");
    }

    #[tokio::test]
    async fn http2_is_answered_200_without_upgrade_headers() {
        let request = Request::connect("http://localhost/ws")
            .version(Version::HTTP_2)
            .extension(Protocol::from_static("websocket"))
            .header(SEC_WEBSOCKET_VERSION, "13")
            .body(())
            .unwrap();
        let response = accept(request, &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        for name in [UPGRADE, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL] {
            assert!(!response.headers().contains_key(&name), "{name}");
        }
    }

    #[tokio::test]
    async fn requested_protocols_are_read_across_lines_and_lists() {
        let request = |protocols: &'static [&'static str]| async move {
            let mut request = Request::get("/ws")
                .header(UPGRADE, "websocket")
                .header(CONNECTION, "Upgrade")
                .header(SEC_WEBSOCKET_VERSION, "13")
                .header(SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
                .body(())
                .unwrap();
            let headers = request.headers_mut();
            headers.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(" a ,b"));
            headers.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("c,,"));
            accept(request, protocols).await
        };
        assert_eq!(request(&["z", "c"]).await.headers()[SEC_WEBSOCKET_PROTOCOL], "c");
        assert_eq!(request(&["b", "a"]).await.headers()[SEC_WEBSOCKET_PROTOCOL], "b");
        // Names compare exactly: no match, no header.
        assert!(!request(&["A", " a"]).await.headers().contains_key(SEC_WEBSOCKET_PROTOCOL));
    }
}
