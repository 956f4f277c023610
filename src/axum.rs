//! axum integration (feature `axum`): [`WebSocketUpgrade`] as an extractor, and its rejection as
//! a response.

use ::axum::{
    body::Body,
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::request::Parts;

use crate::{
    WebSocketUpgrade,
    handshake::{WebSocketUpgradeRejection, is_upgrade_attempt},
    upgrade::RequestHead,
};

/// `WebSocketUpgrade` as an axum extractor: what
/// [`WebSocketUpgrade::from_request`] does, rejecting with a [`WebSocketUpgradeRejection`].
impl<S> FromRequestParts<S> for WebSocketUpgrade
where
    S: Send + Sync,
{
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        extract(parts)
    }
}

/// `Option<WebSocketUpgrade>`: `None` for a request that is no WebSocket handshake at all, so
/// that one route can serve a page and a socket; a handshake that is invalid is still rejected.
impl<S> OptionalFromRequestParts<S> for WebSocketUpgrade
where
    S: Send + Sync,
{
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !is_upgrade_attempt(&parts.method, &parts.headers, &parts.extensions) {
            return Ok(None);
        }
        extract(parts).map(Some)
    }
}

/// What [`WebSocketUpgrade::from_request`] does, on axum's request parts.
fn extract(parts: &mut Parts) -> Result<WebSocketUpgrade, WebSocketUpgradeRejection> {
    let head = RequestHead {
        method: &parts.method,
        uri: &parts.uri,
        version: parts.version,
        headers: &parts.headers,
    };
    WebSocketUpgrade::extract(head, &mut parts.extensions)
}

/// The same response as [`WebSocketUpgradeRejection::into_http_response`], as an axum `Response`.
impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        self.into_http_response().map(Body::new)
    }
}
