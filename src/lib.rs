//! WebSockets for the tower ecosystem, after ASP.NET Core's `app.UseWebSockets(options)`.
//!
//! - [`WebSocketLayer`] looks at every request. It lets WebSocket handshakes from allowed
//!   origins through to your service, answers `403` to the others, and passes ordinary requests
//!   through untouched.
//! - [`WebSocketUpgrade`] accepts a handshake in your handler: from a plain `http::Request`, or
//!   as an axum extractor with the `axum` feature. It negotiates the subprotocol, answers `101`,
//!   and hands your callback a [`WebSocket`].
//! - [`WebSocket`] sends and receives [`Message`]s, keeps the connection alive with Pings, drops
//!   peers that stop answering, enforces size limits and closes cleanly.
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
//!         if let Message::Text(_) | Message::Binary(_) = message {
//!             if socket.send(message).await.is_err() {
//!                 break;
//!             }
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
//! use bytes::Bytes;
//! use http_body_util::Full;
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

#[cfg(feature = "axum")]
mod axum;
mod config;
mod deflate;
mod error;
mod handshake;
mod layer;
mod lifecycle;
mod message;
mod origin;
mod rejection;
mod response;
mod service;
mod socket;
#[cfg(feature = "test-util")]
pub mod test;
mod upgrade;

pub use config::{
    DEFAULT_KEEP_ALIVE_INTERVAL, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RECEIVE_BUFFER_SIZE, DEFAULT_WRITE_BUFFER_SIZE,
};
pub use deflate::{Compression, NegotiatedCompression};
pub use error::{ConfigError, Error};
pub use handshake::is_websocket_request;
pub use layer::{WebSocketLayer, WebSocketLayerBuilder};
pub use lifecycle::{ShutdownHandle, ShutdownReport, WebSocketStats};
pub use message::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use origin::AllowedOrigins;
pub use rejection::WebSocketUpgradeRejection;
pub use response::TextBody;
pub use service::{ResponseBody, ResponseFuture, WebSocketService};
pub use socket::WebSocket;
pub use upgrade::WebSocketUpgrade;
