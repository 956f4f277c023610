//! The responses the crate writes itself, and their body: [`HandshakeBody`].
//!
//! The layer answers some WebSocket requests on its own (403, 503), the extractor's rejections
//! answer the others, and `on_upgrade` answers 101 (or 200 over HTTP/2). All of them carry at
//! most a short text, in a body type the crate owns, so that no pre-1.0 dependency type shows in
//! the public API.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header::CONTENT_TYPE};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

/// The body of the crate's answers to a handshake: empty for the `101 Switching Protocols` of
/// [`on_upgrade`](crate::WebSocketUpgrade::on_upgrade) (`200` over HTTP/2), or a short
/// plain-text reason for a refusal (a [`WebSocketUpgradeRejection`]'s `400`, `405` or `426`,
/// the layer's `403`, `429` or `503`).
///
/// [`WebSocketUpgradeRejection`]: crate::handshake::WebSocketUpgradeRejection
///
/// It implements [`http_body::Body`] with `Bytes` data and no error, so hyper, tower and axum
/// serve it as it is. A plain hyper service can use it for its own small responses too: it
/// converts from `Bytes`, `String` and `&'static str` without copying.
///
/// ```
/// use http_body_util::BodyExt;
/// use tower_websockets::{WebSocketUpgrade, handshake::HandshakeBody};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut req = http::Request::get("/ws").body(())?;
/// let response: http::Response<HandshakeBody> =
///     WebSocketUpgrade::from_request(&mut req).unwrap_err().into_http_response();
/// assert_eq!(response.status(), 400);
/// assert_eq!(response.into_body().collect().await?.to_bytes(), "not a WebSocket request");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct HandshakeBody(Full<Bytes>);

impl HandshakeBody {
    /// An empty body.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A body of `text`, without copying it.
    pub fn from_static(text: &'static str) -> Self {
        Self(Full::new(Bytes::from_static(text.as_bytes())))
    }
}

/// A body of these bytes, without copying them.
impl From<Bytes> for HandshakeBody {
    fn from(bytes: Bytes) -> Self {
        Self(Full::new(bytes))
    }
}

/// A body of this text, without copying it.
impl From<String> for HandshakeBody {
    fn from(text: String) -> Self {
        Self::from(Bytes::from(text))
    }
}

/// A body of this text, without copying it.
impl From<&'static str> for HandshakeBody {
    fn from(text: &'static str) -> Self {
        Self::from_static(text)
    }
}

/// One frame with the whole text, then the end.
impl Body for HandshakeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// A plain-text response with `status`, and `reason` as its body.
pub(crate) fn text_response(status: StatusCode, reason: impl Into<HandshakeBody>) -> Response<HandshakeBody> {
    let mut response = Response::new(reason.into());
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn text_responses_carry_status_type_and_reason() {
        let response = text_response(StatusCode::FORBIDDEN, "origin not allowed");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        let body = response.into_body();
        assert_eq!(body.size_hint().exact(), Some(18));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "origin not allowed");
    }

    #[tokio::test]
    async fn an_empty_body_ends_at_once() {
        let body = HandshakeBody::empty();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
    }

    #[tokio::test]
    async fn converts_from_bytes_and_strings() {
        for (body, text) in [
            (HandshakeBody::from(Bytes::from_static(b"bytes")), "bytes"),
            (HandshakeBody::from(String::from("string")), "string"),
            (HandshakeBody::from("static"), "static"),
        ] {
            assert_eq!(body.collect().await.unwrap().to_bytes(), text);
        }
    }
}
