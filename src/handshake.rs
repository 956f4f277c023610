//! The HTTP side of a WebSocket handshake: [`is_websocket_request`] tells a handshake from an
//! ordinary request, [`WebSocketUpgradeRejection`] says why
//! [`WebSocketUpgrade`](crate::WebSocketUpgrade) refused one, and [`HandshakeBody`] is the body
//! of every answer the crate gives a handshake (the `101`, and each refusal).

// Classifying requests: is this a WebSocket handshake, and is it a valid one? Everything here
// reads headers in place: no allocation, no copies.

use http::{
    Extensions, HeaderMap, HeaderValue, Method, Request, Version,
    header::{CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE},
};
use hyper::ext::Protocol;

pub use crate::rejection::WebSocketUpgradeRejection;
pub use crate::response::HandshakeBody;

/// Does any `name` header line hold `token` in its comma-separated list, ignoring ASCII case
/// and surrounding white space?
pub(crate) fn header_has_token(
    headers: &HeaderMap,
    name: impl http::header::AsHeaderName,
    token: &str,
) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Is this request an attempt at a WebSocket handshake, valid or not: an HTTP/1.1 request with
/// `Upgrade: websocket`, or an HTTP/2 extended CONNECT (RFC 8441) with `:protocol` `websocket`?
///
/// This is the layer's test, run on every request: a method comparison and one header look-up
/// for ordinary traffic. Attempts go through the origin policy; whether they are *valid* is the
/// extractor's business, so that a bad attempt gets a precise rejection.
pub(crate) fn is_upgrade_attempt(method: &Method, headers: &HeaderMap, extensions: &Extensions) -> bool {
    (method == Method::CONNECT && has_websocket_protocol(extensions))
        || header_has_token(headers, UPGRADE, "websocket")
}

/// Does an extended CONNECT carry `:protocol: websocket` (in any letter case)?
fn has_websocket_protocol(extensions: &Extensions) -> bool {
    extensions.get::<Protocol>().is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"))
}

/// Is `key` a valid `Sec-WebSocket-Key`: base64 of exactly 16 bytes (22 characters, then `==`)?
pub(crate) fn is_valid_key(key: &HeaderValue) -> bool {
    let key = key.as_bytes();
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// A checked handshake: what the response needs.
#[derive(Debug, Clone)]
pub(crate) enum Handshake<'a> {
    /// HTTP/1.1 (RFC 6455): answered with 101 and the accept key derived from this
    /// `Sec-WebSocket-Key` (borrowed: a mere check copies nothing).
    Http1 {
        /// The client's `Sec-WebSocket-Key`.
        key: &'a HeaderValue,
    },
    /// HTTP/2 extended CONNECT (RFC 8441): answered with 200.
    Http2,
}

/// Checks a WebSocket handshake, in an order that gives the most useful answer first.
pub(crate) fn check<'a>(
    method: &Method,
    version: Version,
    headers: &'a HeaderMap,
    extensions: &Extensions,
) -> Result<Handshake<'a>, WebSocketUpgradeRejection> {
    if version == Version::HTTP_2 {
        return check_http2(method, headers, extensions);
    }
    check_http1(method, headers)
}

/// RFC 8441 §4 and §5: CONNECT, `:protocol` websocket, version 13; no key.
fn check_http2(
    method: &Method,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Handshake<'static>, WebSocketUpgradeRejection> {
    if method != Method::CONNECT || !has_websocket_protocol(extensions) {
        return Err(WebSocketUpgradeRejection::NotWebSocket);
    }
    if !header_has_token(headers, SEC_WEBSOCKET_VERSION, "13") {
        return Err(WebSocketUpgradeRejection::UnsupportedVersion);
    }
    Ok(Handshake::Http2)
}

/// RFC 6455 §4.2.1.
fn check_http1<'a>(
    method: &Method,
    headers: &'a HeaderMap,
) -> Result<Handshake<'a>, WebSocketUpgradeRejection> {
    if !header_has_token(headers, UPGRADE, "websocket") {
        return Err(WebSocketUpgradeRejection::NotWebSocket);
    }
    if method != Method::GET {
        return Err(WebSocketUpgradeRejection::MethodNotGet);
    }
    if !header_has_token(headers, CONNECTION, "upgrade") {
        return Err(WebSocketUpgradeRejection::ConnectionHeaderMissingUpgrade);
    }
    if !header_has_token(headers, SEC_WEBSOCKET_VERSION, "13") {
        return Err(WebSocketUpgradeRejection::UnsupportedVersion);
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (None, _) => Err(WebSocketUpgradeRejection::MissingKey),
        (Some(key), None) if is_valid_key(key) => Ok(Handshake::Http1 { key }),
        _ => Err(WebSocketUpgradeRejection::InvalidKey),
    }
}

/// Is this a valid WebSocket handshake request?
///
/// The counterpart of ASP.NET Core's `HttpContext.WebSockets.IsWebSocketRequest`. Over HTTP/1.1
/// it checks the method (GET), the `Upgrade`, `Connection` and `Sec-WebSocket-Version` headers
/// and the key; over HTTP/2 the extended CONNECT of RFC 8441 (method CONNECT, hyper's
/// `ext::Protocol` `websocket`, version 13). It reads headers in place. It does not need [`WebSocketLayer`](crate::WebSocketLayer), and it does not
/// apply the origin policy.
///
/// ```
/// use tower_websockets::handshake::is_websocket_request;
///
/// let req = http::Request::get("/ws")
///     .header("upgrade", "websocket")
///     .header("connection", "Upgrade")
///     .header("sec-websocket-version", "13")
///     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .body(())
///     .unwrap();
/// assert!(is_websocket_request(&req));
///
/// let plain = http::Request::get("/ws").body(()).unwrap();
/// assert!(!is_websocket_request(&plain));
/// ```
pub fn is_websocket_request<B>(request: &Request<B>) -> bool {
    check(request.method(), request.version(), request.headers(), request.extensions()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn tokens_are_found_in_lists_across_lines_in_any_case() {
        let map = headers(&[("connection", "keep-alive"), ("connection", " Keep-Alive , UPGRADE ")]);
        assert!(header_has_token(&map, CONNECTION, "upgrade"));
        assert!(!header_has_token(&map, CONNECTION, "close"));
        assert!(!header_has_token(&headers(&[("connection", "upgrades")]), CONNECTION, "upgrade"));
    }

    #[test]
    fn keys_must_be_base64_of_sixteen_bytes() {
        assert!(is_valid_key(&HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==")));
        for bad in [
            "MDEyMzQ1Njc4OWFiY2Rl",     // 15 bytes
            "MDEyMzQ1Njc4OWFiY2RlZmc=", // 17 bytes
            "dGhlIHNhbXBsZSBub25jZQ",   // no padding
            "dGhl*HNhbXBsZSBub25jZQ==", // not base64
            "",
        ] {
            assert!(!is_valid_key(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn two_keys_are_refused() {
        let map = headers(&[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(
            check(&Method::GET, Version::HTTP_11, &map, &Extensions::new()).unwrap_err(),
            WebSocketUpgradeRejection::InvalidKey
        );
    }

    #[test]
    fn http2_needs_connect_the_websocket_protocol_and_version_13() {
        let version = headers(&[("sec-websocket-version", "13")]);
        let mut websocket = Extensions::new();
        websocket.insert(Protocol::from_static("WebSocket"));
        let mut other = Extensions::new();
        other.insert(Protocol::from_static("connect-udp"));
        let h2 = |method: &Method, headers: &HeaderMap, ext: &Extensions| {
            check(method, Version::HTTP_2, headers, ext)
                .map(|handshake| matches!(handshake, Handshake::Http2))
        };

        assert_eq!(h2(&Method::CONNECT, &version, &websocket), Ok(true));
        assert!(is_upgrade_attempt(&Method::CONNECT, &HeaderMap::new(), &websocket));
        let not_ws = Err(WebSocketUpgradeRejection::NotWebSocket);
        assert_eq!(h2(&Method::CONNECT, &version, &Extensions::new()).map(|_| ()), not_ws);
        assert_eq!(h2(&Method::CONNECT, &version, &other).map(|_| ()), not_ws);
        assert_eq!(h2(&Method::GET, &version, &websocket).map(|_| ()), not_ws);
        assert!(!is_upgrade_attempt(&Method::CONNECT, &HeaderMap::new(), &other));
        assert_eq!(
            h2(&Method::CONNECT, &headers(&[("sec-websocket-version", "8")]), &websocket).map(|_| ()),
            Err(WebSocketUpgradeRejection::UnsupportedVersion)
        );
    }
}
