//! WebSockets for the tower ecosystem, after ASP.NET Core's `app.UseWebSockets(options)`.
//!
//! [`WebSocketLayer`] looks at every request: it lets WebSocket handshakes from allowed origins
//! through to your service (checking the origin, and the authentication and limits you set),
//! and passes ordinary requests on untouched. In your handler, [`WebSocketUpgrade`] accepts the
//! handshake and hands your callback a [`WebSocket`], which sends and receives [`Message`]s,
//! keeps the connection alive and closes it cleanly. A [`WebSocketSender`] sends on it from any
//! other task.
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
//! let layer = WebSocketLayer::builder().allowed_origins(["https://example.com"]).build()?;
//! let app: Router = Router::new().route("/ws", any(ws)).layer(layer);
//! # }
//! # Ok::<(), tower_websockets::ConfigError>(())
//! ```
//!
//! Without axum, [`WebSocketUpgrade::from_request`] takes an `http::Request` in any tower or
//! hyper service. [The guide](docs::guide) shows both, and every option.
//!
//! # Modules
//!
//! The root has what most programs name. The rest is in the module of its concern:
//!
//! | module | for |
//! |---|---|
//! | [`auth`] | authenticating the handshake: [`AuthRejection`](auth::AuthRejection), [`Token`](auth::Token) |
//! | [`broadcast`] | one message to many sockets: a [`Hub`](broadcast::Hub) of topics, [`PreparedMessage`](broadcast::PreparedMessage), a Redis backplane (feature `redis`) |
//! | [`compression`] | what permessage-deflate a socket agreed on (the options are [`Compression`]) |
//! | [`handshake`] | the HTTP side of a handshake: rejections, the body of the crate's answers |
//! | [`json`][json-module] | typed JSON messages (feature `json`) |
//! | [`lifecycle`] | counting sockets, and shutting them down gracefully |
//! | [`origin`] | the origin policy behind a proxy (the policy is [`AllowedOrigins`]) |
//! | [`rate_limit`] | limits on what a peer sends |
//! | [`sender`] | what a [`WebSocketSender`] does when the socket's buffer is full |
//! | [`service`] | the service the layer wraps yours in, with its future and body |
//! | [`test`][test-module] | an in-memory client for your tests (feature `test-util`) |
//! | [`docs`] | the guides: [the guide](docs::guide), [security](docs::security), [tonic](docs::tonic), [conformance](docs::conformance); and, in the package, [`docs/benchmarks.md`](https://docs.rs/crate/tower-websockets/latest/source/docs/benchmarks.md) |
//!
//! Feature flags, none on by default: `axum` ([`WebSocketUpgrade`] as an extractor), `json`,
//! `redis` and `test-util`.
//!
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without `test-util` or `json` there is no module to link to.
#![cfg_attr(feature = "test-util", doc = "[test-module]: mod@test")]
#![cfg_attr(not(feature = "test-util"), doc = "[test-module]: #modules")]
#![cfg_attr(feature = "json", doc = "[json-module]: mod@json")]
#![cfg_attr(not(feature = "json"), doc = "[json-module]: #modules")]

pub mod auth;
#[cfg(feature = "axum")]
mod axum;
pub mod broadcast;
mod config;
mod deflate;
mod error;
pub mod handshake;
#[cfg(feature = "json")]
pub mod json;
mod layer;
pub mod lifecycle;
mod message;
mod metrics;
// The origin policy's code. Its public items are `AllowedOrigins` (at the root) and
// `origin::ForwardedHeader`; the public `origin` module below shows the latter only.
#[path = "origin.rs"]
mod origin_policy;
mod prepared;
mod proto;
pub mod rate_limit;
mod rejection;
mod response;
pub mod service;
mod socket;
#[cfg(feature = "test-util")]
pub mod test;
mod upgrade;

pub use deflate::Compression;
pub use error::{ConfigError, Error};
pub use layer::{WebSocketLayer, WebSocketLayerBuilder};
pub use message::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use origin_policy::AllowedOrigins;
pub use socket::{WebSocket, WebSocketSender};
pub use upgrade::WebSocketUpgrade;

pub mod compression {
    //! permessage-deflate (RFC 7692): [`NegotiatedCompression`], what one socket agreed on with
    //! its client. The options are [`Compression`](crate::Compression), given to
    //! [`WebSocketLayerBuilder::compression`](crate::WebSocketLayerBuilder::compression) or, for
    //! one socket, to [`WebSocketUpgrade::compression`](crate::WebSocketUpgrade::compression).
    pub use crate::deflate::NegotiatedCompression;
}

pub mod origin {
    //! The origin policy, behind a proxy: [`ForwardedHeader`] names the header that carries the
    //! public host, for the same-origin check.
    //!
    //! Browsers send an `Origin` header with every WebSocket handshake, and do not apply the
    //! same-origin policy to WebSockets: without a check, any page a user visits can open a
    //! socket to your server with the user's cookies. The policy itself is
    //! [`AllowedOrigins`]; [security](crate::docs::security) has the rules.
    pub use crate::origin_policy::ForwardedHeader;
    pub(crate) use crate::origin_policy::{AllowedOrigins, OriginPolicy, OriginRefusal};
}

pub mod sender {
    //! Sending from other tasks: what a [`WebSocketSender`](crate::WebSocketSender) does when
    //! the socket's buffer is full ([`SendPolicy`]), how its sends fail ([`SendError`]), and
    //! [`SocketClosed`], what [`WebSocket::closed`](crate::WebSocket::closed) returns when a
    //! socket that only senders write to ends.
    //!
    //! The limit is the socket option
    //! [`max_buffered_amount`](crate::WebSocketLayerBuilder::max_buffered_amount), and the policy
    //! [`on_buffer_full`](crate::WebSocketLayerBuilder::on_buffer_full).
    pub use crate::config::SendPolicy;
    pub use crate::error::SendError;
    pub use crate::socket::{BUFFER_FULL_CLOSE_REASON, SocketClosed};
}

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
