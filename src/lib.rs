//! WebSockets for the tower ecosystem, after ASP.NET Core's `app.UseWebSockets(options)`.
//!
//! # Where to start
//!
//! Three types do the work, and most programs name only these:
//!
//! - [`WebSocketLayer`], built once with [`WebSocketLayer::builder`], looks at every request.
//!   It lets WebSocket handshakes from allowed origins (the server's own, by default) through to
//!   your service, answers `403` to the others, can authenticate them and limit each client's
//!   sockets, and passes ordinary requests through untouched. It carries the options.
//! - [`WebSocketUpgrade`] accepts a handshake in your handler: from a plain `http::Request`, or
//!   as an axum extractor with the `axum` feature. It negotiates the subprotocol, answers `101`,
//!   and hands your callback a [`WebSocket`].
//! - [`WebSocket`] sends and receives [`Message`]s, keeps the connection alive with Pings, drops
//!   peers that stop answering, enforces size limits and closes cleanly.
//!
//! For one message to many sockets, [`broadcast`] has a [`Hub`](broadcast::Hub) of topics and
//! [`PreparedMessage`], a message encoded once.
//!
//! For your tests, [`test::TestClient`] (feature `test-util`) opens sockets on your service
//! in memory.
//!
//! The other items support these. [`WebSocketLayerBuilder`] is what `builder()` returns, with
//! the `DEFAULT_*` constants as its defaults, and [`is_websocket_request`] tells a handshake from
//! an ordinary request. You meet the rest as values: [`Error`] from the socket,
//! [`WebSocketUpgradeRejection`] from the extractor, [`ConfigError`] from `build()`,
//! [`CloseCode`], [`CloseFrame`] and [`Utf8Bytes`] inside a [`Message`], [`AllowedOrigins`]
//! and [`ForwardedHeader`] for the origin policy, [`AuthRejection`], [`Token`] and
//! [`BEARER_PROTOCOL`] for authentication, [`RateLimit`] and [`RateLimitPolicy`] for the
//! per-socket limits, and [`ShutdownHandle`], [`ShutdownReport`] and [`WebSocketStats`] for
//! the connection lifecycle. [`WebSocketService`], [`ResponseFuture`] and [`ResponseBody`] are
//! the plumbing of the layer: the service it wraps yours in, and that service's future and
//! body. You name them only in type signatures, if at all.
//!
//! # Guides
//!
//! - [The guide](docs::guide): the layer and every option, accepting a socket, per-socket
//!   overrides, subprotocols, keep-alive, errors and close codes, rejections, closing, the
//!   connection limit and graceful shutdown, testing, and where we differ from ASP.NET Core.
//! - [Security](docs::security): the origin policy (same-origin by default), cross-site
//!   WebSocket hijacking, authentication in the handshake, rate limits and per-client limits,
//!   and recommendations for production.
//! - [gRPC (tonic) and WebSockets on one port](docs::tonic).
//! - [Conformance](docs::conformance): the Autobahn TestSuite results.
//! - Benchmarks: against axum's `extract::ws` and fastwebsockets, with the method and the
//!   profiles, in the package's
//!   [`docs/benchmarks.md`](https://docs.rs/crate/tower-websockets/latest/source/docs/benchmarks.md).
//!
//! # Feature flags
//!
//! No feature is on by default.
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` | [`WebSocketUpgrade`] as an axum extractor (`FromRequestParts`, and `Option<WebSocketUpgrade>`), and [`WebSocketUpgradeRejection`] as an `IntoResponse`. It depends on axum 0.8 with its default features off. |
//! | `test-util` | the [`test`][test-module] module: [`test::TestClient`], an in-memory client that runs your service through a real hyper connection, over HTTP/1.1 or HTTP/2. |
//!
//! # With axum
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, response::IntoResponse, routing::any};
//! use tower_websockets::{Message, WebSocket, WebSocketLayer, WebSocketUpgrade};
//!
//! async fn ws(upgrade: WebSocketUpgrade) -> impl IntoResponse {
//!     upgrade.on_upgrade(echo)
//! }
//!
//! async fn echo(mut socket: WebSocket) {
//!     while let Some(Ok(message)) = socket.recv().await {
//!         if matches!(message, Message::Text(_) | Message::Binary(_)) && socket.send(message).await.is_err() {
//!             break;
//!         }
//!     }
//! }
//!
//! let layer = WebSocketLayer::builder()
//!     .allowed_origins(["https://example.com"])
//!     .build()
//!     .expect("valid options");
//! let app: Router = Router::new().route("/ws", any(ws)).layer(layer);
//! # }
//! ```
//!
//! `Router::layer` wraps every route, and costs each request of the router about 0.2 µs, most of
//! it axum's. For a router that serves mostly ordinary requests, put the layer around the whole
//! `Router` (about 0.05 µs):
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, extract::Request, response::IntoResponse, routing::{any, get}};
//! use tower::Layer as _;
//! use tower_websockets::{WebSocketLayer, WebSocketUpgrade};
//!
//! let router = Router::new()
//!     .route("/", get(|| async { "Hello" }))
//!     .route("/ws", any(|upgrade: WebSocketUpgrade| async { upgrade.on_upgrade(|_socket| async {}) }));
//! let app = WebSocketLayer::new().layer(router);
//! let app = tower::ServiceExt::<Request>::map_response(app, IntoResponse::into_response);
//! let make_service = axum::ServiceExt::<Request>::into_make_service(app);
//! // axum::serve(listener, make_service).await?;
//! # drop(make_service);
//! # }
//! ```
//!
//! # With plain tower and hyper
//!
//! ```
//! use std::convert::Infallible;
//! use tower::ServiceBuilder;
//! use tower_websockets::{WebSocket, WebSocketLayer, WebSocketUpgrade};
//!
//! let service = ServiceBuilder::new()
//!     .layer(WebSocketLayer::new())
//!     .service_fn(|mut req: http::Request<hyper::body::Incoming>| async move {
//!         let response = match WebSocketUpgrade::from_request(&mut req) {
//!             Ok(upgrade) => upgrade.on_upgrade(|mut socket: WebSocket| async move {
//!                 while let Some(Ok(message)) = socket.recv().await {
//!                     let _ = socket.send(message).await;
//!                 }
//!             }),
//!             Err(rejection) => rejection.into_http_response(),
//!         };
//!         Ok::<_, Infallible>(response)
//!     });
//! // Serve `service` with hyper-util's `TowerToHyperService` and a connection that
//! // enables upgrades (`serve_connection_with_upgrades`, or http1's `.with_upgrades()`).
//! # drop(service);
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without `test-util` there is no `test` module to link to.
#![cfg_attr(feature = "test-util", doc = "[test-module]: mod@test")]
#![cfg_attr(
    not(feature = "test-util"),
    doc = "[`test::TestClient`]: #feature-flags\n[test-module]: #feature-flags"
)]

mod auth;
#[cfg(feature = "axum")]
mod axum;
pub mod broadcast;
mod config;
mod deflate;
mod error;
mod handshake;
#[cfg(feature = "json")]
mod json;
mod layer;
mod lifecycle;
mod message;
mod metrics;
mod origin;
mod prepared;
mod proto;
mod rate_limit;
mod rejection;
mod response;
mod service;
mod socket;
#[cfg(feature = "test-util")]
pub mod test;
mod upgrade;

pub use auth::{AuthRejection, BEARER_PROTOCOL, Token};
pub use broadcast::PreparedMessage;
pub use config::{
    DEFAULT_KEEP_ALIVE_INTERVAL, DEFAULT_MAX_BUFFERED_AMOUNT, DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_RECEIVE_BUFFER_SIZE, DEFAULT_WRITE_BUFFER_SIZE, SendPolicy,
};
pub use deflate::{Compression, NegotiatedCompression};
pub use error::{ConfigError, Error, SendError};
#[cfg(feature = "json")]
pub use error::{JsonError, JsonErrorKind};
pub use handshake::is_websocket_request;
pub use layer::{WebSocketLayer, WebSocketLayerBuilder};
pub use lifecycle::{CloseCounts, ShutdownHandle, ShutdownReport, WebSocketStats};
pub use message::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use origin::{AllowedOrigins, ForwardedHeader};
pub use rate_limit::{RateLimit, RateLimitPolicy};
pub use rejection::WebSocketUpgradeRejection;
pub use response::TextBody;
pub use service::{ResponseBody, ResponseFuture, WebSocketService};
pub use socket::{BUFFER_FULL_CLOSE_REASON, SocketClosed, WebSocket, WebSocketSender};
pub use upgrade::WebSocketUpgrade;

/// The guides, from the crate's `docs/` folder: pages without code of their own, versioned with
/// the API. Their examples are doctests.
#[cfg(any(doc, doctest))]
// Their doctests fail on any warning, an unused import, variable or `mut` included; only a function
// that an example defines and does not call is let be. (rustdoc reads this attribute on a module
// since rust-lang/rust#140560, mid-2025; the doctests run on stable.)
#[doc(test(attr(deny(warnings), allow(dead_code))))]
pub mod docs {
    #[cfg_attr(all(feature = "axum", feature = "test-util"), doc = include_str!("../docs/guide.md"))]
    #[cfg_attr(
        not(all(feature = "axum", feature = "test-util")),
        doc = "The guide. Its examples need the `axum` and `test-util` features: build the docs with \
               `--all-features` to read it here."
    )]
    pub mod guide {}

    #[doc = include_str!("../docs/security.md")]
    pub mod security {}

    #[cfg_attr(feature = "axum", doc = include_str!("../docs/tonic.md"))]
    #[cfg_attr(
        not(feature = "axum"),
        doc = "gRPC (tonic) and WebSockets on one port. Its examples need the `axum` feature: build \
               the docs with `--all-features` to read it here."
    )]
    pub mod tonic {}

    #[doc = include_str!("../docs/conformance.md")]
    pub mod conformance {}
}
