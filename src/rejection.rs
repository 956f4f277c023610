//! Why a request could not be accepted as a WebSocket, and the HTTP answer for each reason.

use std::{error::Error as StdError, fmt};

use http::{
    HeaderValue, Response, StatusCode,
    header::{ALLOW, SEC_WEBSOCKET_VERSION},
};

use crate::response::{HandshakeBody, text_response};

/// Why [`WebSocketUpgrade`](crate::WebSocketUpgrade) refused a request.
///
/// Each reason has its HTTP status ([`status`](Self::status)) and a short text
/// ([`Display`](fmt::Display)); [`into_http_response`](Self::into_http_response) turns it into the answer to
/// send, and with the `axum` feature it is an `IntoResponse` rejection.
///
/// ```
/// use http::StatusCode;
/// use tower_websockets::{WebSocketUpgrade, handshake::WebSocketUpgradeRejection};
///
/// let mut req = http::Request::get("/ws").body(()).unwrap();
/// let rejection = WebSocketUpgrade::from_request(&mut req).unwrap_err();
/// assert_eq!(rejection, WebSocketUpgradeRejection::NotWebSocket);
/// assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
/// let response = rejection.into_http_response();
/// assert_eq!(response.status(), StatusCode::BAD_REQUEST);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebSocketUpgradeRejection {
    /// Not a WebSocket request (no `Upgrade: websocket`): 400.
    NotWebSocket,
    /// A WebSocket upgrade with a method other than `GET`: 405, with `Allow: GET`.
    MethodNotGet,
    /// `Connection` does not contain `upgrade`: 400.
    ConnectionHeaderMissingUpgrade,
    /// `Sec-WebSocket-Version` is not 13: 426, with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).
    UnsupportedVersion,
    /// No `Sec-WebSocket-Key`: 400.
    MissingKey,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes, or appears twice: 400.
    InvalidKey,
    /// The connection cannot be upgraded, for example an HTTP/1.0 request, or a server that does
    /// not hand over upgraded connections: 426.
    ConnectionNotUpgradable,
    /// [`WebSocketLayer`](crate::WebSocketLayer) is not in the service stack: 500.
    LayerMissing,
}

impl WebSocketUpgradeRejection {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotWebSocket
            | Self::ConnectionHeaderMissingUpgrade
            | Self::MissingKey
            | Self::InvalidKey => StatusCode::BAD_REQUEST,
            Self::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedVersion | Self::ConnectionNotUpgradable => StatusCode::UPGRADE_REQUIRED,
            Self::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, plain-text reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotWebSocket => "not a WebSocket request",
            Self::MethodNotGet => "a WebSocket handshake must use GET",
            Self::ConnectionHeaderMissingUpgrade => "the Connection header must contain `upgrade`",
            Self::UnsupportedVersion => "unsupported WebSocket version: only version 13 is supported",
            Self::MissingKey => "missing Sec-WebSocket-Key header",
            Self::InvalidKey => "Sec-WebSocket-Key must be base64 of 16 bytes, sent once",
            Self::ConnectionNotUpgradable => "this connection cannot be upgraded to a WebSocket",
            Self::LayerMissing => "WebSocketLayer is missing from the service stack",
        }
    }

    /// The reason's name in the `error.type` attribute of `websocket.server.handshakes`.
    pub(crate) fn metric_name(self) -> &'static str {
        match self {
            Self::NotWebSocket => "not_websocket",
            Self::MethodNotGet => "method_not_get",
            Self::ConnectionHeaderMissingUpgrade => "connection_header",
            Self::UnsupportedVersion => "unsupported_version",
            Self::MissingKey => "missing_key",
            Self::InvalidKey => "invalid_key",
            Self::ConnectionNotUpgradable => "not_upgradable",
            Self::LayerMissing => "layer_missing",
        }
    }

    /// The response to send: the status, the headers the RFC asks for, and the reason as text.
    ///
    /// It is named so that it does not hide axum's `IntoResponse::into_response` (feature
    /// `axum`), which gives an axum `Response` instead.
    pub fn into_http_response(self) -> Response<HandshakeBody> {
        let mut response = text_response(self.status(), self.reason());
        match self {
            Self::UnsupportedVersion => {
                response.headers_mut().insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
            Self::MethodNotGet => {
                response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
            }
            _ => {}
        }
        response
    }
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl StdError for WebSocketUpgradeRejection {}
