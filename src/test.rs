//! An in-memory test client (feature `test-util`): test WebSocket services with no port.
//!
//! [`TestClient`] drives your service through a real hyper server connection (HTTP/1.1, or
//! HTTP/2 with [`Connect::http2`]) over an in-memory [`tokio::io::duplex`] pipe. hyper inserts its own `OnUpgrade`, so nothing is mocked:
//! the handshake, the upgrade and the WebSocket frames are the same as over TCP, without binding
//! a port. It works under `#[tokio::test]` and with `tokio::time::pause()`, so keep-alive tests
//! can run in virtual time. Paused time needs Tokio's `test-util` feature, and the client's own
//! timeouts run in that virtual time too: set [`TestClient::timeout`] longer than what the test
//! waits for (a 30 s keep-alive Ping comes after the default 5 s timeout).
//!
//! Every wait has a timeout (5 seconds unless you set another), so a test that goes wrong fails
//! with an error that says what happened instead of hanging.
//!
//! The client's side of each WebSocket is tokio-tungstenite, a codec this crate did not write:
//! what a test sees is what an independent implementation made of your server's frames, and what
//! your server gets is what it framed. A connection that negotiated permessage-deflate
//! ([`Connect::compression`]) reads and writes its frames with tungstenite's frame layer too
//! (tungstenite has no permessage-deflate, and its message layer refuses RSV1); the test client's
//! own message layer above it assembles, inflates and compresses.
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_websockets::test::TestError> {
//! use axum::{Router, response::IntoResponse, routing::any};
//! use tower_websockets::{Message, WebSocketLayer, WebSocketUpgrade, test::TestClient};
//!
//! async fn shout(upgrade: WebSocketUpgrade) -> impl IntoResponse {
//!     upgrade.protocols(["shout.v1"]).on_upgrade(|mut socket| async move {
//!         while let Some(Ok(Message::Text(text))) = socket.recv().await {
//!             let _ = socket.send(Message::text(text.to_uppercase())).await;
//!         }
//!     })
//! }
//!
//! let app = Router::new().route("/ws", any(shout)).layer(WebSocketLayer::new());
//! let client = TestClient::new(app);
//!
//! let mut socket = client.connect("/ws").protocols(["shout.v1"]).await?;
//! assert_eq!(socket.protocol(), Some("shout.v1"));
//! socket.send_text("hello").await?;
//! assert_eq!(socket.recv_text().await?, "HELLO");
//! socket.close().await?;
//!
//! // Ordinary requests go through the same stack.
//! let response = client.get("/ws").await?;
//! assert_eq!(response.status(), 400);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```

use std::{
    error::Error as StdError,
    fmt,
    future::{Future, IntoFuture},
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::{
    HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode,
    header::{
        CONNECTION, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
        SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
    },
};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, ext::Protocol, upgrade::Upgraded};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use tokio::io::DuplexStream;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Error as WsError, Message as TMessage,
        handshake::{client::generate_key, derive_accept_key},
        protocol::WebSocketConfig,
    },
};
use tower_service::Service;

use crate::{
    deflate::{self, Compression, NegotiatedCompression},
    error::Error,
    message::{CloseCode, CloseFrame, Message, Utf8Bytes},
    socket::check_sendable,
};

mod compressed;

use compressed::CompressedSocket;

type BoxError = Box<dyn StdError + Send + Sync>;
type ServeFn = dyn Fn(DuplexStream, HttpVersion) + Send + Sync;

/// Which HTTP version a test connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpVersion {
    Http1,
    Http2,
}

impl HttpVersion {
    /// The status that accepts a WebSocket: 101 over HTTP/1.1, 200 over HTTP/2 (RFC 8441).
    fn accepted(self) -> StatusCode {
        match self {
            Self::Http1 => StatusCode::SWITCHING_PROTOCOLS,
            Self::Http2 => StatusCode::OK,
        }
    }
}

/// The default limit on every wait: 5 seconds.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Buffer size of each in-memory pipe.
const PIPE_BUFFER: usize = 256 * 1024;

/// A client for a service under test: WebSocket connections and plain requests over in-memory
/// pipes, through a real hyper server connection.
///
/// Cheap to clone; any number of clients may connect at once. Each WebSocket and each request
/// gets a connection of its own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_websockets::test::TestError> {
/// use std::{convert::Infallible, time::Duration};
/// use tower::ServiceBuilder;
/// use tower_websockets::{WebSocketLayer, handshake::HandshakeBody, test::TestClient};
///
/// let stack = ServiceBuilder::new().layer(WebSocketLayer::new());
/// let service = stack.service_fn(|req: http::Request<hyper::body::Incoming>| async move {
///     let page = format!("{} {}", req.method(), req.uri().path());
///     Ok::<_, Infallible>(http::Response::new(HandshakeBody::from(page)))
/// });
/// let client = TestClient::new(service).timeout(Duration::from_secs(1));
///
/// assert_eq!(client.get("/health").await?.text(), "GET /health");
/// let post = http::Request::post("/items").body("{}").unwrap();
/// assert_eq!(client.request(post).await?.text(), "POST /items");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TestClient {
    serve: Arc<ServeFn>,
    timeout: Duration,
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl TestClient {
    /// A client for `service`: anything that serves `http::Request<hyper::body::Incoming>`, such
    /// as an axum `Router`, a `ServiceBuilder` stack with
    /// [`WebSocketLayer`](crate::WebSocketLayer), or a `service_fn`.
    pub fn new<S, B>(service: S) -> Self
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let serve = move |io: DuplexStream, version: HttpVersion| {
            let service = TowerToHyperService::new(service.clone());
            let io = TokioIo::new(io);
            spawn_logged("test server connection", async move {
                match version {
                    HttpVersion::Http1 => {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .with_upgrades()
                            .await
                    }
                    HttpVersion::Http2 => {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .enable_connect_protocol()
                            .serve_connection(io, service)
                            .await
                    }
                }
            });
        };
        Self { serve: Arc::new(serve), timeout: DEFAULT_TIMEOUT }
    }

    /// Sets the limit on every wait of this client and of the sockets it opens. Default 5
    /// seconds.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts a WebSocket handshake for `path`. Set headers, an `Origin` and subprotocols on the
    /// returned builder, then `.await` it.
    pub fn connect(&self, path: impl Into<String>) -> Connect<'_> {
        Connect {
            client: self,
            path: path.into(),
            headers: HeaderMap::new(),
            protocols: Vec::new(),
            version: HttpVersion::Http1,
            compression: Compression::disabled(),
            error: None,
        }
    }

    /// Sends a plain `GET` for `path` through the stack.
    ///
    /// # Errors
    ///
    /// As for [`request`](Self::request); also [`TestError::InvalidRequest`] for a `path` that is
    /// not a valid URI.
    pub async fn get(&self, path: &str) -> Result<TestResponse, TestError> {
        let request = Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Bytes::new())
            .map_err(|e| TestError::InvalidRequest(e.to_string()))?;
        self.request(request).await
    }

    /// Sends any request through the stack, over HTTP/1.1, and reads the whole response. The
    /// body is anything that converts into `Bytes`: `&'static str`, `String`, `Vec<u8>`, ...
    ///
    /// # Errors
    ///
    /// [`TestError::Timeout`] when the whole response did not come within the timeout, and
    /// [`TestError::Http`] when hyper failed (the service's error included). An error status is
    /// not an error here: it is in the [`TestResponse`].
    pub async fn request<B>(&self, request: Request<B>) -> Result<TestResponse, TestError>
    where
        B: Into<Bytes>,
    {
        let request = request.map(|body| Full::new(body.into()));
        let timeout = self.timeout;
        within(timeout, "the response", async {
            let response = self.open(HttpVersion::Http1).await?.send(request).await?;
            TestResponse::read(response).await
        })
        .await?
    }

    /// Opens a client connection to a fresh server connection.
    async fn open(&self, version: HttpVersion) -> Result<Sender, TestError> {
        let (client_io, server_io) = tokio::io::duplex(PIPE_BUFFER);
        (self.serve)(server_io, version);
        let io = TokioIo::new(client_io);
        match version {
            HttpVersion::Http1 => {
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(io).await.map_err(TestError::http)?;
                spawn_logged("test client connection", connection.with_upgrades());
                Ok(Sender::Http1(sender))
            }
            HttpVersion::Http2 => {
                let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(TestError::http)?;
                spawn_logged("test client connection", connection);
                Ok(Sender::Http2(sender))
            }
        }
    }
}

/// A client connection of either version.
enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, TestError> {
        // Over HTTP/2, the server enabled extended CONNECT itself, so the request may go out
        // before its SETTINGS arrive.
        let response = match self {
            Self::Http1(sender) => sender.send_request(request).await,
            Self::Http2(sender) => sender.send_request(request).await,
        };
        response.map_err(TestError::http)
    }
}

/// A WebSocket handshake being prepared by [`TestClient::connect`]. `.await` it to connect.
///
/// By default the handshake is an HTTP/1.1 upgrade with no `Origin` and no subprotocols.
///
/// # Errors
///
/// Awaiting it fails with [`TestError::Refused`] when the server answers with another status
/// than 101 (200 over HTTP/2), and with [`TestError::Handshake`] when the answer is not a valid
/// handshake.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use hyper::body::Incoming;
/// use tower::ServiceBuilder;
/// use tower_websockets::{WebSocketLayer, WebSocketUpgrade, test::TestClient};
///
/// let layer = WebSocketLayer::builder().allowed_origins(["https://chat.example.com"]).build()?;
/// let stack = ServiceBuilder::new().layer(layer);
/// let client = TestClient::new(stack.service_fn(|mut req: http::Request<Incoming>| async move {
///     let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
///     Ok::<_, Infallible>(upgrade.protocols(["chat.v2"]).on_upgrade(|_socket| async {}))
/// }));
///
/// let socket = client
///     .connect("/chat")
///     .http2()
///     .origin("https://chat.example.com")
///     .protocols(["chat.v3", "chat.v2"])
///     .header("cookie", "session=1234")
///     .await?;
/// assert_eq!(socket.response().status(), 200); // HTTP/2's extended CONNECT answers 200
/// assert_eq!(socket.protocol(), Some("chat.v2"));
/// # Ok(())
/// # }
/// ```
#[must_use = "await it to connect"]
pub struct Connect<'a> {
    client: &'a TestClient,
    path: String,
    headers: HeaderMap,
    protocols: Vec<String>,
    version: HttpVersion,
    /// What the client offers for permessage-deflate; disabled: no offer.
    compression: Compression,
    error: Option<TestError>,
}

impl fmt::Debug for Connect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("path", &self.path)
            .field("headers", &self.headers)
            .field("protocols", &self.protocols)
            .finish_non_exhaustive()
    }
}

impl Connect<'_> {
    /// Adds a request header. A header the handshake sets itself (`Sec-WebSocket-Version`,
    /// `Sec-WebSocket-Key`, `Upgrade`, `Connection`…) is replaced, so that a test can send a
    /// broken handshake. An invalid name or value fails the connect with
    /// [`TestError::InvalidRequest`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => self.error = Some(TestError::InvalidRequest(format!("invalid header `{name}: {value}`"))),
        }
        self
    }

    /// Sends `Origin: origin`, as a browser page at that origin would.
    pub fn origin(self, origin: &str) -> Self {
        self.header(ORIGIN.as_str(), origin)
    }

    /// Connects over HTTP/2 with an extended CONNECT (RFC 8441) instead of an HTTP/1.1 upgrade.
    /// The server side is a hyper HTTP/2 connection with the extended CONNECT protocol enabled.
    ///
    /// That is the test client's own server, not yours: this succeeds even for an app whose
    /// production server cannot serve WebSockets over HTTP/2. `axum::serve` announces extended
    /// CONNECT only with axum's `http2` feature; without it, browsers and other HTTP/2 clients
    /// get their stream reset. Test what your server's builder enables, over TCP, to be sure.
    pub fn http2(mut self) -> Self {
        self.version = HttpVersion::Http2;
        self
    }

    /// Offers these subprotocols, in this order.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.protocols.extend(protocols.into_iter().map(Into::into));
        self
    }

    /// Offers permessage-deflate (RFC 7692) with these options, as a browser does on every
    /// handshake; when the server accepts, the client compresses what it sends and inflates
    /// what it receives. Its `server_no_context_takeover` and `server_max_window_bits` are asked
    /// of the server; `TestWebSocket::compression` says what was agreed.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    async fn run(self) -> Result<TestWebSocket, TestError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let request = self.request()?;
        let timeout = self.client.timeout;
        within(timeout, "the WebSocket handshake", async {
            let sent_key = request.headers().get(SEC_WEBSOCKET_KEY).cloned();
            let response = self.client.open(self.version).await?.send(request).await?;
            let protocol = self.check_answer(&response, sent_key.as_ref())?;
            let response = match response.status() {
                status if status == self.version.accepted() => response,
                _ => return Err(TestError::Refused(Box::new(TestResponse::read(response).await?))),
            };
            let compression = self.check_extensions(&response)?;
            TestWebSocket::open(response, protocol, compression, self.compression, timeout).await
        })
        .await?
    }

    /// The handshake request: an upgrade over HTTP/1.1, an extended CONNECT over HTTP/2, with the
    /// subprotocols and headers set on the builder.
    fn request(&self) -> Result<Request<Full<Bytes>>, TestError> {
        let mut request = match self.version {
            HttpVersion::Http1 => Request::get(self.path.as_str())
                .header(http::header::HOST, "localhost")
                .header(UPGRADE, "websocket")
                .header(CONNECTION, "upgrade")
                .header(SEC_WEBSOCKET_KEY, generate_key()),
            HttpVersion::Http2 => Request::connect(format!("http://localhost{}", self.path))
                .version(http::Version::HTTP_2)
                .extension(Protocol::from_static("websocket")),
        }
        .header(SEC_WEBSOCKET_VERSION, "13")
        .body(Full::new(Bytes::new()))
        .map_err(|e| TestError::InvalidRequest(e.to_string()))?;
        if self.compression.is_enabled() {
            request.headers_mut().insert(SEC_WEBSOCKET_EXTENSIONS, deflate::client_offer(&self.compression));
        }
        if !self.protocols.is_empty() {
            let offer = HeaderValue::try_from(self.protocols.join(", "))
                .map_err(|_| TestError::InvalidRequest("invalid subprotocol name".into()))?;
            request.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, offer);
        }
        for name in self.headers.keys() {
            request.headers_mut().remove(name);
        }
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        Ok(request)
    }

    /// Checks the extensions of an accepting answer: only permessage-deflate, only if offered,
    /// with parameters that fit the offer.
    fn check_extensions<B>(
        &self,
        response: &Response<B>,
    ) -> Result<Option<NegotiatedCompression>, TestError> {
        if !self.compression.is_enabled() {
            return match response.headers().get(SEC_WEBSOCKET_EXTENSIONS) {
                Some(answer) => Err(TestError::Handshake(format!(
                    "the server answered extensions {answer:?}, but none were offered"
                ))),
                None => Ok(None),
            };
        }
        deflate::accept_answer(response.headers(), &self.compression).map_err(TestError::Handshake)
    }

    /// Checks an accepting answer as a client must: the accept key, and a subprotocol that was
    /// offered. Returns the chosen subprotocol. A refusal (another status) passes unchecked.
    fn check_answer<B>(
        &self,
        response: &Response<B>,
        sent_key: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>, TestError> {
        if response.status() != self.version.accepted() {
            return Ok(None);
        }
        if let Some(key) = sent_key {
            let expected = derive_accept_key(key.as_bytes());
            if response.headers().get(SEC_WEBSOCKET_ACCEPT).map(HeaderValue::as_bytes)
                != Some(expected.as_bytes())
            {
                return Err(TestError::Handshake("Sec-WebSocket-Accept does not match the key".into()));
            }
        }
        let protocol = response.headers().get(SEC_WEBSOCKET_PROTOCOL).cloned();
        if let Some(chosen) = &protocol {
            if !self.protocols.iter().any(|offered| offered.as_bytes() == chosen.as_bytes()) {
                return Err(TestError::Handshake(format!(
                    "the server chose subprotocol {chosen:?}, which was not offered"
                )));
            }
        }
        Ok(protocol)
    }
}

impl<'a> IntoFuture for Connect<'a> {
    type Output = Result<TestWebSocket, TestError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// The client side of a WebSocket opened by [`TestClient::connect`].
///
/// Every method waits at most the client's timeout. The client answers the server's Pings
/// whenever it reads (so a test that stops reading plays a peer that stopped answering), and
/// sends no keep-alive Pings of its own. Its codec is tokio-tungstenite's, without size limits of
/// its own, so that a test of the server's limits reaches the server.
///
/// For what the helpers do not cover, the socket itself is a [`Stream`] of the server's
/// messages and a [`Sink`] of [`Message`] (no timeout on either): split it, or send a frame the
/// helpers refuse, such as a Close with a code that may not be sent.
///
/// One difference with the crate's own reading shows: on a connection without compression,
/// tungstenite reads a Close with code 1014 (Bad Gateway) as a Close 1002 "Protocol
/// violation", and answers it with 1002.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_websockets::test::TestError> {
/// use std::convert::Infallible;
/// use hyper::body::Incoming;
/// use tower::ServiceBuilder;
/// use tower_websockets::{CloseCode, Message, WebSocketLayer, WebSocketUpgrade, test::TestClient};
///
/// let stack = ServiceBuilder::new().layer(WebSocketLayer::new());
/// let client = TestClient::new(stack.service_fn(|mut req: http::Request<Incoming>| async move {
///     let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
///     Ok::<_, Infallible>(upgrade.on_upgrade(|mut socket| async move {
///         let _ = socket.send(Message::binary(vec![1, 2, 3])).await;
///         let _ = socket.close(CloseCode::POLICY_VIOLATION, "read-only").await;
///     }))
/// }));
///
/// let mut socket = client.connect("/feed").await?;
/// assert_eq!(socket.response().status(), 101);
/// assert_eq!(socket.recv_data().await?, Message::binary(vec![1, 2, 3]));
/// let frame = socket.recv_close().await?.expect("a code and reason");
/// assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::POLICY_VIOLATION, "read-only"));
/// assert!(socket.is_closed().await);
/// # Ok(())
/// # }
/// ```
pub struct TestWebSocket {
    socket: ClientSocket,
    response: Response<()>,
    protocol: Option<HeaderValue>,
    timeout: Duration,
}

impl fmt::Debug for TestWebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codec = match self.socket {
            ClientSocket::Tungstenite(_) => "tokio-tungstenite",
            ClientSocket::Compressed(_) => "tungstenite frames, permessage-deflate",
        };
        f.debug_struct("TestWebSocket")
            .field("codec", &codec)
            .field("protocol", &self.protocol)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The codec on the client's side of a test connection.
enum ClientSocket {
    /// tokio-tungstenite: a WebSocket implementation this crate did not write, so that every
    /// uncompressed test has an independent codec on the other end.
    Tungstenite(Box<WebSocketStream<TokioIo<Upgraded>>>),
    /// A connection that negotiated permessage-deflate: tungstenite's frame layer, with a
    /// message layer of the test client's own above it ([`compressed`]), since tungstenite has no
    /// permessage-deflate and its message layer fails a frame with RSV1 set.
    Compressed(Box<CompressedSocket>),
}

impl TestWebSocket {
    /// Takes the upgraded connection of an accepting `response`, and runs the client side of the
    /// socket on it (with no keep-alive Pings of its own).
    async fn open(
        mut response: Response<Incoming>,
        protocol: Option<HeaderValue>,
        compression: Option<NegotiatedCompression>,
        options: Compression,
        timeout: Duration,
    ) -> Result<Self, TestError> {
        let upgraded = hyper::upgrade::on(&mut response).await.map_err(TestError::http)?;
        let (head, _) = response.into_parts();
        let socket = match compression {
            None => {
                // No limits of the client's own: a test of the server's limits must reach the
                // server. tungstenite never sends a Ping of its own.
                let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
                let stream = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tungstenite::protocol::Role::Client,
                    Some(config),
                )
                .await;
                ClientSocket::Tungstenite(Box::new(stream))
            }
            Some(negotiated) => {
                ClientSocket::Compressed(Box::new(CompressedSocket::new(upgraded, negotiated, &options)))
            }
        };
        Ok(Self { socket, response: Response::from_parts(head, ()), protocol, timeout })
    }

    /// The handshake's response: `101` over HTTP/1.1, `200` over HTTP/2 (its headers hold, for
    /// example, the chosen subprotocol).
    pub fn response(&self) -> &Response<()> {
        &self.response
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_ref().and_then(|p| p.to_str().ok())
    }

    /// What was agreed for permessage-deflate, if the client offered it
    /// ([`Connect::compression`]) and the server accepted.
    pub fn compression(&self) -> Option<&NegotiatedCompression> {
        match &self.socket {
            ClientSocket::Tungstenite(_) => None,
            ClientSocket::Compressed(socket) => Some(socket.negotiated()),
        }
    }

    /// Sends a message, and flushes it.
    ///
    /// # Errors
    ///
    /// [`TestError::Timeout`] when the server does not take it within the timeout, and
    /// [`TestError::Socket`] with the socket's error (such as [`Error::Closed`] once the
    /// server closed).
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), TestError> {
        let message = message.into();
        within(self.timeout, "sending a message", SinkExt::send(self, message))
            .await?
            .map_err(TestError::Socket)
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_text(&mut self, text: &str) -> Result<(), TestError> {
        self.send(Message::text(text)).await
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_binary(&mut self, bytes: impl Into<Bytes>) -> Result<(), TestError> {
        self.send(Message::Binary(bytes.into())).await
    }

    /// Receives the next message of any kind, Pings, Pongs and Close included.
    ///
    /// # Errors
    ///
    /// [`TestError::Timeout`] when nothing comes in time, [`TestError::Ended`] when the
    /// connection is gone, [`TestError::Socket`] on a WebSocket error.
    pub async fn recv(&mut self) -> Result<Message, TestError> {
        match within(self.timeout, "a message from the server", StreamExt::next(self)).await? {
            Some(Ok(message)) => Ok(message),
            Some(Err(error)) => Err(TestError::Socket(error)),
            None => Err(TestError::Ended),
        }
    }

    /// Receives the next text or binary message, skipping Pings and Pongs.
    ///
    /// # Errors
    ///
    /// [`TestError::Closed`] (for example "server closed with 1009 (message too big)") when the
    /// server closes instead, and the errors of [`recv`](Self::recv).
    pub async fn recv_data(&mut self) -> Result<Message, TestError> {
        loop {
            match self.recv().await? {
                Message::Ping(_) | Message::Pong(_) => {}
                Message::Close(frame) => return Err(TestError::Closed(frame)),
                message => return Ok(message),
            }
        }
    }

    /// Receives the next text message, skipping Pings and Pongs.
    ///
    /// # Errors
    ///
    /// [`TestError::UnexpectedMessage`] for a binary message, and the errors of
    /// [`recv_data`](Self::recv_data).
    pub async fn recv_text(&mut self) -> Result<String, TestError> {
        match self.recv_data().await? {
            Message::Text(text) => Ok(text.as_str().to_owned()),
            other => Err(TestError::UnexpectedMessage(other)),
        }
    }

    /// Waits for the server's Close, skipping Pings and Pongs, and returns its frame.
    ///
    /// # Errors
    ///
    /// [`TestError::UnexpectedMessage`] for a text or binary message, and the errors of
    /// [`recv`](Self::recv).
    pub async fn recv_close(&mut self) -> Result<Option<CloseFrame>, TestError> {
        loop {
            match self.recv().await? {
                Message::Ping(_) | Message::Pong(_) => {}
                Message::Close(frame) => return Ok(frame),
                other => return Err(TestError::UnexpectedMessage(other)),
            }
        }
    }

    /// Closes with 1000 and waits for the server's answer.
    ///
    /// # Errors
    ///
    /// As for [`close_with`](Self::close_with).
    pub async fn close(&mut self) -> Result<(), TestError> {
        self.close_with(CloseCode::NORMAL, "").await
    }

    /// Closes with `code` and `reason` and waits for the server's answer: its Close, then the
    /// end of the connection. Messages that arrive meanwhile are discarded.
    ///
    /// # Errors
    ///
    /// [`TestError::Timeout`] when the handshake does not complete within the client's timeout,
    /// and [`TestError::Socket`] with [`Error::InvalidClose`] for a code that may not be sent
    /// ([`CloseCode::is_sendable`]) or a reason over 123 bytes (then nothing is sent), or with
    /// the error that ended the connection. To send a Close the RFC forbids (to test the
    /// server's answer), send a [`Message::Close`] through the [`Sink`].
    pub async fn close_with(&mut self, code: CloseCode, reason: &str) -> Result<(), TestError> {
        check_sendable(code, reason).map_err(TestError::Socket)?;
        let frame = CloseFrame::new(code, Utf8Bytes::from(reason));
        within(self.timeout, "the closing handshake", async {
            match SinkExt::send(&mut *self, Message::Close(Some(frame))).await {
                // The connection ended, or a Close went out already: wait for the end.
                Ok(()) | Err(Error::Closed) => {}
                Err(error) => return Err(error),
            }
            while let Some(item) = StreamExt::next(&mut *self).await {
                item?;
            }
            Ok(())
        })
        .await?
        .map_err(TestError::Socket)
    }

    /// Has the connection ended? Waits up to the timeout for the server to close it (after a
    /// Close frame, or by dropping it), and says whether it did.
    pub async fn is_closed(&mut self) -> bool {
        loop {
            match tokio::time::timeout(self.timeout, StreamExt::next(self)).await {
                Err(_) => return false,
                Ok(None | Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Sends several messages with one flush at the end.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send), for the first message that fails or for the flush.
    pub async fn send_all<I>(&mut self, messages: I) -> Result<(), TestError>
    where
        I: IntoIterator<Item = Message>,
    {
        within(self.timeout, "sending messages", async {
            for message in messages {
                SinkExt::feed(&mut *self, message).await?;
            }
            SinkExt::flush(&mut *self).await
        })
        .await?
        .map_err(TestError::Socket)
    }

    /// Receives the next item as the raw stream gives it (`None` at the end), within the timeout.
    ///
    /// # Errors
    ///
    /// [`TestError::Timeout`] when nothing came within the timeout. The socket's own errors are
    /// returned inside, as the stream gives them.
    pub async fn next(&mut self) -> Result<Option<Result<Message, Error>>, TestError> {
        within(self.timeout, "a message from the server", StreamExt::next(self)).await
    }
}

/// The messages from the server, as [`recv`](TestWebSocket::recv) returns them (Pings, Pongs and
/// the server's Close included), without a timeout. The client answers a Ping as it reads it.
/// After an error, or once the connection is closed, the stream ends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use futures_util::{SinkExt, StreamExt};
/// use hyper::body::Incoming;
/// use tower::ServiceBuilder;
/// use tower_websockets::{Message, WebSocketLayer, WebSocketUpgrade, test::TestClient};
///
/// let stack = ServiceBuilder::new().layer(WebSocketLayer::new());
/// let client = TestClient::new(stack.service_fn(|mut req: http::Request<Incoming>| async move {
///     let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
///     Ok::<_, Infallible>(upgrade.on_upgrade(|mut socket| async move {
///         while let Some(Ok(message)) = socket.recv().await {
///             if matches!(message, Message::Text(_) | Message::Binary(_)) {
///                 let _ = socket.send(message).await;
///             }
///         }
///     }))
/// }));
///
/// let socket = client.connect("/echo").await?;
/// let (mut sink, stream) = socket.split();
/// sink.send(Message::text("one")).await?;
/// sink.send(Message::text("two")).await?;
/// let echoed: Vec<Message> = stream.take(2).map(Result::unwrap).collect().await;
/// assert_eq!(echoed, [Message::text("one"), Message::text("two")]);
/// # Ok(())
/// # }
/// ```
impl Stream for TestWebSocket {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.get_mut().socket {
            ClientSocket::Tungstenite(stream) => {
                let item = ready!(stream.poll_next_unpin(cx));
                if let Some(Ok(TMessage::Ping(_))) = &item {
                    // tungstenite queues the Pong and writes it with the next read or write;
                    // write it now, so that a test that stops reading after a Ping has answered
                    // it. An error shows on the next call.
                    let _ = stream.poll_flush_unpin(cx);
                }
                Poll::Ready(item.map(|item| item.map_err(from_tungstenite_error).and_then(from_tungstenite)))
            }
            ClientSocket::Compressed(socket) => socket.poll_next(cx),
        }
    }
}

/// Sending, as [`send`](TestWebSocket::send) does without the timeout: any [`Message`], including
/// a Close (with any code: this is how a test sends a Close the RFC forbids) or a Ping over 125
/// bytes, which tokio-tungstenite frames as given for the server to refuse.
impl Sink<Message> for TestWebSocket {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match &mut self.get_mut().socket {
            ClientSocket::Tungstenite(stream) => stream.poll_ready_unpin(cx).map_err(from_tungstenite_error),
            ClientSocket::Compressed(_) => Poll::Ready(Ok(())),
        }
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        match &mut self.get_mut().socket {
            ClientSocket::Tungstenite(stream) => {
                stream.start_send_unpin(to_tungstenite(message)?).map_err(from_tungstenite_error)
            }
            ClientSocket::Compressed(socket) => socket.start_send(message),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match &mut self.get_mut().socket {
            ClientSocket::Tungstenite(stream) => stream.poll_flush_unpin(cx).map_err(from_tungstenite_error),
            ClientSocket::Compressed(socket) => socket.poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match &mut self.get_mut().socket {
            ClientSocket::Tungstenite(stream) => stream.poll_close_unpin(cx).map_err(from_tungstenite_error),
            ClientSocket::Compressed(socket) => socket.poll_close(cx),
        }
    }
}

/// Our message as tungstenite's. Text is checked again on the way (it is valid UTF-8 already).
fn to_tungstenite(message: Message) -> Result<TMessage, Error> {
    let close = |frame: CloseFrame| tungstenite::protocol::CloseFrame {
        code: frame.code.0.into(),
        reason: tungstenite::Utf8Bytes::try_from(Bytes::from(frame.reason)).unwrap_or_default(),
    };
    Ok(match message {
        Message::Text(text) => TMessage::Text(
            tungstenite::Utf8Bytes::try_from(Bytes::from(text)).map_err(|_| Error::InvalidUtf8)?,
        ),
        Message::Binary(bytes) => TMessage::Binary(bytes),
        Message::Ping(payload) => TMessage::Ping(payload),
        Message::Pong(payload) => TMessage::Pong(payload),
        Message::Close(frame) => TMessage::Close(frame.map(close)),
    })
}

/// tungstenite's message as ours.
fn from_tungstenite(message: TMessage) -> Result<Message, Error> {
    let text =
        |text: tungstenite::Utf8Bytes| Utf8Bytes::try_from(Bytes::from(text)).map_err(|_| Error::InvalidUtf8);
    Ok(match message {
        TMessage::Text(payload) => Message::Text(text(payload)?),
        TMessage::Binary(payload) => Message::Binary(payload),
        TMessage::Ping(payload) => Message::Ping(payload),
        TMessage::Pong(payload) => Message::Pong(payload),
        TMessage::Close(frame) => Message::Close(match frame {
            Some(frame) => Some(CloseFrame::new(CloseCode(frame.code.into()), text(frame.reason)?)),
            None => None,
        }),
        // Only a writer makes raw frames; reading never returns one.
        TMessage::Frame(frame) => Message::Binary(frame.into_payload()),
    })
}

/// tungstenite's error as the crate's [`Error`] of the same meaning.
fn from_tungstenite_error(error: WsError) -> Error {
    use tungstenite::error::{CapacityError, ProtocolError};
    match error {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::SendAfterClosing) => Error::Closed,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Error::ConnectionReset,
        WsError::Io(error) => Error::Io(error),
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            Error::MessageTooBig { size, max: max_size }
        }
        WsError::Utf8(_) => Error::InvalidUtf8,
        WsError::Protocol(error) => Error::Protocol(error.to_string()),
        WsError::WriteBufferFull(_) => Error::WriteBufferFull,
        other => Error::Io(io::Error::other(other)),
    }
}

/// A whole HTTP response: status, headers and body, read to the end. [`TestClient::get`] and
/// [`TestClient::request`] return one, and [`TestError::Refused`] holds one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_websockets::test::TestError> {
/// use std::convert::Infallible;
/// use hyper::body::Incoming;
/// use tower::ServiceBuilder;
/// use tower_websockets::{WebSocketLayer, WebSocketUpgrade, test::TestClient};
///
/// let stack = ServiceBuilder::new().layer(WebSocketLayer::new());
/// let client = TestClient::new(stack.service_fn(|mut req: http::Request<Incoming>| async move {
///     Ok::<_, Infallible>(match WebSocketUpgrade::from_request(&mut req) {
///         Ok(upgrade) => upgrade.on_upgrade(|_socket| async {}),
///         Err(rejection) => rejection.into_http_response(),
///     })
/// }));
///
/// // A plain GET on a WebSocket endpoint.
/// let response = client.get("/ws").await?;
/// assert_eq!(response.status(), 400);
/// assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
/// assert_eq!(response.text(), "not a WebSocket request");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl TestResponse {
    async fn read(response: Response<Incoming>) -> Result<Self, TestError> {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(TestError::http)?.to_bytes();
        Ok(Self { status: parts.status, headers: parts.headers, body })
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What went wrong in a test client call. Its message says what happened, for a test's failure
/// output.
///
/// ```
/// # // A paused clock: the timeout below passes in virtual time, at once.
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::{convert::Infallible, time::Duration};
/// use hyper::body::Incoming;
/// use tower::ServiceBuilder;
/// use tower_websockets::{WebSocketLayer, WebSocketUpgrade};
/// use tower_websockets::test::{TestClient, TestError};
///
/// let layer = WebSocketLayer::builder().allowed_origins(["https://example.com"]).build()?;
/// let stack = ServiceBuilder::new().layer(layer);
/// let service = stack.service_fn(|mut req: http::Request<Incoming>| async move {
///     let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
///     Ok::<_, Infallible>(upgrade.on_upgrade(|mut socket| async move {
///         while let Some(Ok(_)) = socket.recv().await {} // reads, never answers
///     }))
/// });
/// let client = TestClient::new(service).timeout(Duration::from_secs(1));
///
/// let error = client.connect("/ws").origin("https://evil.example").await.unwrap_err();
/// assert_eq!(error.refused().map(|response| response.status()), Some(http::StatusCode::FORBIDDEN));
/// let message = "the server refused the WebSocket handshake with 403 Forbidden: origin not allowed";
/// assert_eq!(error.to_string(), message);
///
/// let mut socket = client.connect("/ws").origin("https://example.com").await?;
/// let error = socket.recv().await.unwrap_err();
/// assert!(matches!(error, TestError::Timeout { waiting_for: "a message from the server", .. }));
/// assert_eq!(error.to_string(), "timed out after 1s waiting for a message from the server");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TestError {
    /// The server refused the handshake: it answered with something other than 101 (HTTP/1.1)
    /// or 200 (HTTP/2).
    Refused(Box<TestResponse>),
    /// A 101 (a 200 over HTTP/2) that is not a valid WebSocket handshake answer: a
    /// `Sec-WebSocket-Accept` that does not match the key, or a subprotocol that was not offered.
    Handshake(String),
    /// Nothing happened within the timeout.
    Timeout {
        /// What was awaited.
        waiting_for: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// The server sent a Close where data was expected.
    Closed(Option<CloseFrame>),
    /// A message of another kind than expected.
    UnexpectedMessage(Message),
    /// The connection ended.
    Ended,
    /// A WebSocket error.
    Socket(Error),
    /// An HTTP-level error from hyper.
    Http(BoxError),
    /// The request could not be built.
    InvalidRequest(String),
}

impl TestError {
    fn http(error: impl Into<BoxError>) -> Self {
        Self::Http(error.into())
    }

    /// The refused handshake's response, if that is what this is.
    pub fn refused(&self) -> Option<&TestResponse> {
        match self {
            Self::Refused(response) => Some(response),
            _ => None,
        }
    }
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(response) => {
                write!(f, "the server refused the WebSocket handshake with {}", response.status)?;
                match response.text().trim() {
                    "" => Ok(()),
                    reason => write!(f, ": {reason}"),
                }
            }
            Self::Handshake(problem) => write!(f, "invalid WebSocket handshake response: {problem}"),
            Self::Timeout { waiting_for, timeout } => {
                write!(f, "timed out after {timeout:?} waiting for {waiting_for}")
            }
            Self::Closed(Some(frame)) if frame.reason.is_empty() => {
                write!(f, "server closed with {}", frame.code)
            }
            Self::Closed(Some(frame)) => write!(f, "server closed with {}: {}", frame.code, frame.reason),
            Self::Closed(None) => f.write_str("server closed without a code"),
            Self::UnexpectedMessage(message) => write!(f, "unexpected message: {message:?}"),
            Self::Ended => f.write_str("the connection ended"),
            Self::Socket(error) => write!(f, "WebSocket error: {error}"),
            Self::Http(error) => write!(f, "HTTP error: {error}"),
            Self::InvalidRequest(problem) => write!(f, "invalid request: {problem}"),
        }
    }
}

impl StdError for TestError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Socket(error) => Some(error),
            Self::Http(error) => Some(&**error),
            _ => None,
        }
    }
}

/// Runs `future` with a timeout that names what was awaited.
/// Runs a connection task, logging how it ended if it failed.
fn spawn_logged<F, E>(what: &'static str, connection: F)
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "{what} ended with an error");
        }
    });
}

async fn within<T>(
    timeout: Duration,
    waiting_for: &'static str,
    future: impl Future<Output = T>,
) -> Result<T, TestError> {
    tokio::time::timeout(timeout, future).await.map_err(|_| TestError::Timeout { waiting_for, timeout })
}

/// How many [`WebSocketSender`](crate::WebSocketSender) queues are alive in this process: one
/// per socket whose [`sender`](crate::WebSocket::sender) was called, freed when the socket and
/// all its senders are dropped. For leak tests: take it before, compare after.
///
/// ```
/// let before = tower_websockets::test::live_sender_queues();
/// // ... connections that use senders, all ended and dropped ...
/// assert_eq!(tower_websockets::test::live_sender_queues(), before);
/// ```
pub fn live_sender_queues() -> usize {
    crate::socket::live_queues()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: StatusCode, body: &'static str) -> TestError {
        TestError::Refused(Box::new(TestResponse {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }))
    }

    #[test]
    fn a_refusal_shows_its_reason() {
        let error = refused(StatusCode::FORBIDDEN, "origin not allowed");
        assert_eq!(
            error.to_string(),
            "the server refused the WebSocket handshake with 403 Forbidden: origin not allowed"
        );
    }

    #[test]
    fn a_refusal_without_a_body_ends_at_the_status() {
        for body in ["", " \r\n"] {
            let error = refused(StatusCode::NOT_FOUND, body);
            assert_eq!(error.to_string(), "the server refused the WebSocket handshake with 404 Not Found");
        }
    }

    #[test]
    fn a_close_without_a_reason_shows_only_its_code() {
        let error = TestError::Closed(Some(CloseFrame::new(CloseCode::NORMAL, "")));
        assert_eq!(error.to_string(), "server closed with 1000 (normal closure)");
    }
}
