//! [`WebSocketUpgrade`]: the extractor that accepts a WebSocket, like ASP.NET Core's
//! `AcceptWebSocketAsync(WebSocketAcceptContext)`.

use std::{borrow::Cow, fmt, future::Future, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{
    Extensions, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
    header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL, UPGRADE},
};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role};

use tracing::Instrument;

use crate::{
    config::SocketConfig,
    error::Error,
    handshake::{self, Handshake},
    lifecycle::OpenSocket,
    rejection::{WebSocketUpgradeRejection, text_response},
    service::WebSocketContext,
    socket::WebSocket,
};

type OnFailedUpgrade = Box<dyn FnOnce(Error) + Send + 'static>;

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
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower_websockets::{Message, WebSocket, WebSocketUpgrade};
///
/// async fn handle<B>(mut req: http::Request<B>) -> Result<http::Response<Full<Bytes>>, Infallible> {
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
    on_failed_upgrade: Option<OnFailedUpgrade>,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("config", &self.config)
            .field("requested_protocols", &self.requested_protocols)
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
        let result = Self::extract(
            request.method(),
            request.uri(),
            request.version(),
            request.headers(),
            &mut extensions,
        );
        *request.extensions_mut() = extensions;
        result
    }

    pub(crate) fn extract(
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Self, WebSocketUpgradeRejection> {
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
        Ok(Self {
            config: context.shared.config.socket,
            context,
            accept,
            on_upgrade,
            requested_protocols: headers.get_all(SEC_WEBSOCKET_PROTOCOL).iter().cloned().collect(),
            selected_protocol: None,
            on_failed_upgrade: None,
            span,
        })
    }

    /// The subprotocols the client offered in `Sec-WebSocket-Protocol`, in its order.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.requested_protocols
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|protocol| !protocol.is_empty())
    }

    /// The subprotocols this server speaks, in its order of preference. The first one the client
    /// also offered is chosen and sent back in `Sec-WebSocket-Protocol`; when none matches, the
    /// header is left out and the client decides whether to go on. Names compare exactly, as the
    /// RFC's tokens do.
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

    /// Overrides the layer's keep-alive interval for this socket; `Duration::ZERO` turns
    /// keep-alive off, keep-alive timeout included.
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.config.keep_alive_interval = interval;
        if interval.is_zero() {
            self.config.keep_alive_timeout = None;
        }
        self
    }

    /// Overrides the layer's keep-alive timeout for this socket; `None` turns it off.
    pub fn keep_alive_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.keep_alive_timeout = timeout.into();
        self
    }

    /// Overrides the layer's receive buffer size for this socket: raise it (e.g. to 64 KiB) for
    /// an endpoint that receives large messages, which are then read in fewer calls.
    pub fn receive_buffer_size(mut self, bytes: usize) -> Self {
        self.config.receive_buffer_size = bytes;
        self
    }

    /// Overrides the layer's largest incoming message for this socket; `None` for no limit.
    pub fn max_message_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.config.max_message_size = bytes.into();
        self
    }

    /// Overrides the layer's largest incoming frame for this socket; `None` for no limit.
    pub fn max_frame_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.config.max_frame_size = bytes.into();
        self
    }

    /// Overrides the layer's write buffer size for this socket.
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.config.write_buffer_size = bytes;
        self
    }

    /// Overrides the layer's write buffer limit for this socket.
    pub fn max_write_buffer_size(mut self, bytes: usize) -> Self {
        self.config.max_write_buffer_size = Some(bytes);
        self
    }

    /// Called instead of the `on_upgrade` callback when hyper cannot hand over the connection
    /// after the 101 response (the client went away, or the server does not support upgrades).
    /// By default the failure is logged at debug level.
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
    /// Per-accept overrides that do not fit together are not accepted: the response is then a
    /// 500 and an error event is logged, naming the option.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response<Full<Bytes>>
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Err(error) = self.config.validate() {
            tracing::error!(%error, "refusing WebSocket: invalid per-accept options");
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "invalid WebSocket options for this socket",
            );
        }

        let mut response = Response::new(Full::default());
        if let Some(accept) = &self.accept {
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept.clone());
        }
        if let Some(protocol) = &self.selected_protocol {
            response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, protocol.clone());
        }

        let Self { config, context, on_upgrade, selected_protocol, on_failed_upgrade, span, .. } = self;
        if let Some(protocol) = selected_protocol.as_ref().and_then(|p| p.to_str().ok()) {
            span.record("protocol", protocol);
        }
        let shared = context.shared.clone();
        let task = async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    let error = Error::UpgradeFailed(Box::new(e));
                    match on_failed_upgrade {
                        Some(callback) => callback(error),
                        None => tracing::debug!(%error, "WebSocket upgrade failed"),
                    }
                    return;
                }
            };
            let open = OpenSocket::new(context.slot);
            let socket =
                WebSocket::from_upgraded(upgraded, Role::Server, selected_protocol, &config, Some(open))
                    .await;
            tracing::debug!("WebSocket opened");
            callback(socket).await;
        };
        shared.tracker.spawn(&shared, task.instrument(span));
        response
    }
}

/// The peer's address, when the server put it in the request: axum's `ConnectInfo<SocketAddr>`
/// or `MockConnectInfo<SocketAddr>` (with the `axum` feature), or a plain `SocketAddr`.
fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    {
        use ::axum::extract::{ConnectInfo, connect_info::MockConnectInfo};
        // As axum's `ConnectInfo` extractor does: the real one, else the one tests mock.
        if let Some(ConnectInfo(addr)) = extensions.get::<ConnectInfo<SocketAddr>>() {
            return Some(*addr);
        }
        if let Some(MockConnectInfo(addr)) = extensions.get::<MockConnectInfo<SocketAddr>>() {
            return Some(*addr);
        }
    }
    extensions.get::<SocketAddr>().copied()
}
