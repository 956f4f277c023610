//! axum integration (feature `axum`): [`WebSocketUpgrade`] as an extractor, and its rejection as
//! a response.

use ::axum::{
    body::Body,
    extract::FromRequestParts,
    response::{IntoResponse, Response},
};
use http::request::Parts;

use crate::{WebSocketUpgrade, WebSocketUpgradeRejection};

impl<S> FromRequestParts<S> for WebSocketUpgrade
where
    S: Send + Sync,
{
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::extract(&parts.method, &parts.uri, parts.version, &parts.headers, &mut parts.extensions)
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        WebSocketUpgradeRejection::into_response(self).map(Body::new)
    }
}
